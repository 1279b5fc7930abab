"""The SQL files of the project, found relative to the package."""

from __future__ import annotations

from contextlib import contextmanager
from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


@cache
def sql(name: str) -> str:
    """The text of sql/NAME (e.g. 'ingest/04_pairs.sql')."""
    return (SQL_DIR / name).read_text()


def run_script(con, name: str) -> None:
    """Execute every statement of sql/NAME on a DuckDB connection."""
    con.execute(sql(name))


@contextmanager
def registered(con, **tables):
    """Arrow tables (or anything DuckDB reads) under their names on a DuckDB connection, for the block only."""
    for name, table in tables.items():
        con.register(name, table)
    try:
        yield con
    finally:
        for name in tables:
            con.unregister(name)
