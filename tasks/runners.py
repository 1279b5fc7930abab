"""Where a flow's concurrent tasks run: threads in this process, or a Dask cluster (prefect-dask)."""

from __future__ import annotations

import os

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from prefpipe.errors import InputError
from prefpipe.settings import TASK_RUNNERS


def check_task_runner(kind: str, address: str | None) -> None:
    if kind not in TASK_RUNNERS:
        raise InputError(f"must be one of {', '.join(TASK_RUNNERS)}, got {kind!r}", field="--task-runner")
    if address and kind != "dask":
        raise InputError("a Dask scheduler address needs --task-runner dask", field="--dask-address")


def make_task_runner(kind: str, address: str | None, tasks: int, threads: int | None = None) -> TaskRunner:
    """Threads in this process (at most THREADS), or Dask: the scheduler at ADDRESS, or a local cluster of one
    single-threaded worker process per core (at most one per task; Dask gives each worker one BLAS/torch
    thread)."""
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=threads)
    from prefect_dask import DaskTaskRunner  # dask and distributed: 0.4 s of imports, only where Dask is chosen

    if address:
        return DaskTaskRunner(address=address)
    workers = max(1, min(os.cpu_count() or 1, tasks))
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "dashboard_address": None})
