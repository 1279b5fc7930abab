"""The SQL files of the project, found relative to the package."""

from __future__ import annotations

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

