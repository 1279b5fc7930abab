"""Export to the pairwise layout (TRL RewardTrainer, RewardBench) and back: the same pairs."""

from __future__ import annotations

import json

from helpers import write_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefpipe.export import export_pairs
from prefpipe.ingest import ingest_file
from prefpipe.warehouse import Warehouse

ranks = st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=2, max_size=6)
annotations = st.lists(st.tuples(st.integers(0, 4), ranks, st.booleans()), min_size=1, max_size=10)


def plain(prompt: str) -> list[dict]:
    """A prompt as messages: the conversational export turns a string prompt into one user message."""
    value = json.loads(prompt)
    return [{"role": "user", "content": value}] if isinstance(value, str) else value


def pair_set(wh: Warehouse) -> list[tuple]:
    rows = wh.con.execute("SELECT prompt::VARCHAR, chosen_text, rejected_text, margin FROM pairs").fetchall()
    return sorted((json.dumps(plain(p)), c, r, m) for p, c, r, m in rows)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(annotations, st.sampled_from([".jsonl", ".parquet"]))
def test_export_then_ingest_as_pairwise_gives_the_same_pairs(tmp_path_factory, settings_factory, batch, suffix):
    tmp = tmp_path_factory.mktemp("export")
    lines = [{"prompt_id": f"p{prompt}", "annotation_id": f"a{n}",
              "prompt": [{"role": "user", "content": f"q{prompt}"}] if as_messages else f"q{prompt}",
              "responses": [{"response_id": f"r{i}", "text": f"{n} {i}"} | ({"rank": r} if r else {})
                            for i, r in enumerate(rs)]}
             for n, (prompt, rs, as_messages) in enumerate(batch)]
    with Warehouse(tmp / "a.duckdb") as source:
        ingest_file(source, write_batch(tmp / "b.jsonl", *lines), settings_factory(tmp / "a"))
        rows = export_pairs(source, tmp / f"pairs{suffix}", split=None)
        expected = pair_set(source)
    assert rows == len(expected)
    if not rows:  # nothing comparable was generated: an empty file, which ingest refuses
        return
    with Warehouse(tmp / "b.duckdb") as target:
        summary = ingest_file(target, tmp / f"pairs{suffix}", settings_factory(tmp / "b"), "pairwise")
        assert (summary.loaded, summary.quarantined) == (rows, 0)
        assert pair_set(target) == expected


def test_export_writes_the_trl_layout_of_one_split(wh, settings, tmp_path):
    lines = [{"prompt_id": f"p{i}", "prompt": f"q{i}", "responses": [
        {"response_id": "a", "text": "good", "rank": 1}, {"response_id": "b", "text": "bad", "rank": 3}]}
        for i in range(200)]
    ingest_file(wh, write_batch(tmp_path / "b.jsonl", *lines), settings)
    rows = export_pairs(wh, tmp_path / "train.jsonl", split="train")
    written = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    train = wh.con.execute("SELECT count(*) FROM pairs WHERE split = 'train'").fetchone()[0]
    assert rows == len(written) == train and 150 < train < 200
    assert written[0].keys() >= {"prompt", "chosen", "rejected", "margin"}
    assert (written[0]["chosen"], written[0]["rejected"], written[0]["margin"]) == ("good", "bad", 2)
    assert all(isinstance(row["prompt"], str) and row["split"] == "train" for row in written)
