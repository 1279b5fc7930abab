"""Training data as whole ranked annotations: each with its compared responses and its pairs.

A snapshot of them is written beside the model (`data.parquet`), so training, resuming and every process of
a multi-GPU run read the same data, and the warehouse is free for ingest while a model trains. It also says
which evaluation examples a model's training data matched (`model_contamination`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from prefpipe.contamination import exclude_matches
from prefpipe.dedup import normalise_prompt, prompt_key
from prefpipe.settings import SPLITS
from prefpipe.sql import registered, run_script, sql

SNAPSHOT = "data.parquet"
EXCLUDED = "excluded.json"  # beside the snapshot: what --exclude-evalset left out


@dataclass
class RankedAnnotation:
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


def write_snapshot(con, out: Path, splits: tuple[str, ...] = SPLITS, exclude: list[str] | None = None) -> dict:
    """Write the annotations of SPLITS to OUT (Parquet, atomically), without the annotations that match the
    evaluation sets EXCLUDE (prefpipe.contamination; recorded beside it); return what the snapshot holds."""
    excluded = exclude_matches(con, exclude or [])
    con.execute("SET VARIABLE splits = ?", [list(splits)])
    run_script(con, "train/annotations.sql")
    (out.parent / EXCLUDED).unlink(missing_ok=True)
    if excluded:
        (out.parent / EXCLUDED).write_text(json.dumps(excluded, indent=1))
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    con.execute(sql("train/write_snapshot.sql"), [str(temporary)])
    temporary.replace(out)
    return snapshot_record(out)


def snapshot_record(path: Path, annotations: list[RankedAnnotation] | None = None) -> dict:
    """What the snapshot at PATH holds (`describe`), and what was excluded from it, if anything."""
    record = describe(read_snapshot(path) if annotations is None else annotations)
    if (path.parent / EXCLUDED).is_file():
        record["excluded"] = json.loads((path.parent / EXCLUDED).read_text())
    return record


def read_snapshot(path: Path, split: str | None = None) -> list[RankedAnnotation]:
    annotations = []
    for row in pq.read_table(path).to_pylist():
        if split is not None and row["split"] != split:
            continue
        index = {position: i for i, position in enumerate(row["positions"])}
        annotations.append(RankedAnnotation(
            row["annotation_id"], row["split"], json.loads(row["prompt"]), row["annotator_id"], row["source"],
            row["batch_id"], row["texts"], row["ranks"],
            [(index[p["chosen"]], index[p["rejected"]], p["margin"], p["weight"]) for p in row["pairs"]]))
    return annotations


def describe(annotations: list[RankedAnnotation]) -> dict:
    """The data snapshot recorded with a model: batches, pairs per split, and a hash of the content."""
    digest = hashlib.sha256()
    for u in annotations:
        digest.update(json.dumps([u.annotation_id, u.split, u.prompt, u.texts, u.ranks, u.pairs]).encode())
    pairs = {s: sum(len(u.pairs) for u in annotations if u.split == s) for s in SPLITS}
    return {"batch_ids": sorted({u.batch_id for u in annotations}), "annotations": len(annotations), "pairs": pairs,
            "hash": digest.hexdigest()}


def model_contamination(con, model_dir: Path, sets: list[dict]) -> dict[str, list[str]] | None:
    """Per set of SETS (latest versions: name, version), the examples that match the data the model at
    MODEL_DIR trained on (its snapshot's training split, by annotation or by prompt form); None when the model
    has no snapshot (trained elsewhere: unknown)."""
    snapshot = Path(model_dir) / SNAPSHOT
    if not snapshot.is_file():
        return None
    rows = [r for r in pq.read_table(snapshot, columns=["annotation_id", "split", "prompt"]).to_pylist()
            if r["split"] == "train"]
    with registered(con, trained_ids=pa.table({"annotation_id": [r["annotation_id"] for r in rows]}),
                    trained_keys=pa.table({"prompt_key": sorted(
                        {prompt_key(normalise_prompt(json.loads(r["prompt"]))) for r in rows})})):
        return {s["name"]: [e for (e,) in con.execute(sql("contamination/model_examples.sql"),
                                                      [s["name"], s["version"]]).fetchall()] for s in sets}
