"""Prefect tasks of the ingest flow: one step of prefpipe.ingest each."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefpipe import ingest
from prefpipe.errors import InputError
from prefpipe.ingest import BatchSummary
from prefpipe.settings import Settings
from prefpipe.warehouse import Warehouse


def _retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry I/O trouble (a file on a flaky mount), never a file that is simply wrong."""
    try:
        state.result()
    except InputError:
        return False
    except Exception:
        return True
    return False


# The warehouse connection cannot be hashed: these tasks are never cached.
@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=_retry_unless_bad_input,
      cache_policy=NO_CACHE, task_run_name="read {path.name}")
def read_batch(wh: Warehouse, path: Path, fmt: str) -> BatchSummary:
    return ingest.read_batch(wh, path, fmt)


@task(cache_policy=NO_CACHE, task_run_name="validate {summary.format} batch")
def validate_batch(wh: Warehouse, summary: BatchSummary, settings: Settings) -> BatchSummary:
    return ingest.validate_batch(wh, summary, settings)


@task(cache_policy=NO_CACHE, task_run_name="load batch")
def load_batch(wh: Warehouse, summary: BatchSummary) -> BatchSummary:
    return ingest.load_batch(wh, summary)
