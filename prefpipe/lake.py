"""The results lake: where evaluation results live, how a run is written whole, how they are read back.

    results/evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN/scores.parquet   one row per example
    results/evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN/summary.parquet  subsets, sections, scores

Columns are documented in schemas/results.md. A run's folder is written under a hidden staging folder
and renamed into place in one step, so a killed run leaves no partial partition, and a rerun adds a
new run folder instead of overwriting an old one (history is kept). How results are computed is
prefpipe.evaluation's business; this module only stores and finds them.
"""

from __future__ import annotations

import fcntl
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from prefpipe.files import write_whole
from prefpipe.names import NAME

LEVELS = (f"evalset={NAME}", f"model={NAME}", r"run_date=\d{4}-\d{2}-\d{2}", f"run_id={NAME}")  # the partitions
RESULT_FILES = ("scores.parquet", "summary.parquet")


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

    def provenance(self) -> dict:
        """The columns every result row carries, so that any row joins back to what made it."""
        return {k: getattr(self, k) for k in ("run_id", "run_date", "model_id", "model_hash", "evalset",
                                              "evalset_hash", "code_version")}


def write_results(results: Path, run: Run, scores: pa.Table, summary: pa.Table) -> Path:
    """Write the run's folder atomically (staged, then renamed); return it."""
    final = results / run.partition()
    if final.exists():
        raise FileExistsError(f"{final}: results of run {run.run_id} are already there")

    def write(staging: Path) -> None:
        pq.write_table(scores, staging / "scores.parquet")
        pq.write_table(summary, staging / "summary.parquet")

    return write_whole(results, final, write)


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
