"""Ingest flow: each file is one batch, read -> validate -> load, then a summary artifact. A file that
fails is reported and the next files are still read; the table copies show what was committed."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from prefpipe.ingest import BatchSummary, batch_files
from prefpipe.settings import Settings
from prefpipe.text import format_table
from prefpipe.warehouse import Warehouse
from tasks.ingest import load_batch, migrate_warehouse, publish_tables, read_batch, validate_batch

SUMMARY_COLUMNS = ["source", "status", "rows_in", "loaded", "replaced", "quarantined", "skipped", "pairs",
                   "ties", "identical_texts", "contaminated", "quarantined_by_rule", "skipped_by_reason", "batch_id"]


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
                print(summary_line(summary))
                summaries.append(summary)
        finally:  # what was committed, also when a later step broke
            publish_tables(wh, settings)
    create_table_artifact(key="ingest-summary", table=[summary_row(s) for s in summaries],
                          description="What each batch brought: rows in = loaded + quarantined + skipped")
    failed = [s.message for s in summaries if s.status == "failed"]
    if failed:
        create_markdown_artifact(key="ingest-failures", markdown="\n".join(f"- {m}" for m in failed))
    return summaries


def ingest_batch(wh: Warehouse, path: Path, fmt: str, settings: Settings) -> BatchSummary:
    """One file, loaded whole or not at all; its failure is its own and is returned, not raised."""
    try:
        return load_batch(wh, validate_batch(wh, read_batch(wh, path, fmt, settings), settings))
    except Exception as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        message = reason if reason.startswith(str(path)) else f"{path}: {type(e).__name__}: {reason}"
        return BatchSummary(source=str(path), format=fmt, batch_id="", status="failed", message=message)


def summary_table(summaries: list[BatchSummary]) -> str:
    """Every batch's outcome, for a terminal."""
    columns = SUMMARY_COLUMNS[:-1]
    return format_table(columns, [tuple(summary_row(s)[c] for c in columns) for s in summaries])


def summary_row(summary: BatchSummary) -> dict:
    row = summary.as_row()
    return {k: row[k] for k in SUMMARY_COLUMNS}


def summary_line(s: BatchSummary) -> str:
    if s.status == "skipped":
        return f"{s.source}: skipped, identical to batch {s.batch_id[:12]} ingested before ({s.rows_in} rows)"
    if s.status == "failed":
        return s.message
    return (f"{s.source}: {s.rows_in} rows = {s.loaded} loaded ({s.replaced} replaced) + {s.quarantined} "
            f"quarantined + {s.skipped} skipped; {s.pairs} pairs, {s.ties} ties, "
            f"{s.identical_texts} identical texts"
            f"{f'; {s.contaminated} prompts or responses match an evaluation set' if s.contaminated else ''}"
            f" ({s.seconds:.1f} s, {s.dedup_seconds:.1f} s of it near-duplicates and contamination)")
