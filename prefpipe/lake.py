"""The lake: where results live, how a run is written whole, how runs are found again.

    results/evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN/scores.parquet   one row per example
    results/evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN/summary.parquet  subsets, sections, scores
    rewards/run_date=YYYY-MM-DD/run_id=RUN/{candidates,rewards}.parquet            candidates and their rewards
    analysis/analysis=tilt/run_date=YYYY-MM-DD/run_id=RUN/{prompts,frontier}.parquet, frontier.png
    analysis/analysis=tradeoff/run_date=YYYY-MM-DD/run_id=RUN/{samples,corpora}.parquet, tradeoff.png

Columns are documented in schemas/results.md. A run's folder is written under a hidden staging folder
and renamed into place in one step, so a killed run leaves no partial partition, and a rerun adds a
new run folder instead of overwriting an old one (history is kept). How results are computed is
prefpipe.evaluation's business; this module only stores and finds them.
"""

from __future__ import annotations

import fcntl
import re
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from prefpipe.files import write_whole
from prefpipe.names import NAME

DATE, RUN = r"run_date=\d{4}-\d{2}-\d{2}", f"run_id={NAME}"
CREATED = b"prefpipe.written_ns"  # in the metadata of every Parquet file of a run: when the run was written


@dataclass(frozen=True)
class Layout:
    """A kind of run folder: the patterns of its partition levels, and the files that a whole run holds
    (FILES, or per value of the first level, KINDS)."""

    levels: tuple[str, ...]
    files: tuple[str, ...] = ()
    kinds: dict[str, tuple[str, ...]] | None = None

    def files_of(self, run: Path) -> tuple[str, ...]:
        if self.kinds is None:
            return self.files
        return self.kinds[run.relative_to(run.parents[len(self.levels) - 1]).parts[0].partition("=")[2]]


RESULTS = Layout((f"evalset={NAME}", f"model={NAME}", DATE, RUN), ("scores.parquet", "summary.parquet"))
REWARDS = Layout((DATE, RUN), ("candidates.parquet", "rewards.parquet"))
ANALYSIS_FILES = {"tilt": ("prompts.parquet", "frontier.parquet"), "tradeoff": ("samples.parquet", "corpora.parquet")}
ANALYSES = Layout((f"analysis=({'|'.join(ANALYSIS_FILES)})", DATE, RUN), kinds=ANALYSIS_FILES)


def new_run_id(run_date: date) -> str:
    """A run's id: its date and 8 random hex digits (two runs of one day never share one)."""
    return f"{run_date:%Y%m%d}-{uuid.uuid4().hex[:8]}"


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


def write_results(results: Path, run: Run, scores: pa.Table, summary: pa.Table, **more: pa.Table) -> Path:
    """Write the run's folder atomically (staged, then renamed): scores, summary and MORE tables; return it."""
    return write_partition(results, run.partition(), {"scores": scores, "summary": summary, **more})


def write_partition(root: Path, partition: str, tables: dict[str, pa.Table],
                    also: Callable[[Path], None] | None = None) -> Path:
    """The run folder ROOT/PARTITION with a NAME.parquet per table (and what ALSO writes), whole or not at all."""
    final = root / partition
    if final.exists():
        raise FileExistsError(f"{final}: that run is already there")

    stamp = str(time.time_ns()).encode()

    def write(staging: Path) -> None:
        for name, table in tables.items():
            pq.write_table(table.replace_schema_metadata((table.schema.metadata or {}) | {CREATED: stamp}),
                           staging / f"{name}.parquet")
        if also is not None:
            also(staging)

    return write_whole(root, final, write)


def in_written_order(runs: list[Path], layout: Layout) -> list[Path]:
    """RUNS oldest first: by run date, then by when each was written (the time its files record; a run id ends
    in random hex, so two runs of one day cannot be told apart by it). Runs written before 0.6 record no time:
    they come first on their day, by id."""
    def written(run: Path) -> int:
        metadata = pq.read_schema(run / layout.files_of(run)[0]).metadata or {}
        return int(metadata.get(CREATED, b"0"))

    return sorted(runs, key=lambda r: (r.parent.name, written(r), r.name))


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


def samples_cache(results: Path) -> Path:
    """Where a reference LM's samples are kept (prefpipe.sampling.reference_samples): hidden in the lake, beside
    its locks, so that every worker that sees the lake reuses them and no reader takes them for results."""
    return results / ".reference-samples"


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
    """The evaluation runs of the results lake, and the foreign folders found there."""
    return partitions(results, RESULTS)


def partitions(root: Path, layout: Layout) -> tuple[list[Path], list[Path]]:
    """The run folders under ROOT (every level matching LAYOUT, holding all its files), and whatever else
    stands where partitions belong (a foreign folder or file, a bad name or date): readers skip those and
    report them, so one stray folder cannot break every query."""
    runs: list[Path] = []
    foreign: list[Path] = []

    def walk(folder: Path, level: int) -> None:
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):  # staging folders and locks
                continue
            if not (entry.is_dir() and _partition(layout.levels[level], entry.name)):
                foreign.append(entry)
            elif level < len(layout.levels) - 1:
                walk(entry, level + 1)
            elif all((entry / name).is_file() for name in layout.files_of(entry)):
                runs.append(entry)
            else:
                foreign.append(entry)

    if Path(root).is_dir():
        walk(Path(root), 0)
    return runs, foreign


def _partition(pattern: str, name: str) -> bool:
    if not re.fullmatch(pattern, name):
        return False
    try:
        return pattern != DATE or bool(date.fromisoformat(name.removeprefix("run_date=")))
    except ValueError:
        return False
