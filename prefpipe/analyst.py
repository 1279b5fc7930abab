"""Analyst SQL: an in-memory DuckDB that can only read the results lake and the latest copy of the
warehouse tables, through the views of sql/views/.

The sandbox is DuckDB's own, not string checks:
- files: `enable_external_access = false`, with `allowed_directories` naming the lake and the table copy
  only (no other file, no URL), and a private temp folder (DuckDB's default one is readable); extensions
  are never installed or loaded on demand; the configuration is locked once the views exist (no SET can
  undo it);
- statements: DuckDB's parser must find exactly one statement, a SELECT whose query tree
  (`json_serialize_sql`) holds only query nodes (a CTE wrapping an INSERT is a SELECT statement too), or
  an EXPLAIN of one. EXPLAIN ANALYZE is refused: it runs its statement.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import NamedTuple

import duckdb

from prefpipe.errors import InputError
from prefpipe.lake import ANALYSES, KINDS, RESULTS, REWARDS
from prefpipe.lake_runs import find_runs, night_tables
from prefpipe.settings import Settings
from prefpipe.sql import run_script, sql
from prefpipe.store import Bucket, Location, filesystem, httpfs_secret, mirror_of
from prefpipe.tables import latest_tables

# Query nodes that only read; INSERT_QUERY_NODE, UPDATE_QUERY_NODE, DELETE_QUERY_NODE (in a CTE) and any
# node type a later DuckDB adds are refused.
READING_NODES = {"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"}


class Analyst(NamedTuple):
    con: duckdb.DuckDBPyConnection
    runs: list[Path]  # the result partitions read (for a bucket's, this machine's copies of them)
    foreign: list[Location]  # what stands where partitions belong and was skipped


def analyst_connection(results: Location, tables: Location | None = None,
                       regression_threshold: float = Settings.regression_threshold, *,
                       rewards: Location | None = None, analysis: Location | None = None,
                       only: list[str] | None = None) -> Analyst:
    """The sandboxed connection with the analyst views: over the results lake (sql/views/eval.sql), the
    rewards runs (views/rewards.sql) and the analyses (views/tilt.sql, views/tradeoff.sql) when they hold
    runs, and over the latest copy of the warehouse tables (a view per table, then the warehouse's own pairs
    and curation views) when there is one. It never opens the warehouse file, so it never waits for its
    lock. The folders of the lake that are not run partitions are skipped, for the caller to report. ONLY:
    the result runs to read, by partition, of those found (default: all). A lake in a bucket is read through
    this machine's copy of its whole runs; its own prefix is readable too (fsspec's filesystem registered with
    DuckDB), no other bucket or prefix."""
    found, foreign = find_runs(results, (RESULTS,))
    runs = found[RESULTS.name]
    if only is not None:
        wanted = set(only)
        runs = [run for run in runs if "/".join(run.parts[-len(RESULTS.levels):]) in wanted]
    copy = latest_tables(tables) if tables is not None else None
    # DuckDB's default temp folder (<cwd>/.tmp) is readable even with external access off: a private empty one
    # of its own, removed with the connection, holds only what this connection spills
    spill = tempfile.mkdtemp(prefix="prefpipe-sql-")
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                                 "temp_directory": spill})
    weakref.finalize(con, shutil.rmtree, spill, True)
    roots = [p for p in (results, copy, rewards, analysis) if p is not None]
    readable = [f"{p.resolve()}/" for p in roots if isinstance(p, Path)]  # no siblings
    readable += [f"{p}/" for p in roots if isinstance(p, Bucket)] + [f"{mirror_of(p)}/" for p in roots
                                                                       if isinstance(p, Bucket)]
    if any(isinstance(p, Bucket) for p in roots):
        read_buckets(con)
    con.execute("SET allowed_directories = ?", [readable])
    con.execute("SET enable_external_access = false")
    con.execute("SET VARIABLE regression_threshold = ?", [regression_threshold])
    found |= {RESULTS.name: runs}
    for root, kinds in ((rewards, (REWARDS,)), (analysis, ANALYSES)):
        if root is not None:
            of_root, stray = find_runs(root, kinds)
            found |= of_root
            foreign += stray
    compact = night_tables(results, runs) if only is None and runs else None
    for kind in KINDS:  # the views of each kind that has runs (the results' compacted per night where they can be)
        if found.get(kind.name):
            files = compact if kind is RESULTS and compact else {
                table: [run / f"{table}.parquet" for run in found[kind.name]] for table in kind.tables}
            for variable, table in kind.variables.items():
                con.execute(f"SET VARIABLE {variable} = ?", [[str(f) for f in files[table]]])
            run_script(con, kind.views)
    if copy is not None:  # a view per table, then the warehouse's own views over them
        for table in sorted(copy.glob("*.parquet")):
            if re.fullmatch(r"[a-z][a-z0-9_]*", table.stem):
                con.read_parquet(str(table)).create_view(table.stem)
        for script in ("ddl/002_pairs_view.sql", "ddl/003_curation_views.sql"):
            run_script(con, script)
    con.execute("SET lock_configuration = true")
    return Analyst(con, runs, foreign)


def read_buckets(con: duckdb.DuckDBPyConnection) -> str:
    """Let CON read s3:// (before its sandbox is set): with DuckDB's httpfs extension where it is installed on
    this machine (README: "A lake in a bucket"), given a temporary secret from the standard AWS configuration;
    else through fsspec's s3fs, registered as a filesystem. Returns which."""
    [(installed,)] = con.execute(sql("analyst/httpfs_installed.sql")).fetchall()
    secret = httpfs_secret() if installed else None
    if secret is None:
        con.register_filesystem(filesystem())
        return "fsspec"
    con.execute("LOAD httpfs")
    con.execute(secret)
    return "httpfs"


def read_only_query(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    """Run one analyst statement that only reads; anything else fails in one line before it runs."""
    statement = reading_statement(con, sql)
    try:
        cursor = con.execute(statement)
        return [d[0] for d in cursor.description], cursor.fetchall()
    except duckdb.Error as e:
        raise InputError(_first_line(e), field="sql") from None


def reading_statement(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.Statement:
    """The one statement of SQL if it only reads: a SELECT, or EXPLAIN (not ANALYZE) of a SELECT."""
    statements = _parse(con, sql)
    if len(statements) != 1:
        raise InputError(f"give exactly one statement, got {len(statements)}", field="sql")
    [statement] = statements
    kind = statement.type
    if kind == duckdb.StatementType.EXPLAIN:
        _check_select(con, _explained(statement.query))
    elif kind == duckdb.StatementType.SELECT:
        _check_select(con, statement.query)
    else:
        raise InputError(f"prefpipe sql only reads: a {kind.name} statement would change something; "
                         "use SELECT (or EXPLAIN SELECT)", field="sql")
    return statement


def _parse(con: duckdb.DuckDBPyConnection, sql: str) -> list[duckdb.Statement]:
    try:
        return con.extract_statements(sql)
    except duckdb.Error as e:
        raise InputError(f"not valid SQL: {_first_line(e)}", field="sql") from None


def _explained(query: str) -> str:
    """The statement that an EXPLAIN explains (DuckDB's tokenizer skips the comments)."""
    tokens = [(offset, kind) for offset, kind in duckdb.tokenize(query) if kind != duckdb.token_type.comment]
    if len(tokens) < 2:
        raise InputError("EXPLAIN needs a statement", field="sql")
    offset = tokens[1][0]
    word = query[offset:tokens[2][0] if len(tokens) > 2 else None].strip().upper()
    if word == "ANALYZE" or word.startswith("("):
        raise InputError("EXPLAIN ANALYZE (or with options) runs its statement; use EXPLAIN SELECT ...", field="sql")
    return query[offset:]


def _check_select(con: duckdb.DuckDBPyConnection, query: str) -> None:
    tree = json.loads(con.execute(sql("analyst/statement_tree.sql"), [query]).fetchall()[0][0])
    if tree.get("error"):
        raise InputError(f"prefpipe sql only reads: {tree.get('error_message', 'not a SELECT')}", field="sql")
    if len(tree["statements"]) != 1:
        raise InputError("give exactly one statement", field="sql")
    for node in _query_nodes(tree["statements"][0]):
        if node not in READING_NODES:
            kind = node.removesuffix("_QUERY_NODE").removesuffix("_NODE")
            raise InputError(f"prefpipe sql only reads: the query holds a {kind} that would change something",
                             field="sql")


def _query_nodes(tree: object):
    """Every query node type in a serialized statement (`type` values ending in _NODE), at any depth."""
    if isinstance(tree, dict):
        kind = tree.get("type")
        if isinstance(kind, str) and kind.endswith("_NODE"):
            yield kind
        for value in tree.values():
            yield from _query_nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _query_nodes(value)


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]
