"""Finding a lake's runs again: the whole runs of each kind (prefpipe.lake declares the kinds and writes the runs),
on this machine or from one listing of a bucket (copied here once, prefpipe.store), one run per unit and night,
in the order they were written, and the results' tables compacted per night for the analysts' views."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from prefpipe import store
from prefpipe.files import sweep_staging
from prefpipe.lake import CREATED, INDEX, MANIFEST, RESULTS, Kind
from prefpipe.store import Bucket, Location


def is_whole(run: Path, tables: tuple[str, ...]) -> bool:
    """A run is whole when its manifest's files are all there at their sizes; a run written before manifests
    (prefpipe 0.7, renamed into place whole) when its tables are."""
    manifest = run / MANIFEST
    if not manifest.is_file():
        return all((run / f"{name}.parquet").is_file() for name in tables)
    try:
        files = json.loads(manifest.read_text())["files"]
        return all((run / name).is_file() and (run / name).stat().st_size == f["bytes"] for name, f in files.items())
    except (ValueError, KeyError, TypeError, OSError):
        return False


def in_written_order(runs: list[Path], kind: Kind) -> list[Path]:
    """RUNS oldest first: by run date, then by when each was written (its manifest's time, else the time its
    files record; a run id ends in random hex, so two runs of one day cannot be told apart by it). Runs written
    before 0.6 record no time: they come first on their day, by id."""
    def written(run: Path) -> int:
        if (run / MANIFEST).is_file():
            return int(_manifest(run).get("written_ns", 0))
        metadata = pq.read_schema(run / f"{kind.tables[0]}.parquet").metadata or {}
        return int(metadata.get(CREATED, b"0"))

    return sorted(runs, key=lambda r: (r.parent.name, written(r), r.name))


def result_runs(results: Location) -> tuple[list[Path], list[Location]]:
    """The evaluation runs of the results lake, and the foreign folders found there."""
    found, foreign = find_runs(results, (RESULTS,))
    return found[RESULTS.name], foreign


def find_runs(root: Location, kinds: tuple[Kind, ...]) -> tuple[dict[str, list[Path]], list[Location]]:
    """The whole runs of KINDS (which share ROOT) under ROOT, by kind, and whatever else stands where runs
    belong (a foreign folder or file, a bad name or date, a run that is not whole): readers skip those and
    report them, so one stray folder cannot break every query. The runs of a bucket are read from this
    machine's copy of them (`store.mirror_runs`). Of two runs of one unit and night (two machines raced, see
    `claim_unit`), the first written is the one found."""
    if isinstance(root, Bucket):
        found, foreign = _bucket_runs(root, kinds)
    else:
        found, foreign = _disk_runs(root, kinds)
    if RESULTS.name in found:
        found[RESULTS.name] = _one_per_unit(found[RESULTS.name])
    return found, foreign


def _disk_runs(root: Path, kinds: tuple[Kind, ...]) -> tuple[dict[str, list[Path]], list[Location]]:
    found: dict[str, list[Path]] = {kind.name: [] for kind in kinds}
    foreign: list[Location] = []

    def walk(folder: Path, depth: int, candidates: tuple[Kind, ...]) -> None:
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):  # staging folders, locks, claims, caches
                continue
            fits = tuple(k for k in candidates if entry.is_dir() and k.matches(depth, entry.name))
            if not fits:
                foreign.append(entry)
            elif depth < len(fits[0].levels) - 1:
                walk(entry, depth + 1, fits)
            elif is_whole(entry, fits[0].tables):
                found[fits[0].name].append(entry)
            else:
                foreign.append(entry)

    if Path(root).is_dir():
        walk(Path(root), 0, kinds)
    return found, foreign


def _bucket_runs(root: Bucket, kinds: tuple[Kind, ...]) -> tuple[dict[str, list[Path]], list[Location]]:
    """As `_disk_runs`, from one listing of the bucket's commits (a manifest per run); the runs are copied to
    this machine once. What writers left without a commit is never listed here (`store.sweep` removes it)."""
    depth = len(kinds[0].levels)
    runs, kind_of, foreign = [], {}, []
    for partition in store.runs_of(root):
        parts, fits = partition.split("/"), kinds
        for level, part in enumerate(parts[:depth]):
            fits = tuple(k for k in fits if k.matches(level, part))
        if fits and len(parts) == depth:
            runs.append(partition)
            kind_of[partition] = fits[0]
        else:
            foreign.append(root / partition)
    whole, broken = store.mirror_runs(root, runs, MANIFEST)
    found: dict[str, list[Path]] = {kind.name: [] for kind in kinds}
    for partition in sorted(whole):
        found[kind_of[partition].name].append(whole[partition])
    return found, foreign + [root / run for run in broken]


def night_tables(results: Location, runs: list[Path]) -> dict[str, list[Path]] | None:
    """The tables (scores, summary) of the results RUNS, compacted into one file each per night: a leaderboard
    over 3,000 runs reads 60 files, not 6,000. An index, kept beside the lake (in `.index/`, or in this machine's
    copy of a bucket's runs) and named by the runs it holds: a night whose runs change gets a new one (runs never
    change, they are only added). None where no index can be written (a lake this user may only read)."""
    folder = (store.mirror_of(results) if isinstance(results, Bucket) else Path(results)) / INDEX
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None
    sweep_staging(folder)  # what a killed reader left
    nights: dict[str, list[Path]] = {}
    for run in runs:
        nights.setdefault(run.parent.name.partition("=")[2], []).append(run)
    files: dict[str, list[Path]] = {table: [] for table in RESULTS.tables}
    for night, of_night in sorted(nights.items()):
        key = hashlib.sha256("\n".join(sorted(map(str, of_night))).encode()).hexdigest()[:16]
        for table in RESULTS.tables:
            compact = folder / f"{night}-{key}-{table}.parquet"
            if not compact.is_file():
                staged = folder / f".staging-{uuid.uuid4().hex}-{compact.name}"
                with duckdb.connect() as con:
                    con.read_parquet([str(run / f"{table}.parquet") for run in of_night], hive_partitioning=True,
                                     union_by_name=True).write_parquet(str(staged))
                os.replace(staged, compact)  # whole or not at all; two readers may both build it
                for older in folder.glob(f"{night}-*-{table}.parquet"):  # superseded an hour ago: unread now
                    if older != compact and time.time() - older.stat().st_mtime > 3600:
                        older.unlink(missing_ok=True)
            files[table].append(compact)
    return files


def _one_per_unit(runs: list[Path]) -> list[Path]:
    """RUNS less the later runs of a unit and night that has two (two machines scored it at once; the loser
    removes its run once it sees the other's claim). Runs written before 0.8 name no unit: each is kept."""
    first: dict[str, tuple[int, str, Path]] = {}
    kept = []
    for run in runs:
        manifest = _manifest(run)
        if not manifest.get("unit"):
            kept.append(run)
            continue
        key = json.dumps(manifest["unit"], sort_keys=True)
        mine = (int(manifest.get("written_ns", 0)), run.name, run)
        first[key] = min(first.get(key, mine), mine)
    return sorted(kept + [run for _, _, run in first.values()])


def _manifest(run: Path) -> dict:
    try:
        return json.loads((run / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
