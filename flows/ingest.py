"""Ingest flow: each file is one batch, read -> validate -> load, then a summary artifact. A file that
fails is reported and the next files are still read; the table copies show what was committed."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from prefpipe.ingest import BatchSummary, batch_files
from prefpipe.settings import Settings
from prefpipe.warehouse import Warehouse
from tasks.ingest import load_batch, migrate_warehouse, publish_summary, publish_tables, read_batch, validate_batch


@flow(name="ingest", log_prints=True)
def ingest_flow(paths: list[str], settings: Settings | None = None, fmt: str = "auto") -> list[BatchSummary]:
    settings = settings or Settings.from_env()
    files = batch_files(paths)
    summaries = []
    with Warehouse.open(settings) as wh:
        migrate_warehouse(wh, settings)
        try:
            for path in files:
                summary = ingest_batch(wh, Path(path), fmt, settings)
                print(summary.line())
                summaries.append(summary)
        finally:  # what was committed, also when a later step broke
            publish_tables(wh, settings)
    publish_summary(summaries)
    return summaries


def ingest_batch(wh: Warehouse, path: Path, fmt: str, settings: Settings) -> BatchSummary:
    """One file, loaded whole or not at all; its failure is its own and is returned, not raised."""
    try:
        return load_batch(wh, validate_batch(wh, read_batch(wh, path, fmt, settings), settings))
    except Exception as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        message = reason if reason.startswith(str(path)) else f"{path}: {type(e).__name__}: {reason}"
        return BatchSummary(source=str(path), format=fmt, batch_id="", status="failed", message=message)
