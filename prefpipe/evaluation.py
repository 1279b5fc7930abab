"""Evaluation: score a reward model, a DPO policy or a registered combination on an evaluation set and
summarise it as RewardBench does, into one run of the lake (prefpipe.lake stores it; prefpipe.results makes
its tables; prefpipe.scoring scores).

A run is made once per (model state, set version, code version): a unit that finds its results written
already skips, unless forced, and one writer at a time works on a (set, model) across threads and processes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from prefpipe.config import Combination
from prefpipe.evalsets import Example, Scores, read_evalset_format
from prefpipe.files import content_hash, folder_hash
from prefpipe.judges import Judge, JudgeSettings, judge_tables
from prefpipe.lake import Run, samples_cache, unit_lock, write_results, written_at
from prefpipe.results import result_tables
from prefpipe.sampling import reference_samples
from prefpipe.scoring import score_distinct, score_items, scorer
from prefpipe.store import Location
from prefpipe.tables import prompt_json, warehouse_responses
from prefpipe.transforms import combination
from prefpipe.versions import code_version


def evaluate_model(model_dir: Path, model_id: str, evalset_path: Path, evalset: str, results: Location, *,
                   run_id: str, run_date: date | None = None, force: bool = False, fmt: str = "auto",
                   reference: Path | None = None, judge: JudgeSettings | None = None, device: str = "cpu",
                   started: float | None = None, contaminated: list[str] | None = None) -> Location | None:
    """Score one model on one evaluation set and write the run folder; None when these results exist
    (same model, set and code version), or with `force` when a concurrent run wrote them after STARTED
    (default: now). With REFERENCE, MODEL_DIR is a DPO policy, scored by its implicit reward; with JUDGE, a
    generative judge (prefpipe.judges), its judgments written beside the scores. CONTAMINATED: the examples that
    its training data matched (None: not known), summarised and left out of a second score."""
    model_hash = folder_hash(model_dir)
    if reference is not None:  # the policy and its reference: a change to either is another model
        model_hash = hashlib.sha256(f"{model_hash}:{folder_hash(reference)}".encode()).hexdigest()
    if judge is not None:  # the judge's settings: another template or scoring is another judge
        model_hash = hashlib.sha256(f"{model_hash}:{judge.as_json()}".encode()).hexdigest()
    kind = "judge" if judge is not None else "dpo" if reference is not None else "classifier"
    fmt, examples = read_evalset_format(evalset_path, fmt)
    run = Run(run_id, run_date or date.today(), model_id, model_hash, evalset, content_hash(evalset_path),
              code_version(), kind)

    def write() -> Location | None:
        if judge is not None:
            scores, summary, judgments = judge_tables(run, examples, Judge(model_dir, judge, device=device), fmt,
                                                      contaminated)
            return write_results(results, run, scores, summary, judgments=judgments, forced=force)
        scores = score_distinct(examples, scorer(model_dir, reference, device))
        return write_results(results, run, *result_tables(run, examples, scores, fmt, contaminated), forced=force)

    return _write_once(results, run, force, started, write)


def evaluate_combo(combo: Combination, components: dict[str, tuple[Path, Path | None]], evalset_path: Path,
                   evalset: str, results: Location, *, run_id: str, run_date: date | None = None, force: bool = False,
                   fmt: str = "auto", device: str = "cpu", started: float | None = None,
                   tables: Location | None = None, contaminated: list[str] | None = None) -> Location | None:
    """A registered combination on one evaluation set, as `evaluate_model` does a model, under the
    combination's name; its reference rewards (per prompt and model) are written beside the scores. COMPONENTS:
    each model's (folder, DPO reference or None). On a set, a prompt's references are its completions (a set
    marks none as reference), with `warehouse` the warehouse's responses to it (from the copies in TABLES), with
    `samples` the reference LM's samples (cached in the lake: `lake.samples_cache`)."""
    fmt, examples = read_evalset_format(evalset_path, fmt)
    run = Run(run_id, run_date or date.today(), combo.name, combo_state(combo, components), evalset,
              content_hash(evalset_path), code_version(), "combination")

    def write() -> Path:
        scores, references = _combo_scores(combo, components, examples, results, tables, device)
        return write_results(results, run, *result_tables(run, examples, scores, fmt, contaminated), forced=force,
                             references=pa.Table.from_pylist([run.provenance() | row for row in references]))

    return _write_once(results, run, force, started, write)


def combo_state(combo: Combination, components: dict[str, tuple[Path, Path | None]]) -> str:
    """A combination's model hash: its definition and the contents (not the paths) of its models and reference
    LM, so that every machine, with its own copies, names the same state alike."""
    identity = combo if combo.reference_lm is None else replace(combo, reference_lm=folder_hash(combo.reference_lm))
    parts = [identity.as_json()] + [f"{m}:{folder_hash(p)}:{folder_hash(r) if r else ''}" for m, (p, r) in
                                    sorted(components.items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _write_once(results: Location, run: Run, force: bool, started: float | None, write: Callable[[], Location | None]
                ) -> Location | None:
    """WRITE the run under its unit's lock, unless results of the same model state, set version and code
    version exist (with FORCE: unless a concurrent run wrote them after STARTED, default now)."""
    started = time.time() if started is None else started
    with unit_lock(results, run.evalset, run.model_id):
        written = written_at(results, run)
        if written is not None and (not force or written >= started):
            return None
        return write()


def _combo_scores(combo: Combination, components: dict[str, tuple[Path, Path | None]], examples: list[Example],
                  results: Location, tables: Location | None, device: str) -> tuple[Scores, list[dict]]:
    """The combination's score of every completion, and its reference rows (r_ref per prompt and model)."""
    items = [(e.prompt, t) for e in examples for t in e.chosen + e.rejected]
    outside_items = []
    if combo.references == "warehouse" and tables is not None:
        outside_items = warehouse_responses(tables, [e.prompt for e in examples])
    elif combo.references == "samples":
        prompts = {prompt_json(e.prompt): e.prompt for e in examples}
        outside_items = [(prompts[key], text) for key, text in reference_samples(
            combo.reference_lm, prompts, combo.samples, seed=combo.seed, cache=samples_cache(results), device=device)]
    rewards, outside = {}, {}
    for model, (folder, reference) in components.items():
        values = score_items(items + outside_items, scorer(folder, reference, device))
        rewards[model] = np.array(values[:len(items)])
        outside[model] = ([prompt_json(p) for p, _ in outside_items], values[len(items):])
    score, rows = combination(combo, np.array([prompt_json(p) for p, _ in items], dtype=object), rewards,
                              outside=outside)
    values = iter(score.tolist())
    return [([next(values) for _ in e.chosen], [next(values) for _ in e.rejected]) for e in examples], rows
