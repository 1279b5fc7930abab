"""Prefect tasks of the ingest flow: one step of prefpipe.ingest each."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from prefpipe import ingest, migrate, tables
from prefpipe.errors import InputError
from prefpipe.ingest import BatchSummary
from prefpipe.settings import Settings
from prefpipe.warehouse import Warehouse
from tasks import retry_unless_input_error


# The warehouse connection cannot be hashed: these tasks are never cached.
@task(cache_policy=NO_CACHE, task_run_name="migrate the warehouse when due")
def migrate_warehouse(wh: Warehouse, settings: Settings) -> list[str]:
    """The warehouse's one-time steps, when due (prefpipe.migrate): what each changed."""
    messages = migrate.migrate(wh, settings.dedup)
    for message in messages:
        print(message)
    return messages


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_input_error,
      cache_policy=NO_CACHE, task_run_name="read {path.name}")
def read_batch(wh: Warehouse, path: Path, fmt: str, settings: Settings) -> BatchSummary:
    try:
        return ingest.read_batch(wh, path, fmt, settings)
    except InputError as e:  # a wrong file fails its batch, not the flow, and is not retried
        return BatchSummary(source=str(path), format=fmt, batch_id="", status="failed", message=str(e))


@task(cache_policy=NO_CACHE, task_run_name="validate {summary.format} batch")
def validate_batch(wh: Warehouse, summary: BatchSummary, settings: Settings) -> BatchSummary:
    return ingest.validate_batch(wh, summary, settings)


@task(cache_policy=NO_CACHE, task_run_name="load batch")
def load_batch(wh: Warehouse, summary: BatchSummary) -> BatchSummary:
    return ingest.load_batch(wh, summary)


@task(cache_policy=NO_CACHE)
def publish_tables(wh: Warehouse, settings: Settings) -> Path:
    """The warehouse tables as Parquet, for `prefpipe sql` (which never opens the locked warehouse)."""
    return tables.publish_tables(wh.con, settings.tables)


@task(cache_policy=NO_CACHE)
def publish_summary(summaries: list[BatchSummary]) -> None:
    """Every batch's outcome as a table artifact, and the failures as a list."""
    create_table_artifact(key="ingest-summary", table=[s.summary_row() for s in summaries],
                          description="What each batch brought: rows in = loaded + quarantined + skipped")
    failed = [s.message for s in summaries if s.status == "failed"]
    if failed:
        create_markdown_artifact(key="ingest-failures", markdown="\n".join(f"- {m}" for m in failed))
