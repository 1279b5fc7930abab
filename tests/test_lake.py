"""The results lake: a model scored on the real LLMBar set lands as one whole, hive-partitioned run folder."""

from __future__ import annotations

import os
import shutil
import stat
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import LLMBAR, annotation

from prefpipe import lake, lake_runs
from prefpipe.analyst import analyst_connection, read_only_query
from prefpipe.evaluation import evaluate_model
from prefpipe.sql import sql
from prefpipe.tables import INTERNAL, latest_tables, publish_tables, warehouse_tables


def test_a_run_killed_while_writing_leaves_no_partition(tmp_path, model_dir, monkeypatch):
    results = tmp_path / "results"
    real_write = pq.write_table

    def dies_on_the_summary(table, where, **kwargs):
        if str(where).endswith("summary.parquet"):
            raise KeyboardInterrupt  # killed between the two files
        return real_write(table, where, **kwargs)

    monkeypatch.setattr(lake.pq, "write_table", dies_on_the_summary)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="r1")
    assert list(results.rglob("*.parquet")) == [] and not list(results.glob(".staging-*"))
    monkeypatch.setattr(lake.pq, "write_table", real_write)
    assert evaluate_model(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="r1") is not None  # a rerun works


def test_warehouse_tables_are_published_whole_and_sql_reads_them_while_the_warehouse_is_locked(
        tmp_path, wh, settings, ingest):

    from prefpipe.sql import sql

    ingest(annotation("p-1", 1, 2, 3, metadata={"annotated_at": "2026-11-03T10:00:00Z"}),
           annotation("p-2", 1, 1, annotator="ann-2", metadata={"annotated_at": "2026-11-12T10:00:00+01:00"}),
           annotation("p-3", 2, 1, metadata={"annotated_at": "2026-11-13T23:00:00Z"}),
           annotation("p-4", 1, 2, metadata={"annotated_at": "not a time"}),  # counted at its ingest date
           '{"prompt_id": "bad"}')
    tables = settings.tables
    first = publish_tables(wh.con, tables)
    publish_tables(wh.con, tables)
    third = publish_tables(wh.con, tables)
    copies = sorted(p.name for p in tables.iterdir())
    assert len(copies) == 2 and copies[-1] == third.name and first.name not in copies  # the 2 newest, no staging
    assert latest_tables(tables) == third

    # the warehouse stays open (locked) in this process: the analyst connection never opens it
    con = analyst_connection(settings.results, tables).con
    names = warehouse_tables(wh.con)
    assert {"batches", "annotations", "responses", "comparisons", "quarantine", "models", "evalsets",
            "prompt_clusters", "contamination"} <= set(names) and not set(INTERNAL) & set(names)  # no internal index
    for table in (*names, "pairs", "annotation_summary"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == wh.con.execute(
            f"SELECT count(*) FROM {table}").fetchone(), table
    weeks = con.execute(sql("queries/annotation_throughput.sql")).fetchall()
    ingest_week = wh.con.execute("SELECT date_trunc('week', ingested_at)::DATE FROM batches").fetchone()[0]
    # week, annotations, annotators, per annotator, pairs, ties, drops, edits
    expected = [(date(2026, 11, 2), 1, 1, 1.0, 3, 0, 0, 0), (date(2026, 11, 9), 2, 2, 1.0, 1, 1, 0, 0),
                (ingest_week, 1, 1, 1.0, 1, 0, 0, 0)]
    assert weeks == expected
    empty = analyst_connection(tmp_path / "none", tmp_path / "none")
    assert (empty.runs, empty.foreign, read_only_query(empty.con, "SELECT 1")) == ([], [], (["1"], [(1,)]))



def test_written_folders_and_files_follow_the_umask(tmp_path, model_dir, wh, settings):
    old = os.umask(0o022)
    try:
        folder = evaluate_model(model_dir, "tiny", LLMBAR, "llmbar", tmp_path / "results", run_id="r1")
        copy = publish_tables(wh.con, settings.tables)
    finally:
        os.umask(old)
    for path in (folder, *folder.iterdir(), copy, *copy.iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path


def test_results_written_before_the_rename_read_as_score_gap(tmp_path, model_dir):
    results = tmp_path / "results"
    new = evaluate_model(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="new", run_date=date(2026, 11, 28))
    old = results / "evalset=llmbar" / "model=tiny" / "run_date=2026-11-27" / "run_id=old"
    old.mkdir(parents=True)  # as prefpipe 0.1 wrote it: `margin`, and diagnostics margin_p10 ..., no model_kind
    scores = pq.read_table(new / "scores.parquet").drop_columns(["model_kind"])
    pq.write_table(scores.rename_columns(["margin" if c == "score_gap" else c for c in scores.column_names]),
                   old / "scores.parquet")
    summary = [{k: v for k, v in r.items() if k != "model_kind"} for r in pq.read_table(new / "summary.parquet")
               .to_pylist()]
    pq.write_table(pa.Table.from_pylist([r | {"name": r["name"].replace("score_gap_", "margin_")} for r in summary]),
                   old / "summary.parquet")
    con = analyst_connection(results).con
    assert con.execute("SELECT run_id, count(score_gap), sum(score_gap) FROM eval_scores GROUP BY ALL ORDER BY 1"
                       ).fetchall() == [("new", 419, pytest.approx(sum(scores["score_gap"].to_pylist()))),
                                        ("old", 419, pytest.approx(sum(scores["score_gap"].to_pylist())))]
    assert con.execute("SELECT DISTINCT name FROM eval_summary WHERE level = 'diagnostic' ORDER BY 1").fetchall() == [
        ("ece",), ("score_gap_p10",), ("score_gap_p50",), ("score_gap_p90",)]
    assert con.execute("SELECT DISTINCT run_id, model_kind FROM history ORDER BY 1").fetchall() == [
        ("new", "classifier"), ("old", None)]
    shutil.rmtree(new)  # a lake of old runs only: the kind is not known
    con = analyst_connection(results).con
    assert con.execute(sql("queries/leaderboard.sql")).fetchall()[0][:3] == ("llmbar", "tiny", None)


def test_writers_at_once_never_trip_over_each_others_staging_folders(tmp_path):
    """Each whole write first sweeps stale staging folders; another writer's young one may be renamed into
    place between the sweep's listing and its look at it (seen in a nightly: FileNotFoundError)."""
    from concurrent.futures import ThreadPoolExecutor

    from prefpipe.files import write_whole

    def writer(k: int) -> int:
        for i in range(150):
            write_whole(tmp_path, tmp_path / f"run-{k}-{i}", lambda staging: (staging / "x").write_text("x"))
        return k

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(writer, range(4))) == [0, 1, 2, 3]
    assert len(list(tmp_path.glob("run-*/x"))) == 600 and not list(tmp_path.glob(".staging-*"))


def test_only_runs_whose_manifest_files_are_all_there_are_read(tmp_path, model_dir):
    results = tmp_path / "results"
    whole = evaluate_model(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="whole", run_date=date(2026, 11, 27))
    legacy = whole.parent / "run_id=legacy"  # written before manifests (0.7): its tables alone, renamed whole
    legacy.mkdir()
    for table in ("scores.parquet", "summary.parquet"):
        (legacy / table).write_bytes((whole / table).read_bytes())
    cut = whole.parent / "run_id=cut"  # a manifest whose file is shorter than it says (a copy cut short)
    cut.mkdir()
    for name in ("_manifest.json", "scores.parquet", "summary.parquet"):
        (cut / name).write_bytes((whole / name).read_bytes())
    (cut / "summary.parquet").write_bytes((whole / "summary.parquet").read_bytes()[:-10])
    lost = whole.parent / "run_id=lost"  # a manifest naming a file that is not there
    lost.mkdir()
    for name in ("_manifest.json", "scores.parquet"):
        (lost / name).write_bytes((whole / name).read_bytes())
    runs, foreign = lake_runs.result_runs(results)
    assert sorted(r.name for r in runs) == ["run_id=legacy", "run_id=whole"]
    assert sorted(f.name for f in foreign) == ["run_id=cut", "run_id=lost"]
    assert lake_runs.in_written_order(runs, lake.RESULTS)[-1] == whole  # the manifest's time; legacy: the file's


def test_every_kind_finds_the_runs_written_at_its_partitions_and_nothing_else(tmp_path):
    day, table = date(2026, 11, 28), pa.table({"x": [1]})
    values = {"evalset": "set", "model": "m", "run_date": day, "run_id": "r1"}
    for kind in lake.KINDS:
        lake.write_partition(tmp_path / kind.root, kind.partition(**values), {name: table for name in kind.tables})
    for root in {kind.root for kind in lake.KINDS}:
        kinds = tuple(k for k in lake.KINDS if k.root == root)
        found, foreign = lake_runs.find_runs(tmp_path / root, kinds)
        assert foreign == [] and {name: [r.relative_to(tmp_path / root).as_posix() for r in runs]
                                  for name, runs in found.items()} == {k.name: [k.partition(**values)] for k in kinds}
    with pytest.raises(TypeError, match="a results run's partition needs evalset, model"):
        lake.RESULTS.partition(run_date=day, run_id="r1")


def test_the_per_night_index_reads_what_the_runs_hold_and_follows_added_runs(tmp_path):
    from prefpipe.synth import synthetic_lake

    results = tmp_path / "results"
    nights = [date(2026, 11, 1), date(2026, 11, 2)]
    synthetic_lake(results, {"alpha": 1.0, "beta": 0.3}, nights, examples=3)
    queries = ("SELECT * FROM eval_scores ORDER BY ALL", "SELECT * FROM eval_summary ORDER BY ALL",
               "SELECT * FROM leaderboard ORDER BY ALL")

    def read(**kwargs) -> list:
        con = analyst_connection(results, **kwargs).con
        return [con.execute(q).fetchall() for q in queries]

    partitions = ["/".join(run.parts[-4:]) for run in lake_runs.result_runs(results)[0]]
    compacted = read()
    assert len(list((results / lake.INDEX).glob("*.parquet"))) == 4  # two nights, two tables
    assert compacted == read(only=partitions)  # the runs' own files say the same
    synthetic_lake(results, {"gamma": 0.5}, nights[1:], examples=3)  # a run added to a night
    assert compacted != read() and read() == read(only=["/".join(run.parts[-4:])
                                                        for run in lake_runs.result_runs(results)[0]])
    assert len(list((results / lake.INDEX).glob("2026-11-02-*-scores.parquet"))) == 2  # a new one for the night
    left = results / lake.INDEX / ".staging-dead-2026-11-01-x-scores.parquet"  # a reader killed while compacting
    left.write_bytes(b"half")
    os.utime(left, (0, 0))
    read()
    assert not left.exists()
