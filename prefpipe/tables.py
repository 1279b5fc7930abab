"""Parquet copies of the warehouse tables under data/tables/, so that analysts' SQL reads them without
the warehouse's lock. Each copy is a folder of one moment, staged and renamed in one step, holding every
table that the DDL (sql/ddl/) makes: the list of tables lives there alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from prefpipe import store
from prefpipe.lake import MANIFEST, remove_run, write_partition
from prefpipe.sql import sql
from prefpipe.store import Bucket, Location

# prefpipe's own indexes, nothing to query: the LSH buckets (16 rows per prompt), and the hashed n-grams and
# normalised prompts of the registered sets that a batch is checked against (sql/ddl/010_evalset_grams.sql)
INTERNAL = ("prompt_bands", "evalset_grams", "evalset_examples")


def warehouse_tables(con) -> list[str]:
    """The warehouse's tables (not its views, not the temp tables of an ingest, not its internal index)."""
    return [name for (name,) in con.execute(sql("warehouse/tables.sql")).fetchall() if name not in INTERNAL]


def publish_tables(con, tables: Location, keep: int = 2) -> Location:
    """Copy the warehouse tables to a new folder of TABLES (a run of the lake: its manifest last); the `keep`
    newest copies stay (a query already reading an older one is not cut off)."""

    def write(staging: Path) -> None:
        for name in warehouse_tables(con):
            con.table(name).write_parquet(str(staging / f"{name}.parquet"))

    final = write_partition(tables, datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ"), {}, also=write)
    copies = store.runs_of(tables) if isinstance(tables, Bucket) else [p.name for p in table_copies(tables)]
    for old in sorted(copies)[:-keep]:
        remove_run(tables, old)
    return final


def table_copies(tables: Path) -> list[Path]:
    """The published copies of the warehouse tables, oldest first (staging folders are hidden)."""
    return sorted(p for p in Path(tables).glob("*") if p.is_dir() and not p.name.startswith("."))


def latest_tables(tables: Location) -> Path | None:
    """The newest published copy of the warehouse tables, or None (from a bucket: this machine's copy of it)."""
    if isinstance(tables, Bucket):
        for name in sorted(store.runs_of(tables), reverse=True):
            whole, _ = store.mirror_runs(tables, [name], MANIFEST)
            if whole:
                return whole[name]
        return None
    copies = table_copies(tables)
    return copies[-1] if copies else None


def prompt_json(prompt: object) -> str:
    """A prompt as compact JSON, as DuckDB's json() writes it: the key that matches warehouse prompts."""
    return json.dumps(prompt, separators=(",", ":"), ensure_ascii=False)


def warehouse_responses(tables: Location, prompts: list[object]) -> list[tuple[object, str]]:
    """(prompt, text) of the warehouse's responses to PROMPTS, from the latest table copy (no lock taken)."""
    copy = latest_tables(tables)
    if copy is None:
        return []
    with duckdb.connect() as con:
        con.execute("SET VARIABLE copy = ?", [str(copy)])
        con.execute("SET VARIABLE prompts = ?", [sorted({prompt_json(p) for p in prompts})])
        return [(json.loads(prompt), text) for prompt, text in con.execute(sql("analysis/warehouse_references.sql")
                                                                           ).fetchall()]
