"""The long table (CSV, Parquet) and gzip give the same warehouse as the canonical JSONL."""

from __future__ import annotations

import gzip

import duckdb
import pytest
from helpers import pairs, write_batch

from prefpipe.errors import InputError
from prefpipe.ingest import ingest_file
from prefpipe.synth import synthetic_batch


def long_rows(path):
    """The canonical batch as a long table, one row per response (independent of the adapter)."""
    return duckdb.sql(f"""
        SELECT prompt_id, prompt, annotator_id, annotation_id, r.response_id, r.text, r.rank,
               r.dropped, r.drop_reason, r.edited_from
        FROM (SELECT *, unnest(responses) AS r FROM read_json('{path}', format = 'newline_delimited'))""")


def test_csv_parquet_and_gzip_load_the_same_pairs(tmp_path, wh, settings_factory):
    source = synthetic_batch(tmp_path / "s.jsonl", 60, bad_lines=0)
    rows = long_rows(source)
    rows.write_csv(str(tmp_path / "s.csv"))
    rows.write_parquet(str(tmp_path / "s.parquet"))
    (tmp_path / "s.jsonl.gz").write_bytes(gzip.compress(source.read_bytes()))
    results = {}
    for name in ("s.jsonl", "s.csv", "s.parquet", "s.jsonl.gz"):
        with __import__("prefpipe.warehouse").warehouse.Warehouse(tmp_path / f"{name}.duckdb") as w:
            summary = ingest_file(w, tmp_path / name, settings_factory(tmp_path))
            assert (summary.loaded, summary.quarantined) == (60, 0), summary
            results[name] = pairs(w) | {("count", summary.pairs, summary.ties)}
    assert results["s.csv"] == results["s.jsonl"] == results["s.parquet"] == results["s.jsonl.gz"]


def test_csv_cells_are_checked_like_json(tmp_path, wh, settings):
    path = tmp_path / "b.csv"
    path.write_text("prompt_id,prompt,response_id,text,rank,dropped\n"
                    "p,hi,a,first,1,\np,hi,b,second,2,false\n"
                    "q,hi,a,first,one,\nq,hi,b,second,2,\n")
    summary = ingest_file(wh, path, settings)
    assert (summary.loaded, summary.quarantined) == (1, 1)
    line, reason = wh.con.execute("SELECT line, reason FROM quarantine").fetchone()
    assert line == 4 and "responses[1].rank: must be a whole number from 1 to 2147483647, got string" in reason


def test_a_long_table_without_required_columns_fails_at_once(tmp_path, wh, settings):
    path = tmp_path / "b.csv"
    path.write_text("prompt_id,prompt,response_id\np,hi,a\n")
    with pytest.raises(InputError, match=r"b.csv: missing column\(s\) text"):
        ingest_file(wh, path, settings)
    assert wh.counts()["batches"] == 0


def test_blank_lines_crlf_and_a_byte_order_mark(tmp_path, wh, settings):
    path = write_batch(tmp_path / "b.jsonl", '{"prompt_id": "p", "prompt": "x", "responses": '
                       '[{"response_id": "a", "text": "t", "rank": 1}, {"response_id": "b", "text": "u", "rank": 2}]}')
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n") + b"\r\n   \n")
    summary = ingest_file(wh, path, settings)
    assert (summary.rows_in, summary.loaded, summary.skipped, summary.pairs) == (3, 1, 2, 1)


def test_long_lines_across_read_blocks(tmp_path, wh, settings):
    from prefpipe.formats import canonical_blocks

    source = synthetic_batch(tmp_path / "s.jsonl", 40, bad_lines=1)
    tables = list(canonical_blocks(source, block_bytes=300))
    lines = [r for t in tables for r in t.column("raw").to_pylist()]
    assert lines == source.read_text().split("\n")[:-1]
    assert [n for t in tables for n in t.column("line").to_pylist()] == list(range(1, len(lines) + 1))
