"""The lake that analysts query: evaluation results as hive-partitioned Parquet under data/results/,
and Parquet copies of the warehouse tables under data/tables/.

    results/evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN/scores.parquet   one row per example
    results/evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN/summary.parquet  subsets, sections, scores

Columns are documented in schemas/results.md. A run's folder is written under a hidden staging folder
and renamed into place in one step, so a killed run leaves no partial partition, and a rerun adds a
new run folder instead of overwriting an old one (history is kept).
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from prefpipe.names import NAME
from prefpipe.rewardbench import best_of_n_credit, best_of_n_scores, pairwise_scores, section_of

if TYPE_CHECKING:
    from prefpipe.evalsets import Example

PACKAGE = Path(__file__).resolve().parent
STALE_STAGING_S = 86_400
SCORING_CODE = (*(PACKAGE / name for name in ("data.py", "dpo.py", "evalsets.py", "lake.py", "model.py",
                                               "rewardbench.py")),
                PACKAGE.parent / "schemas" / "rewardbench_sections.json")
LEVELS = (f"evalset={NAME}", f"model={NAME}", r"run_date=\d{4}-\d{2}-\d{2}", f"run_id={NAME}")  # the partitions
RESULT_FILES = ("scores.parquet", "summary.parquet")


def code_version() -> str:
    """The package version and a hash of the scoring code and the RewardBench table: a change to how scores
    are made is a new version."""
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in SCORING_CODE)).hexdigest()[:12]
    return f"{metadata.version('prefpipe')}+{digest}"


def folder_hash(path: Path, pattern: str = "*") -> str:
    """sha256 over the files of a folder (names and bytes), e.g. a model's weights and config."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).glob(pattern) if p.is_file()):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Run:
    """Who and what a set of results belongs to."""

    run_id: str
    run_date: date
    model_id: str
    model_hash: str
    evalset: str
    evalset_hash: str
    code_version: str

    def partition(self) -> str:
        return f"evalset={self.evalset}/model={self.model_id}/run_date={self.run_date.isoformat()}/run_id={self.run_id}"


def result_tables(run: Run, examples: list[Example], scores: list[tuple[list[float], list[float]]],
                  fmt: str) -> tuple[pa.Table, pa.Table]:
    """Per-example rows and summary rows (subset, section, score) of one model on one evaluation set."""
    rows = []
    for e, (chosen, rejected) in zip(examples, scores, strict=True):
        credit = best_of_n_credit(chosen, rejected) if fmt == "rewardbench2" else float(chosen[0] > rejected[0])
        rows.append({"example_id": e.example_id, "subset": e.subset, "section": section_of(e.subset),
                     "chosen_scores": chosen, "rejected_scores": rejected,
                     "margin": max(chosen) - max(rejected), "credit": credit,
                     "chosen_chars": max(map(len, e.chosen)), "rejected_chars": max(map(len, e.rejected))})
    if fmt == "rewardbench2":
        got = best_of_n_scores([(e.subset, e.example_id, c, r)
                                for e, (c, r) in zip(examples, scores, strict=True)])
        summary = [("subset", s, v) for s, v in got["subsets"].items()] + [("score", "score", got["score"])]
    else:
        got = pairwise_scores([(e.subset, c[0], r[0]) for e, (c, r) in zip(examples, scores, strict=True)])
        summary = ([("subset", s, v["accuracy"]) for s, v in got["subsets"].items()]
                   + [("section", s, v) for s, v in got["sections"].items() if v is not None]
                   + [("score", k, got[k]) for k in ("score", "score_with_prior_sets")])
    summary += diagnostics(rows)
    counts = Counter(r["subset"] for r in rows)
    provenance = {k: getattr(run, k) for k in ("run_id", "run_date", "model_id", "model_hash", "evalset",
                                                "evalset_hash", "code_version")}
    scores_table = pa.Table.from_pylist([provenance | r for r in rows])
    per_subset = ("subset", "length_bias")
    summary_table = pa.Table.from_pylist([provenance | {"level": level, "name": name, "value": value,
                                                        "examples": counts.get(name) if level in per_subset else None}
                                          for level, name, value in summary])
    return scores_table, summary_table


def diagnostics(rows: list[dict]) -> list[tuple[str, str, float]]:
    """What the common tools do not report: the margin distribution, the calibration of σ(margin), and per
    subset the accuracy of "always pick the longer answer" (to read beside the model's accuracy)."""
    from prefpipe.metrics import expected_calibration_error

    margins = sorted(r["margin"] for r in rows)
    deciles = statistics.quantiles(margins, n=10) if len(margins) > 1 else margins * 9
    out = [("diagnostic", "margin_p10", deciles[0]), ("diagnostic", "margin_p50", statistics.median(margins)),
           ("diagnostic", "margin_p90", deciles[-1]), ("diagnostic", "ece", expected_calibration_error(margins))]
    longer: dict[str, list[bool]] = {}
    for r in rows:
        longer.setdefault(r["subset"], []).append(r["chosen_chars"] > r["rejected_chars"])
    return out + [("length_bias", subset, sum(v) / len(v)) for subset, v in sorted(longer.items())]


def written_at(results: Path, run: Run) -> float | None:
    """When the newest results of RUN's (model, set, code version) were written, on any date; None: never."""
    times = []
    for summary in (results / f"evalset={run.evalset}" / f"model={run.model_id}").glob("run_date=*/run_id=*/"
                                                                                      "summary.parquet"):
        row = pq.read_table(summary, columns=["model_hash", "evalset_hash", "code_version"]).slice(0, 1).to_pylist()
        if row and row[0] == {"model_hash": run.model_hash, "evalset_hash": run.evalset_hash,
                              "code_version": run.code_version}:
            times.append(summary.stat().st_mtime)
    return max(times, default=None)


@contextmanager
def unit_lock(results: Path, evalset: str, model_id: str):
    """One writer at a time per (set, model), across threads and processes (on a shared file system where
    it supports flock): a second nightly run waits for the first, then sees what it wrote."""
    folder = results / ".locks" / evalset
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{model_id}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def result_runs(results: Path) -> tuple[list[Path], list[Path]]:
    """The run folders of the lake (evalset=/model=/run_date=/run_id=, holding both files), and whatever
    else stands where partitions belong (a foreign folder or file, a bad name or date): readers skip those
    and report them, so one stray folder cannot break every query."""
    runs: list[Path] = []
    foreign: list[Path] = []

    def walk(folder: Path, level: int) -> None:
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):  # staging folders and locks
                continue
            if not (entry.is_dir() and _partition(level, entry.name)):
                foreign.append(entry)
            elif level < len(LEVELS) - 1:
                walk(entry, level + 1)
            elif all((entry / name).is_file() for name in RESULT_FILES):
                runs.append(entry)
            else:
                foreign.append(entry)

    if Path(results).is_dir():
        walk(Path(results), 0)
    return runs, foreign


def _partition(level: int, name: str) -> bool:
    if not re.fullmatch(LEVELS[level], name):
        return False
    try:
        return level != 2 or bool(date.fromisoformat(name.removeprefix("run_date=")))
    except ValueError:
        return False


def write_results(results: Path, run: Run, scores: pa.Table, summary: pa.Table) -> Path:
    """Write the run's folder atomically (staged, then renamed); return it."""
    final = results / run.partition()
    if final.exists():
        raise FileExistsError(f"{final}: results of run {run.run_id} are already there")

    def write(staging: Path) -> None:
        pq.write_table(scores, staging / "scores.parquet")
        pq.write_table(summary, staging / "summary.parquet")

    return write_whole(results, final, write)


def write_whole(parent: Path, final: Path, write: Callable[[Path], None]) -> Path:
    """WRITE a folder's files into a hidden staging folder of PARENT (one per writer: units run
    concurrently), then rename it to FINAL in one step: the folder appears whole or not at all. Folders
    and files follow the user's umask, so readers under another account (analysts, Dask workers) can read."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep_staging(parent)
    staging = parent / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        write(staging)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def sweep_staging(folder: Path, older_than_s: float = STALE_STAGING_S) -> None:
    """Remove what killed writers left in FOLDER (hidden staging folders, never read as results). Only old
    ones: a young one may belong to a unit that is writing now, on this machine or another."""
    for staging in folder.glob(".staging-*"):
        if time.time() - staging.stat().st_mtime > older_than_s:
            shutil.rmtree(staging, ignore_errors=True)


def evaluate(model_dir: Path, model_id: str, evalset_path: Path, evalset: str, results: Path, *,
             run_id: str, run_date: date | None = None, force: bool = False, fmt: str = "auto",
             reference: Path | None = None, device: str = "cpu", started: float | None = None) -> Path | None:
    """Score one model on one evaluation set and write the run folder; None when these results exist
    (same model, set and code version), or with `force` when a concurrent run wrote them after STARTED
    (default: now). With REFERENCE, MODEL_DIR is a DPO policy, scored by its implicit reward."""
    from prefpipe.evalsets import read_evalset_format, score_distinct, score_examples
    from prefpipe.formats import content_hash
    from prefpipe.model import load_reward_model, load_tokenizer

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
        if reference is not None:
            from prefpipe.dpo import ImplicitReward

            scores = score_distinct(examples, ImplicitReward(model_dir, reference, device))
        else:
            model = load_reward_model(model_dir).to(device)
            scores = score_examples(model, load_tokenizer(model_dir), examples, device=device)
        return write_results(results, run, *result_tables(run, examples, scores, fmt))
