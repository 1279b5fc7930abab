"""The nightly evaluation on a schedule: `prefpipe serve` serves the `nightly/nightly` deployment on the
Prefect server of PREFECT_API_URL, or on a local Prefect server that it starts and stops, until stopped.

Ctrl-C takes the runner's graceful shutdown (as on SIGTERM): the schedule is paused, then a server started
here is stopped. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from prefpipe.errors import InputError, PrefpipeError
from prefpipe.settings import PATHS, Settings

SERVER_START_S = 120


def serve(settings: Settings, *, cron: str, timezone: str, threshold: float, task_runner: str,
          dask_address: str | None, port: int, echo: Callable[[str], None] = print) -> None:
    """Serve the nightly deployment on its schedule until Ctrl-C (or SIGTERM)."""
    from flows.nightly import check_task_runner, nightly_flow

    schedule = nightly_schedule(cron, timezone)  # a wrong cron fails before a server starts
    check_task_runner(task_runner, dask_address)
    for name in PATHS:  # scheduled runs are subprocesses
        os.environ[f"PREFPIPE_{name.upper()}"] = str(getattr(settings, name).resolve())
    with prefect_api(settings.home / "prefect-server.log", port, echo) as url:
        from prefect.deployments.runner import EntrypointType
        from prefect.settings import PREFECT_API_URL, temporary_settings

        echo(f"nightly evaluation: cron '{cron}' ({timezone}) on the Prefect server at {url}; stop with Ctrl-C")
        signal.signal(signal.SIGINT, _stop_gracefully)
        try:
            with temporary_settings({PREFECT_API_URL: url}):
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
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.schedules import Cron
    from pydantic import ValidationError

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


@contextmanager
def prefect_api(log: Path, port: int, echo: Callable[[str], None] = print):
    """The configured Prefect API, or a local Prefect server started for the time of the block."""
    from prefect.settings import get_current_settings

    if configured := get_current_settings().api.url:
        yield configured
        return
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = url  # for the subprocesses that run the flow
    if _answers(url):  # a server that someone started without configuring it
        yield url
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # a session of its own: Ctrl-C stops `serve` first, which pauses its schedule, then the server
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        echo(f"starting a local Prefect server at {url} (log: {log})")
        deadline = time.monotonic() + SERVER_START_S
        while not _answers(url):
            if server.poll() is not None:
                raise PrefpipeError(f"the local Prefect server stopped with exit code {server.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise PrefpipeError(f"the local Prefect server did not answer at {url} within {SERVER_START_S} s; "
                                    f"see {log}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
