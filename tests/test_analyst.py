"""Analyst SQL can only read the lake and the table copy: every hostile statement is refused in one line,
writes nothing, and leaves the connection working."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from helpers import annotation, cli, run_cli, write_batch

from prefpipe import lake
from prefpipe.analyst import analyst_connection, read_only_query
from prefpipe.errors import InputError
from prefpipe.evalsets import Example
from prefpipe.ingest import ingest_file
from prefpipe.results import result_tables
from prefpipe.tables import publish_tables


def hostile(tmp: Path, home: Path) -> list[str]:
    """Statements that would write, read outside the lake, change settings or reach the network."""
    lake_file, warehouse = home / "results" / "evil.csv", home / "warehouse.duckdb"
    return [
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{warehouse}'",  # overwrite the warehouse
        f"EXPLAIN ANALYZE COPY (SELECT 'import os; os.system(1)') TO '{tmp}/evil.pth' (HEADER false)",  # code at start-up
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{lake_file}'",  # inside the lake, a readable folder
        f"EXPLAIN (ANALYZE) COPY (SELECT 1) TO '{lake_file}'",
        f"/* comment */ EXPLAIN /* ANALYZE? */ ANALYZE COPY (SELECT 1) TO '{lake_file}'",
        "EXPLAIN ANALYZE SET memory_limit = '1GB'",
        "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
        "EXPLAIN ANALYZE LOAD httpfs",
        "EXPLAIN COPY (SELECT 1) TO 'x.csv'",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        f"SELECT * FROM read_text('{home}/results/../warehouse.duckdb')",  # out of the lake by ..
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",  # no extension install, no network
        "WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x",
        "SELECT * FROM (WITH y AS (DELETE FROM t RETURNING *) SELECT * FROM y)",
        "SELECT (WITH y AS (UPDATE t SET x = 2 RETURNING x) SELECT max(x) FROM y)",
        f"COPY (SELECT 1) TO '{lake_file}'",
        f"ATTACH '{tmp}/other.duckdb' AS other",
        "ATTACH ':memory:' AS scratch",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA enable_profiling",
        "SET enable_external_access = true",
        "RESET allowed_directories",
        "CREATE TABLE t AS SELECT 1",
        "DROP VIEW leaderboard",
        f"EXPORT DATABASE '{tmp}/dump'",
        "CALL pragma_version()",
        "SELECT 1; SELECT 2",
        "SELECT 1; DROP VIEW leaderboard",
        "SELECT 1 /* ; */; DROP VIEW leaderboard",
        "SELECT 1 --\n; CREATE TABLE t (x INT)",
        "/* SELECT 1 */ DROP VIEW leaderboard",
        "",
    ]


def tree(*folders: Path) -> dict[str, str]:
    """Every file under FOLDERS with a hash of its bytes."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.rglob("*"))
            if p.is_file()}


@pytest.fixture
def home(tmp_path: Path, settings_factory) -> Path:
    """A home with one run in the lake and a copy of a warehouse with one batch."""
    settings = settings_factory(tmp_path)
    from prefpipe.warehouse import Warehouse

    with Warehouse.open(settings) as wh:
        ingest_file(wh, write_batch(tmp_path / "b.jsonl", annotation("p-1", 1, 2, 3)), settings)
        publish_tables(wh.con, settings.tables)
    run = lake.Run("r1", date(2026, 11, 28), "m", "hash", "set", "sethash", "code")
    examples = [Example(str(i), "llmbar-natural", "q", ("a",), ("b",)) for i in range(4)]
    lake.write_results(settings.results, run, *result_tables(run, examples, [([1.0], [0.0])] * 3 + [([0.0], [1.0])],
                                                                    "rewardbench"))
    return settings.home


def test_every_hostile_statement_is_refused_in_one_line_and_writes_nothing(tmp_path, home):
    con = analyst_connection(home / "results", home / "tables").con
    before = tree(home, tmp_path)
    for statement in hostile(tmp_path, home):
        with pytest.raises(InputError) as refused:
            read_only_query(con, statement)
        message = str(refused.value)
        assert message.startswith("sql: ") and "\n" not in message, (statement, message)
        assert tree(home, tmp_path) == before, statement
        assert read_only_query(con, "SELECT 1") == (["1"], [(1,)]), statement
    assert not (tmp_path / "evil.pth").exists() and not (tmp_path / "dump").exists()
    with duckdb.connect() as fresh:  # nothing was installed on the way
        assert fresh.execute("SELECT installed FROM duckdb_extensions() WHERE extension_name = 'httpfs'"
                             ).fetchone() in (None, (False,))
    # what analysts do still works: the views, EXPLAIN, comments, a trailing semicolon
    assert read_only_query(con, "SELECT value FROM leaderboard WHERE level = 'subset'")[1] == [(0.75,)]
    assert read_only_query(con, "/* q */ SELECT count(*) FROM pairs; -- three pairs")[1] == [(3,)]
    assert read_only_query(con, "EXPLAIN SELECT * FROM annotations")[0] == ["explain_key", "explain_value"]
    assert read_only_query(con, "WITH x AS (SELECT 2 AS v) SELECT v FROM x")[1] == [(2,)]


def test_the_cli_refuses_in_one_line_and_reads_an_empty_home(tmp_path, home):
    env = {"PREFPIPE_HOME": str(home)}
    for statement, reason in [
            (f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{home}/warehouse.duckdb'", "EXPLAIN ANALYZE (or with options) "
                                                                              "runs its statement"),
            ("SELECT * FROM read_text('/etc/passwd')", 'Cannot access file "/etc/passwd"'),
            ("WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", "the query holds a INSERT")]:
        done = (cli if "INSERT" in statement else run_cli)("sql", statement, env=env)  # one in a real process
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("prefpipe: error: sql: ") and reason in done.stderr, done.stderr
    empty = {"PREFPIPE_HOME": str(tmp_path / "nothing-yet")}
    assert run_cli("sql", "SELECT 1 AS one", "--format", "csv", env=empty).stdout.splitlines() == ["one", "1"]


def test_a_foreign_folder_in_the_lake_is_skipped_and_reported(tmp_path, home):
    results = home / "results"
    (results / "notes").mkdir()  # a folder someone made
    bad = results / "evalset=set" / "model=a\nb" / "run_date=2026-11-28" / "run_id=r2"  # a name with a newline
    bad.mkdir(parents=True)
    for name in ("scores.parquet", "summary.parquet"):
        pq.write_table(pq.read_table(next(results.rglob(name))), bad / name)
    (results / "evalset=set" / "model=m" / "run_date=2026-13-45").mkdir()  # not a date
    analyst = analyst_connection(results, home / "tables")
    assert sorted(map(str, analyst.foreign)) == sorted(str(results / p) for p in (
        "notes", "evalset=set/model=a\nb", "evalset=set/model=m/run_date=2026-13-45"))
    assert read_only_query(analyst.con, "SELECT DISTINCT model_id FROM eval_summary")[1] == [("m",)]
    done = run_cli("sql", "SELECT count(DISTINCT run_id) AS runs FROM eval_scores", "--format", "csv",
               env={"PREFPIPE_HOME": str(home)})
    assert done.returncode == 0 and done.stdout.splitlines() == ["runs", "1"]
    assert f"prefpipe: skipped {results / 'notes'}: not a result partition" in done.stderr


def test_duckdbs_default_temp_folder_is_not_readable(tmp_path, home, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DuckDB's default temp folder is <cwd>/.tmp, and it was readable
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.csv").write_text("a\n1\n")
    con = analyst_connection(home / "results", home / "tables").con
    for path in (".tmp/secret.csv", f"{tmp_path}/.tmp/secret.csv"):
        with pytest.raises(InputError, match="Cannot access file"):
            read_only_query(con, f"SELECT * FROM read_csv('{path}')")


def test_the_lake_can_live_apart_from_the_home_and_sql_reads_it_there(tmp_path, home):
    elsewhere = tmp_path / "team-lake"
    elsewhere.mkdir()
    for name in ("results", "tables"):
        (home / name).rename(elsewhere / name)
    query = ("SELECT count(DISTINCT run_id) AS runs, (SELECT count(*) FROM batches) AS batches FROM eval_scores",
             "--format", "csv")
    assert run_cli("sql", *query, "--lake", str(elsewhere), env={"PREFPIPE_HOME": str(home)}).stdout.splitlines() == [
        "runs,batches", "1,1"]
    by_variable = run_cli("sql", *query, env={"PREFPIPE_HOME": str(home), "PREFPIPE_LAKE": str(elsewhere)})
    assert by_variable.stdout.splitlines() == ["runs,batches", "1,1"]
    moved = run_cli("sql", *query, env={"PREFPIPE_HOME": str(home)})  # the home holds no lake now
    assert moved.returncode == 1 and "eval_scores does not exist" in moved.stderr
