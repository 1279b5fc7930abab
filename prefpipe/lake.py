"""The lake: where results live, how a run is written whole, how runs are found again.

    results/evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN/scores.parquet   one row per example
    results/evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN/summary.parquet  subsets, sections, scores
    rewards/run_date=YYYY-MM-DD/run_id=RUN/{candidates,rewards}.parquet            candidates and their rewards
    analysis/analysis=tilt/run_date=YYYY-MM-DD/run_id=RUN/{prompts,frontier}.parquet, frontier.png
    analysis/analysis=tradeoff/run_date=YYYY-MM-DD/run_id=RUN/{samples,corpora}.parquet, tradeoff.png

Each kind of run (results, rewards, tilt, tradeoff) is declared once here (`Kind`): its root, partition levels,
tables, picture and analyst views; writers ask it for a run's partition, readers (prefpipe.lake_runs) for its
whole runs. Columns are documented in schemas/results.md. The root is a folder or a bucket (prefpipe.store). A
run is written whole: on a disk under a hidden staging folder, its manifest (`_manifest.json`: every file with
its size and sha256) written last, then renamed into place in one step; in a bucket, which has no rename, its
files uploaded and its manifest created last, only if absent. Readers see a run only when its manifest's files
are all there, so a killed writer leaves nothing that they read. A results run then claims its unit (model
state, set version, code version, night), first writer wins, so that two machines never leave two runs of it. A
rerun adds a new run folder instead of overwriting an old one (history is kept). How results are computed is
prefpipe.evaluation's business; this module only stores them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from prefpipe import store
from prefpipe.files import content_hash, write_whole
from prefpipe.names import NAME
from prefpipe.store import Bucket, Location

DATE, RUN = r"\d{4}-\d{2}-\d{2}", NAME  # the values of the run_date and run_id levels
CREATED = b"prefpipe.written_ns"  # in the metadata of every Parquet file of a run: when the run was written
MANIFEST = "_manifest.json"  # written last into a run: its files, sizes and checksums; a run without it is unseen
INDEX = ".index"  # under the results: their tables compacted per night (`night_tables`), new when runs are added


@dataclass(frozen=True)
class Kind:
    """A kind of run of the lake, declared once: where its runs live (a Settings path), the partition levels under
    it ((key, pattern of the value) each; a fixed value for a level that names the kind), the tables every run
    holds (NAME.parquet), its picture, and the analyst views over its runs (the script, and the variable that
    lists each table's files). Writers ask it for a run's partition, readers for the whole runs."""

    name: str
    root: str
    levels: tuple[tuple[str, str], ...]
    tables: tuple[str, ...]
    views: str
    variables: dict[str, str] = field(default_factory=dict)  # view variable -> table
    picture: str | None = None
    caption: str = ""  # of its picture, in the morning report
    view: str = ""  # the view that the report names beside its table

    def partition(self, **values: object) -> str:
        """The run's folder under the root, from its level values (run_date a date; a fixed level, whose pattern
        is a plain word, needs none)."""
        missing = [key for key, pattern in self.levels if key not in values and not pattern.isidentifier()]
        if missing:
            raise TypeError(f"a {self.name} run's partition needs {', '.join(missing)}")
        return "/".join(f"{key}={values.get(key, pattern)}" for key, pattern in self.levels)

    def matches(self, depth: int, name: str) -> bool:
        key, pattern = self.levels[depth]
        value = name.removeprefix(f"{key}=")
        if value == name or not re.fullmatch(pattern, value):
            return False
        try:
            return key != "run_date" or bool(date.fromisoformat(value))
        except ValueError:
            return False


RESULTS = Kind("results", "results", (("evalset", NAME), ("model", NAME), ("run_date", DATE), ("run_id", RUN)),
               ("scores", "summary"), "views/eval.sql", {"score_files": "scores", "summary_files": "summary"})
REWARDS = Kind("rewards", "rewards", (("run_date", DATE), ("run_id", RUN)), ("candidates", "rewards"),
               "views/rewards.sql", {"candidate_files": "candidates", "reward_files": "rewards"})
TILT = Kind("tilt", "analysis", (("analysis", "tilt"), ("run_date", DATE), ("run_id", RUN)), ("prompts", "frontier"),
            "views/tilt.sql", {"tilt_prompt_files": "prompts", "tilt_frontier_files": "frontier"}, "frontier.png",
            "The reward–KL frontier of the tilted policy π_ref·exp(r/β) and of best-of-n, averaged over prompts",
            "tilt_frontier")
TRADEOFF = Kind("tradeoff", "analysis", (("analysis", "tradeoff"), ("run_date", DATE), ("run_id", RUN)),
                ("samples", "corpora"), "views/tradeoff.sql",
                {"tradeoff_sample_files": "samples", "tradeoff_corpus_files": "corpora"}, "tradeoff.png",
                "The probability–quality trade-off: mean log-probability under the prior against mean reward, per "
                "sampling setting", "tradeoff_corpora")
KINDS = (RESULTS, REWARDS, TILT, TRADEOFF)
ANALYSES = tuple(k for k in KINDS if k.root == "analysis")


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
    model_kind: str = "classifier"  # classifier | dpo | judge | combination

    def partition(self) -> str:
        return RESULTS.partition(evalset=self.evalset, model=self.model_id, run_date=self.run_date, run_id=self.run_id)

    def unit(self) -> dict:
        """What makes two runs the same: one model state on one set version, by one code version, one night."""
        return {k: str(v) for k, v in self.provenance().items() if k != "run_id"}

    def provenance(self) -> dict:
        """The columns every result row carries, so that any row joins back to what made it."""
        return {k: getattr(self, k) for k in ("run_id", "run_date", "model_id", "model_kind", "model_hash", "evalset",
                                              "evalset_hash", "code_version")}


def write_results(results: Location, run: Run, scores: pa.Table, summary: pa.Table, *, forced: bool = False,
                  **more: pa.Table) -> Location | None:
    """Write the run's folder whole: scores, summary and MORE tables; return it, or None when another writer
    (another machine) wrote the same unit first tonight (`claim_unit`): then this run is removed. A FORCED
    run is a unit of its own (it is asked for again on purpose)."""
    unit = run.unit() | ({"forced": run.run_id} if forced else {})
    folder = write_partition(results, run.partition(), {"scores": scores, "summary": summary, **more}, unit=unit)
    if claim_unit(results, unit, run.partition()):
        return folder
    remove_run(results, run.partition())
    return None


def write_partition(root: Location, partition: str, tables: dict[str, pa.Table],
                    also: Callable[[Path], None] | None = None, unit: dict | None = None) -> Location:
    """The run folder ROOT/PARTITION with a NAME.parquet per table (and what ALSO writes), whole or not at all:
    staged, its manifest written last, then renamed into place (on a disk) or its manifest created only if
    absent (in a bucket, which has no rename). UNIT: what the run is of (a results run's unit), in its manifest."""
    final = root / partition
    stamp = time.time_ns()
    metadata = {CREATED: str(stamp).encode()}

    def write(staging: Path) -> None:
        for name, table in tables.items():
            pq.write_table(table.replace_schema_metadata((table.schema.metadata or {}) | metadata),
                           staging / f"{name}.parquet")
        if also is not None:
            also(staging)
        files = {p.name: {"bytes": p.stat().st_size, "sha256": content_hash(p)}
                 for p in sorted(staging.iterdir()) if p.is_file()}
        (staging / MANIFEST).write_text(json.dumps({"partition": partition, "written_ns": stamp, "files": files}
                                                   | ({"unit": unit} if unit else {}), indent=1))

    if isinstance(root, Bucket):
        with tempfile.TemporaryDirectory(prefix="prefpipe-run-") as staging:
            write(Path(staging))
            try:
                store.upload_run(Path(staging), root, partition, MANIFEST)
            except FileExistsError:
                raise FileExistsError(f"{final}: that run is already there") from None
        return final
    if final.exists():
        raise FileExistsError(f"{final}: that run is already there")
    return write_whole(root, final, write)


def remove_run(root: Location, partition: str) -> None:
    """Remove a run: in a bucket its commit first (readers stop seeing it), then its files."""
    if isinstance(root, Bucket):
        store.remove_run(root, partition)
    else:
        shutil.rmtree(root / partition, ignore_errors=True)


def claim_unit(results: Location, unit: dict, partition: str) -> bool:
    """Claim UNIT (a model state on a set version, with one code version, on one night) for the run at
    PARTITION, first writer wins: a small object created only if absent (`If-None-Match: *` in a bucket,
    O_EXCL on a disk), so that two workers on different machines that scored the same unit leave one run. True
    when this run holds the claim (or a claim of it was left by an earlier try of the same run)."""
    key = hashlib.sha256(json.dumps(unit, sort_keys=True).encode()).hexdigest()
    claim, text = results / ".claims" / f"{key}.json", json.dumps({"run": partition, "unit": unit}).encode()
    if isinstance(claim, Bucket):
        return store.create(claim, text) or json.loads(store.read_bytes(claim))["run"] == partition
    claim.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(claim, "xb") as f:
            f.write(text)
        return True
    except FileExistsError:
        return json.loads(claim.read_bytes() or b"{}").get("run") == partition


def written_at(results: Location, run: Run) -> float | None:
    """When the newest results of RUN's (model, set, code version) were written, on any date; None: never."""
    wanted = {k: str(v) for k, v in run.provenance().items() if k in ("model_hash", "evalset_hash", "code_version")}
    pair = f"evalset={run.evalset}/model={run.model_id}"
    times = []
    if isinstance(results, Bucket):
        for manifest in store.manifests(results, store.runs_of(results, pair), MANIFEST).values():
            unit = (manifest or {}).get("unit") or {}
            if all(unit.get(k) == v for k, v in wanted.items()):
                times.append(manifest.get("written_ns", 0) / 1e9)
        return max(times, default=None)
    for summary in (results / pair).glob("run_date=*/run_id=*/summary.parquet"):
        row = pq.read_table(summary, columns=list(wanted)).slice(0, 1).to_pylist()
        if row and row[0] == wanted:
            times.append(summary.stat().st_mtime)
    return max(times, default=None)


def samples_cache(results: Location) -> Path:
    """Where a reference LM's samples are kept (prefpipe.sampling.reference_samples): hidden in the lake, beside
    its locks, so that every worker that sees the lake reuses them and no reader takes them for results; for a
    bucket, in this machine's cache."""
    if isinstance(results, Bucket):
        return store.mirror_of(results) / ".reference-samples"
    return results / ".reference-samples"


@contextmanager
def unit_lock(results: Location, evalset: str, model_id: str):
    """One writer at a time per (set, model), across threads and processes (on a shared file system where
    it supports flock; for a bucket, on this machine, and `claim_unit` across machines): a second nightly run
    waits for the first, then sees what it wrote."""
    folder = (store.mirror_of(results) if isinstance(results, Bucket) else results) / ".locks" / evalset
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{model_id}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
