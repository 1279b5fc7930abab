"""Training data (prefpipe.training_data): the snapshot beside a model holds every pair of the warehouse's
splits once, reads back as written, and its hash is its content's; what a model trained on is known only
from its snapshot."""

from __future__ import annotations

import pyarrow.parquet as pq

from prefpipe import training_data
from prefpipe.ingest import ingest_file
from prefpipe.synth import synthetic_batch
from prefpipe.warehouse import Warehouse


def test_a_snapshot_holds_every_pair_once_and_reads_back_as_written(tmp_path, settings):
    with Warehouse.open(settings) as wh:
        summary = ingest_file(wh, synthetic_batch(tmp_path / "b.jsonl", 40, bad_lines=0), settings)
        path = tmp_path / "run" / training_data.SNAPSHOT
        path.parent.mkdir()
        described = training_data.write_snapshot(wh.con, path, splits=("train", "test"))
        assert training_data.model_contamination(wh.con, tmp_path / "elsewhere", []) is None  # no snapshot: unknown
        assert training_data.model_contamination(wh.con, path.parent, [{"name": "none", "version": "v"}]) == {
            "none": []}
    annotations = training_data.read_snapshot(path)
    assert described == training_data.snapshot_record(path) == training_data.describe(annotations)
    assert {a.split for a in annotations} <= {"train", "test"} and described["annotations"] == len(annotations)
    assert described["pairs"]["validation"] == 0
    everything = sum(len(a.pairs) for a in annotations)
    assert everything == described["pairs"]["train"] + described["pairs"]["test"] <= summary.pairs
    for a in annotations:  # pairs index into the texts; the chosen one is ranked better
        assert all(a.ranks[c] < a.ranks[r] or gap == 0 for c, r, gap, _ in a.pairs)
    assert pq.read_table(path).num_rows == len(annotations)
    assert [a.annotation_id for a in annotations] == sorted(a.annotation_id for a in annotations)
    assert training_data.read_snapshot(path, "test") == [a for a in annotations if a.split == "test"]
    assert training_data.describe(annotations[1:])["hash"] != described["hash"]  # another content, another hash
