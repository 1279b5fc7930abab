"""The DuckDB warehouse: one connection per process, opened with a bounded wait for the file lock."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb

from prefpipe.errors import InputError, PrefpipeError, WarehouseBusy
from prefpipe.settings import Settings
from prefpipe.sql import SQL_DIR, run_script, sql

CURATION_VIEWS = {"Batches": "batch_counts", "Quarantine by rule": "quarantine_by_rule", "Per source": "source_stats",
                  "Per annotator": "annotator_stats",
                  "Agreement where a prompt was judged more than once": "agreement",
                  "Agreement between two annotators": "annotator_agreement"}  # sql/ddl/003_curation_views.sql


class Warehouse:
    """A DuckDB file holding batches, annotations, responses, pairs and quarantine.

    DuckDB lets one process write a file at a time; a second one waits up to `lock_timeout_s`
    for the lock and then fails with WarehouseBusy.
    """

    def __init__(self, path: Path | str, lock_timeout_s: float = Settings.lock_timeout_s,
                 memory_limit: str = Settings.memory_limit) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = _connect(self.path, lock_timeout_s)
        try:
            self.con.execute("SET memory_limit = ?", [memory_limit])  # bound, never pasted into the SQL
        except duckdb.Error:
            self.con.close()
            raise InputError(f"must be a size such as 2.5GB, got {memory_limit!r}",
                             field="memory_limit (PREFPIPE_MEMORY_LIMIT)") from None
        self.lock = threading.Lock()
        for ddl in sorted((SQL_DIR / "ddl").glob("*.sql")):
            run_script(self.con, f"ddl/{ddl.name}")
        run_script(self.con, "ingest/00_macros.sql")  # temp macros of the ingest and export SQL

    @classmethod
    def open(cls, settings: Settings) -> Warehouse:
        """The warehouse of SETTINGS, its DDL applied and nothing else (its one-time steps: prefpipe.migrate)."""
        wh = cls(settings.warehouse, settings.lock_timeout_s, settings.memory_limit)
        train, validation, _ = settings.splits
        wh.set_variables(train_share=train, validation_share=validation)
        return wh

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def transaction(self):
        """BEGIN ... COMMIT, or ROLLBACK on any error: a batch is loaded whole or not at all."""
        with self.lock:
            self.con.execute("BEGIN TRANSACTION")
            try:
                yield self.con
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            self.con.execute("COMMIT")

    def set_variables(self, **values: object) -> None:
        """Values that the SQL files read with getvariable(name)."""
        for name, value in values.items():
            self.con.execute(f"SET VARIABLE {name} = ?", [value])

    def counts(self) -> dict[str, int]:
        """The rows of the main tables (sql/warehouse/counts.sql), for `prefpipe stats`."""
        columns, [row] = self.query(sql("warehouse/counts.sql"))
        return dict(zip(columns, row, strict=True))

    def curation_views(self, rows: int = 20) -> list[tuple[str, list[str], list[tuple]]]:
        """(title, columns, first ROWS rows) of each curation view, for `prefpipe stats`."""
        return [(title, (view := self.con.table(name).limit(rows)).columns, view.fetchall())
                for title, name in CURATION_VIEWS.items()]

    def cluster_views(self, rows: int = 10) -> list[tuple[str, list[str], list[tuple]]]:
        """(title, columns, rows) of the near-duplicate clusters, for `prefpipe stats`."""
        return [("Near-duplicate clusters", *self.query(sql("warehouse/cluster_summary.sql"))),
                ("Largest clusters", *self.query(sql("warehouse/largest_clusters.sql"), [rows])),
                ("Held-out pairs that the split by exact prompt would have leaked",
                 *self.query(sql("dedup/cluster_leaks.sql"))),
                ("Split conflicts (merges of clusters in different splits)",
                 *self.query(sql("warehouse/split_conflicts.sql"), [rows]))]

    def batch_rows(self, batch_id: str) -> int | None:
        """The rows of the batch BATCH_ID (a file's sha256) if it was ingested before, else None."""
        found = self.con.execute(sql("ingest/batch_rows.sql"), [batch_id]).fetchall()
        return found[0][0] if found else None

    def query(self, sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
        cursor = self.con.execute(sql, params or [])
        return [d[0] for d in cursor.description], cursor.fetchall()


def _connect(path: Path, timeout_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as e:
            message = str(e)
            if "lock" not in message.lower():
                raise PrefpipeError(f"{path}: cannot open the warehouse: {message.splitlines()[0]}") from None
            if time.monotonic() >= deadline:
                holder = message.split("(PID ")[-1].split(")")[0] if "(PID " in message else "unknown"
                raise WarehouseBusy(f"{path}: warehouse is busy: another process (PID {holder}) holds it; "
                                    f"waited {timeout_s:g} s (PREFPIPE_LOCK_TIMEOUT)") from None
            time.sleep(0.2)
        except duckdb.Error as e:
            raise PrefpipeError(f"{path}: cannot open the warehouse: {str(e).splitlines()[0]}") from None
