"""The results lake: a model scored on the real LLMBar set lands as one whole, hive-partitioned run folder."""

from __future__ import annotations

import json
import os
import stat
from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import LLMBAR, annotation

from prefpipe import lake
from prefpipe.analyst import analyst_connection, read_only_query
from prefpipe.evaluation import evaluate, scoring_sources
from prefpipe.synth import tiny_reward_model
from prefpipe.tables import latest_tables, publish_tables, warehouse_tables


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_reward_model(tmp_path_factory.mktemp("model") / "tiny", positions=2048)


def test_a_run_writes_one_partition_that_sql_reads_and_a_second_is_skipped(tmp_path, model_dir):
    results = tmp_path / "results"
    day = date(2026, 11, 28)
    folder = evaluate(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="r1", run_date=day)
    assert folder == results / "evalset=llmbar" / "model=tiny" / "run_date=2026-11-28" / "run_id=r1"
    assert sorted(p.name for p in folder.iterdir()) == ["scores.parquet", "summary.parquet"]
    assert sorted(p.name for p in results.iterdir()) == [".locks", "evalset=llmbar"]  # no staging left behind

    con = duckdb.connect()
    scores = con.sql(f"SELECT * FROM read_parquet('{results}/*/*/*/*/scores.parquet', hive_partitioning = true)")
    rows = {r["example_id"]: r for r in scores.to_arrow_table().to_pylist()}
    raw = {str(json.loads(line)["id"]): json.loads(line) for line in LLMBAR.read_text().splitlines()}
    assert rows.keys() == raw.keys()  # every example joins back to the set by id
    first = rows["0"]
    assert (first["evalset"], first["model"], str(first["run_date"]), first["run_id"]) == ("llmbar", "tiny",
                                                                                         "2026-11-28", "r1")
    assert first["credit"] == float(first["chosen_scores"][0] > first["rejected_scores"][0])

    # the summary: per-subset accuracy is the mean credit; Chat Hard weighs subsets by RewardBench's counts
    summary = {(r["level"], r["name"]): r for r in pq.read_table(folder / "summary.parquet").to_pylist()}
    counts = {"llmbar-natural": 100, "llmbar-adver-neighbor": 134, "llmbar-adver-GPTInst": 92,
              "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46}
    accuracy = {s: sum(r["credit"] for r in rows.values() if r["subset"] == s) / n for s, n in counts.items()}
    for subset, value in accuracy.items():
        assert summary["subset", subset]["value"] == pytest.approx(value)
        assert summary["subset", subset]["examples"] == counts[subset]  # the real set has RewardBench's counts
    chat_hard = sum(accuracy[s] * counts[s] for s in counts) / sum(counts.values())
    assert summary["section", "Chat Hard"]["value"] == pytest.approx(chat_hard)
    assert summary["score", "score"]["value"] is None  # Chat, Safety and Reasoning are not in this set

    # diagnostics: the score-gap distribution, and "always pick the longer answer" per subset, from the raw file
    gaps = sorted(r["score_gap"] for r in rows.values())
    assert summary["diagnostic", "score_gap_p50"]["value"] == pytest.approx(gaps[209])  # 419 gaps: the 210th
    assert summary["diagnostic", "score_gap_p10"]["value"] <= summary["diagnostic", "score_gap_p90"]["value"]
    for subset, n in counts.items():
        longer = sum(len(r["chosen"]) > len(r["rejected"]) for r in raw.values() if r["subset"] == subset) / n
        assert summary["length_bias", subset]["value"] == pytest.approx(longer)

    assert evaluate(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="r2", run_date=day) is None
    again = evaluate(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="r3", run_date=day, force=True)
    assert again.name == "run_id=r3" and folder.exists()  # forced: a new run folder; history is kept


def test_a_run_killed_while_writing_leaves_no_partition(tmp_path, model_dir, monkeypatch):
    results = tmp_path / "results"
    real_write = pq.write_table

    def dies_on_the_summary(table, where, **kwargs):
        if str(where).endswith("summary.parquet"):
            raise KeyboardInterrupt  # killed between the two files
        return real_write(table, where, **kwargs)

    monkeypatch.setattr(lake.pq, "write_table", dies_on_the_summary)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="r1")
    assert list(results.rglob("*.parquet")) == [] and not list(results.glob(".staging-*"))
    monkeypatch.setattr(lake.pq, "write_table", real_write)
    assert evaluate(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="r1") is not None  # a rerun works


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
            "prompt_clusters", "contamination"} <= set(names) and "prompt_bands" not in names  # no internal index
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



@pytest.mark.parametrize("force", [False, True])
def test_two_runs_at_once_write_each_unit_once(tmp_path, model_dir, force):
    import time
    from concurrent.futures import ThreadPoolExecutor

    results, started = tmp_path / "results", time.time()  # two nightly runs that began together

    def run(run_id: str):
        return evaluate(model_dir, "tiny", LLMBAR, "llmbar", results, run_id=run_id, force=force, started=started)

    with ThreadPoolExecutor(2) as pool:
        written = [f for f in pool.map(run, ["first", "second"]) if f is not None]
    assert len(written) == 1 and len(list(results.rglob("summary.parquet"))) == 1  # the other waited, then skipped
    if force:  # a forced run that begins later scores again
        assert evaluate(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="third", force=True) is not None


def test_written_folders_and_files_follow_the_umask(tmp_path, model_dir, wh, settings):
    old = os.umask(0o022)
    try:
        folder = evaluate(model_dir, "tiny", LLMBAR, "llmbar", tmp_path / "results", run_id="r1")
        copy = publish_tables(wh.con, settings.tables)
    finally:
        os.umask(old)
    for path in (folder, *folder.iterdir(), copy, *copy.iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path


def test_results_written_before_the_rename_read_as_score_gap(tmp_path, model_dir):
    results = tmp_path / "results"
    new = evaluate(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="new", run_date=date(2026, 11, 28))
    old = results / "evalset=llmbar" / "model=tiny" / "run_date=2026-11-27" / "run_id=old"
    old.mkdir(parents=True)  # as prefpipe 0.1 wrote it: `margin`, and diagnostics margin_p10 ...
    scores = pq.read_table(new / "scores.parquet")
    pq.write_table(scores.rename_columns(["margin" if c == "score_gap" else c for c in scores.column_names]),
                   old / "scores.parquet")
    summary = pq.read_table(new / "summary.parquet").to_pylist()
    pq.write_table(pa.Table.from_pylist([r | {"name": r["name"].replace("score_gap_", "margin_")} for r in summary]),
                   old / "summary.parquet")
    con = analyst_connection(results).con
    assert con.execute("SELECT run_id, count(score_gap), sum(score_gap) FROM eval_scores GROUP BY ALL ORDER BY 1"
                       ).fetchall() == [("new", 419, pytest.approx(sum(scores["score_gap"].to_pylist()))),
                                        ("old", 419, pytest.approx(sum(scores["score_gap"].to_pylist())))]
    assert con.execute("SELECT DISTINCT name FROM eval_summary WHERE level = 'diagnostic' ORDER BY 1").fetchall() == [
        ("ece",), ("score_gap_p10",), ("score_gap_p50",), ("score_gap_p90",)]


def test_the_code_version_covers_every_module_that_makes_a_score():
    names = {p.name for p in scoring_sources()}
    assert {"evaluation.py", "evalsets.py", "inputs.py", "model.py", "dpo.py", "rewardbench.py",
            "rewardbench_sections.json"} <= names  # found through the imports, none declared by hand
    assert not names & {"cli.py", "train.py", "ingest.py", "formats.py"}  # training and ingest do not score


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
