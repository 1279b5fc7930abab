"""Evaluation: score a reward model or a DPO policy on an evaluation set and summarise it as RewardBench
does, into one run of the lake (prefpipe.lake stores it).

Every distinct (prompt, text) is scored once, in batches sorted by length; a score does not depend on the
batch it was in. A result carries the code version that made it: the package version and a hash of every
prefpipe module this one imports, directly or not (found by reading their imports, so a new scoring module
cannot be left out), and of the RewardBench table.
"""

from __future__ import annotations

import ast
import hashlib
import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from functools import cache
from importlib import metadata
from pathlib import Path

import pyarrow as pa

from prefpipe.config import Combination
from prefpipe.evalsets import Example, read_evalset_format
from prefpipe.files import content_hash, folder_hash
from prefpipe.lake import Run, unit_lock, write_results, written_at
from prefpipe.rewardbench import TABLE, best_of_n_credit, best_of_n_scores, pairwise_scores, section_of

PACKAGE = Path(__file__).resolve().parent
SOURCES_LOCK = threading.Lock()
Scores = list[tuple[list[float], list[float]]]  # (chosen scores, rejected scores) per example
Scorer = Callable[[list[tuple[str | list[dict], str]]], list[float]]  # rewards of (prompt, response) items


def evaluate(model_dir: Path, model_id: str, evalset_path: Path, evalset: str, results: Path, *,
             run_id: str, run_date: date | None = None, force: bool = False, fmt: str = "auto",
             reference: Path | None = None, device: str = "cpu", started: float | None = None,
             contaminated: list[str] | None = None) -> Path | None:
    """Score one model on one evaluation set and write the run folder; None when these results exist
    (same model, set and code version), or with `force` when a concurrent run wrote them after STARTED
    (default: now). With REFERENCE, MODEL_DIR is a DPO policy, scored by its implicit reward. CONTAMINATED:
    the examples that its training data matched (None: not known), summarised and left out of a second score."""
    fmt, examples = read_evalset_format(evalset_path, fmt)
    model_hash = folder_hash(model_dir)
    if reference is not None:  # the policy and its reference: a change to either is another model
        model_hash = hashlib.sha256(f"{model_hash}:{folder_hash(reference)}".encode()).hexdigest()
    run = Run(run_id, run_date or date.today(), model_id, model_hash, evalset, content_hash(evalset_path),
              code_version())
    started = time.time() if started is None else started
    with unit_lock(results, evalset, model_id):
        written = written_at(results, run)
        if written is not None and (not force or written >= started):
            return None
        scores = score_distinct(examples, scorer(model_dir, reference, device))
        return write_results(results, run, *result_tables(run, examples, scores, fmt, contaminated))


def evaluate_combo(combo: Combination, components: dict[str, tuple[Path, Path | None]], evalset_path: Path,
                   evalset: str, results: Path, *, run_id: str, run_date: date | None = None, force: bool = False,
                   fmt: str = "auto", device: str = "cpu", started: float | None = None,
                   tables: Path | None = None, contaminated: list[str] | None = None) -> Path | None:
    """A registered combination on one evaluation set, as `evaluate` does a model, under the combination's
    name; its reference rewards (per prompt and model) are written beside the scores. COMPONENTS: each
    model's (folder, DPO reference or None). On a set, a prompt's references are its completions (a set marks
    none as reference), with `warehouse` the warehouse's responses to it (from the copies in TABLES), with
    `samples` the reference LM's samples (cached in the lake: `lake.samples_cache`)."""
    import numpy as np

    from prefpipe.lake import samples_cache
    from prefpipe.sampling import reference_samples
    from prefpipe.tables import compact, warehouse_responses
    from prefpipe.transforms import combination

    fmt, examples = read_evalset_format(evalset_path, fmt)
    parts = [combo.as_json()] + [f"{m}:{folder_hash(p)}:{folder_hash(r) if r else ''}" for m, (p, r) in
                                 sorted(components.items())]
    run = Run(run_id, run_date or date.today(), combo.name, hashlib.sha256("\n".join(parts).encode()).hexdigest(),
              evalset, content_hash(evalset_path), code_version())
    started = time.time() if started is None else started
    with unit_lock(results, evalset, combo.name):
        written = written_at(results, run)
        if written is not None and (not force or written >= started):
            return None
        items = [(e.prompt, t) for e in examples for t in e.chosen + e.rejected]
        outside_items = []
        if combo.references == "warehouse" and tables is not None:
            outside_items = warehouse_responses(tables, [e.prompt for e in examples])
        elif combo.references == "samples":
            prompts = {compact(e.prompt): e.prompt for e in examples}
            outside_items = [(prompts[key], text) for key, text in reference_samples(
                combo.reference_lm, prompts, combo.samples, seed=combo.seed, cache=samples_cache(results),
                device=device)]
        rewards, outside = {}, {}
        for model, (folder, reference) in components.items():
            values = score_items(items + outside_items, scorer(folder, reference, device))
            rewards[model] = np.array(values[:len(items)])
            outside[model] = ([compact(p) for p, _ in outside_items], values[len(items):])
        score, rows = combination(combo, np.array([compact(p) for p, _ in items], dtype=object), rewards,
                                  outside=outside)
        values = iter(score.tolist())
        scores = [([next(values) for _ in e.chosen], [next(values) for _ in e.rejected]) for e in examples]
        references = pa.Table.from_pylist([run.provenance() | row for row in rows])
        return write_results(results, run, *result_tables(run, examples, scores, fmt, contaminated),
                             references=references)


def scorer(model_dir: Path, reference: Path | None, device: str = "cpu") -> Scorer:
    """Rewards of (prompt, response) items: a reward model's, or a DPO policy's implicit reward."""
    if reference is not None:
        from prefpipe.dpo import ImplicitReward

        return ImplicitReward(model_dir, reference, device)
    from prefpipe.model import load_reward_model, load_tokenizer

    return reward_scorer(load_reward_model(model_dir).to(device), load_tokenizer(model_dir), device=device)


def reward_scorer(model, tokenizer, *, max_length: int = 2048, max_tokens: int | None = None,
                  device: str = "cpu") -> Scorer:
    """A reward model as a scorer of (prompt, response) items, inputs cut to the model's positions."""
    from prefpipe.inputs import builder_for
    from prefpipe.model import SCORE_TOKENS, score

    builder = builder_for(tokenizer, model, max_length)
    return lambda items: score(model, builder.build(items), tokenizer.pad_token_id,
                               max_tokens=max_tokens or SCORE_TOKENS, device=device)


def score_examples(model, tokenizer, examples: list[Example], **options) -> Scores:
    """(chosen scores, rejected scores) per example from a reward model."""
    return score_distinct(examples, reward_scorer(model, tokenizer, **options))


def score_distinct(examples: list[Example], scorer: Scorer) -> Scores:
    """(chosen scores, rejected scores) per example, with SCORER called once on every distinct
    (prompt, text): a reward model, or the implicit reward of a DPO policy (`prefpipe.dpo`)."""
    values = iter(score_items([(e.prompt, t) for e in examples for t in e.chosen + e.rejected], scorer))
    return [([next(values) for _ in e.chosen], [next(values) for _ in e.rejected]) for e in examples]


def score_items(items: list[tuple[str | list[dict], str]], scorer: Scorer) -> list[float]:
    """SCORER's value of every (prompt, response) item, each distinct one scored once."""
    keys: dict[tuple[str, str], int] = {}
    for prompt, text in items:
        keys.setdefault((json.dumps(prompt), text), len(keys))
    values = scorer([(json.loads(p), t) for p, t in keys])
    return [values[keys[json.dumps(prompt), text]] for prompt, text in items]


def result_tables(run: Run, examples: list[Example], scores: Scores, fmt: str,
                  contaminated: list[str] | None = None) -> tuple[pa.Table, pa.Table]:
    """Per-example rows and summary rows (subset, section, score) of one model on one evaluation set; with
    CONTAMINATED (the examples its training data matched), their count and share, and the sections and scores
    over the other examples (level `decontaminated`)."""
    rows = []
    for e, (chosen, rejected) in zip(examples, scores, strict=True):
        credit = best_of_n_credit(chosen, rejected) if fmt == "rewardbench2" else float(chosen[0] > rejected[0])
        rows.append({"example_id": e.example_id, "subset": e.subset, "section": section_of(e.subset),
                     "chosen_scores": chosen, "rejected_scores": rejected,
                     "score_gap": max(chosen) - max(rejected), "credit": credit,
                     "chosen_chars": max(map(len, e.chosen)), "rejected_chars": max(map(len, e.rejected))})
    summary = summarise(examples, scores, fmt)
    if contaminated is not None:
        matched = set(contaminated)
        clean = [(e, s) for e, s in zip(examples, scores, strict=True) if e.example_id not in matched]
        summary += [("contamination", "contaminated_examples", float(len(examples) - len(clean))),
                    ("contamination", "contaminated_share", (len(examples) - len(clean)) / len(examples))]
        if clean:
            summary += [("decontaminated", name, value) for level, name, value in
                        summarise([e for e, _ in clean], [s for _, s in clean], fmt) if level in ("section", "score")]
    summary += diagnostics(rows)
    counts = Counter(r["subset"] for r in rows)
    provenance = run.provenance()
    per_subset = ("subset", "length_bias")
    summary_rows = [provenance | {"level": level, "name": name, "value": value,
                                  "examples": counts.get(name) if level in per_subset else None}
                    for level, name, value in summary]
    return pa.Table.from_pylist([provenance | r for r in rows]), pa.Table.from_pylist(summary_rows)


def summarise(examples: list[Example], scores: Scores, fmt: str) -> list[tuple[str, str, float]]:
    """RewardBench's summary: (level, name, value) of the subsets, sections and final scores."""
    if fmt == "rewardbench2":
        got = best_of_n_scores([(e.subset, e.example_id, c, r) for e, (c, r) in zip(examples, scores, strict=True)])
        return [("subset", s, v) for s, v in got["subsets"].items()] + [("score", "score", got["score"])]
    got = pairwise_scores([(e.subset, c[0], r[0]) for e, (c, r) in zip(examples, scores, strict=True)])
    return ([("subset", s, v["accuracy"]) for s, v in got["subsets"].items()]
            + [("section", s, v) for s, v in got["sections"].items() if v is not None]
            + [("score", k, got[k]) for k in ("score", "score_with_prior_sets")])


def diagnostics(rows: list[dict]) -> list[tuple[str, str, float]]:
    """What the common tools do not report: the score-gap distribution, the calibration of σ(score gap), and
    per subset the accuracy of "always pick the longer answer" (to read beside the model's accuracy)."""
    from prefpipe.metrics import expected_calibration_error

    gaps = sorted(r["score_gap"] for r in rows)
    deciles = statistics.quantiles(gaps, n=10) if len(gaps) > 1 else gaps * 9
    out = [("diagnostic", "score_gap_p10", deciles[0]), ("diagnostic", "score_gap_p50", statistics.median(gaps)),
           ("diagnostic", "score_gap_p90", deciles[-1]), ("diagnostic", "ece", expected_calibration_error(gaps))]
    longer: dict[str, list[bool]] = {}
    for r in rows:
        longer.setdefault(r["subset"], []).append(r["chosen_chars"] > r["rejected_chars"])
    return out + [("length_bias", subset, sum(v) / len(v)) for subset, v in sorted(longer.items())]


def code_version() -> str:
    """The package version and a hash of what makes a score: a change to any of it is a new version."""
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in scoring_sources())).hexdigest()[:12]
    return f"{metadata.version('prefpipe')}+{digest}"


def scoring_sources() -> tuple[Path, ...]:
    """This module and every prefpipe module it imports, directly or not (also inside functions), and the
    RewardBench table. Found once per process, under a lock: the nightly's units ask from several threads at
    once, and CPython 3.11's ast.parse is not thread-safe ("AST constructor recursion depth mismatch", seen)."""
    with SOURCES_LOCK:
        return _scoring_sources()


@cache
def _scoring_sources() -> tuple[Path, ...]:
    found, todo = set(), [Path(__file__).stem]
    while todo:
        name = todo.pop()
        if name in found or not (PACKAGE / f"{name}.py").is_file():
            continue
        found.add(name)
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "prefpipe":
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prefpipe."):
                todo.append(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                todo += [a.name.split(".")[1] for a in node.names if a.name.startswith("prefpipe.")]
    return (*sorted(PACKAGE / f"{name}.py" for name in found), TABLE)
