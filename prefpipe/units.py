"""Training data as whole annotations (units): each with its compared responses and its pairs.

A snapshot of the units is written beside the model (`data.parquet`), so training, resuming and every
process of a multi-GPU run read the same data, and the warehouse is free for ingest while a model trains.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from prefpipe.settings import SPLITS
from prefpipe.sql import run_script

SNAPSHOT = "data.parquet"
EXCLUDED = "excluded.json"  # beside the snapshot: what --exclude-evalset left out


@dataclass
class Unit:
    """One annotation: `texts` are its compared responses; pairs index into them."""

    annotation_id: str
    split: str
    prompt: str | list[dict]
    annotator_id: str
    source: str
    batch_id: str
    texts: list[str]
    ranks: list[int]  # effective rank, best 1 (the human edit 0)
    pairs: list[tuple[int, int, int, float]]  # (chosen, rejected, rank gap, weight)


def snapshot_units(con, out: Path, splits: tuple[str, ...] = SPLITS, exclude: list[str] | None = None) -> dict:
    """Write the units of SPLITS to OUT (Parquet, atomically), without the annotations that match the
    evaluation sets EXCLUDE (prefpipe.contamination; recorded beside it); return what the snapshot holds."""
    from prefpipe.contamination import exclude_matches  # it reads snapshots: imported here, not in a cycle

    excluded = exclude_matches(con, exclude or [])
    con.execute("SET VARIABLE splits = ?", [list(splits)])
    run_script(con, "train/units.sql")
    (out.parent / EXCLUDED).unlink(missing_ok=True)
    if excluded:
        (out.parent / EXCLUDED).write_text(json.dumps(excluded, indent=1))
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    con.execute("COPY (SELECT * FROM train_units ORDER BY annotation_id) TO ? (FORMAT parquet)", [str(temporary)])
    temporary.replace(out)
    return snapshot_record(out)


def snapshot_record(path: Path, units: list[Unit] | None = None) -> dict:
    """What the snapshot at PATH holds (`describe`), and what was excluded from it, if anything."""
    record = describe(read_units(path) if units is None else units)
    if (path.parent / EXCLUDED).is_file():
        record["excluded"] = json.loads((path.parent / EXCLUDED).read_text())
    return record


def read_units(path: Path, split: str | None = None) -> list[Unit]:
    units = []
    for row in pq.read_table(path).to_pylist():
        if split is not None and row["split"] != split:
            continue
        index = {position: i for i, position in enumerate(row["positions"])}
        units.append(Unit(row["annotation_id"], row["split"], json.loads(row["prompt"]), row["annotator_id"],
                          row["source"], row["batch_id"], row["texts"], row["ranks"],
                          [(index[p["chosen"]], index[p["rejected"]], p["margin"], p["weight"]) for p in row["pairs"]]))
    return units


def describe(units: list[Unit]) -> dict:
    """The data snapshot recorded with a model: batches, pairs per split, and a hash of the content."""
    digest = hashlib.sha256()
    for u in units:
        digest.update(json.dumps([u.annotation_id, u.split, u.prompt, u.texts, u.ranks, u.pairs]).encode())
    pairs = {s: sum(len(u.pairs) for u in units if u.split == s) for s in SPLITS}
    return {"batch_ids": sorted({u.batch_id for u in units}), "annotations": len(units), "pairs": pairs,
            "hash": digest.hexdigest()}
