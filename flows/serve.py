"""The nightly evaluation on a schedule: `prefpipe serve` serves the `nightly/nightly` deployment on the
Prefect server of PREFECT_API_URL, or on the home's shared local server (prefpipe/prefect_server.py), until
stopped.

Ctrl-C takes the runner's graceful shutdown (as on SIGTERM): the schedule is paused; the shared server stops
itself once no command has used it for a while. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import EntrypointType
from prefect.schedules import Cron
from pydantic import ValidationError

from flows.nightly import nightly_flow
from prefpipe.errors import InputError
from prefpipe.prefect_server import prefect_session
from prefpipe.settings import PATHS, Settings, check_threshold
from tasks.runners import check_task_runner


def serve(settings: Settings, *, cron: str, timezone: str, threshold: float, task_runner: str,
          dask_address: str | None, port: int, echo: Callable[[str], None] = print) -> None:
    """Serve the nightly deployment on its schedule until Ctrl-C (or SIGTERM)."""
    schedule = nightly_schedule(cron, timezone)  # a wrong cron fails before a server starts
    check_task_runner(task_runner, dask_address)
    check_threshold(threshold)
    if not 1 <= port <= 65535:
        raise InputError(f"must be a port number from 1 to 65535, got {port}", field="--port")
    for name in PATHS:  # scheduled runs are subprocesses
        os.environ[f"PREFPIPE_{name.upper()}"] = str(getattr(settings, name).resolve())
    with prefect_session(settings, port) as url:
        echo(f"nightly evaluation: cron '{cron}' ({timezone}) on the Prefect server at {url}; stop with Ctrl-C")
        signal.signal(signal.SIGINT, _stop_gracefully)
        try:
            nightly_flow.serve(name="nightly", schedule=schedule,
                               parameters={"threshold": threshold, "task_runner": task_runner,
                                           "dask_address": dask_address},
                               description="Every active reward model on every registered evaluation set, "
                                           "into the lake",
                               entrypoint_type=EntrypointType.MODULE_PATH)  # found by import, from any folder
        except* KeyboardInterrupt:
            pass
    echo("stopped; the schedule is paused until the next `prefpipe serve`")


def nightly_schedule(cron: str, timezone: str):
    """The cron schedule, or a one-line error naming the option that is wrong."""
    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as e:
        field = e.errors()[0]["loc"][0]
        value = {"cron": cron, "timezone": timezone}.get(field)
        expected = "a cron expression such as '0 2 * * *'" if field == "cron" else "an IANA time zone such as UTC"
        raise InputError(f"must be {expected}, got {value!r}", field=f"--{field}") from None
    return Cron(cron, timezone=timezone)


def _stop_gracefully(*_: object) -> None:
    """Ctrl-C: the runner's own graceful shutdown (as on SIGTERM). A task cancelled by asyncio's Ctrl-C
    handler can absorb the cancellation and keep serving; a second Ctrl-C interrupts at once."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.kill(os.getpid(), signal.SIGTERM)
