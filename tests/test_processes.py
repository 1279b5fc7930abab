"""After SIGKILL of a prefpipe command, no process it started survives for more than a few seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, read_deployment

from prefpipe.processes import _alive, _parent, descendants
from prefpipe.synth import synthetic_batch

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")]


def start(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "prefpipe.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.2)
    pytest.fail(f"no {what} within {timeout_s} s")


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def server_below(pid: int) -> list[int]:
    """The processes below PID once the temporary Prefect server (uvicorn) is among them."""
    below = descendants(pid)
    return below if any("uvicorn" in command_line(p) for p in below) else []


@pytest.mark.parametrize("killed", ["guard", "worker"])
def test_sigkill_of_a_command_or_its_worker_leaves_no_process(tmp_path, killed):
    """The guard is the PID a user sees; the worker runs the command below it (prefpipe/processes.py)."""
    batch = synthetic_batch(tmp_path / "big.jsonl", 40_000)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFPIPE_HOME": str(tmp_path)}
    command = start("ingest", str(batch), env=env)  # starts a temporary Prefect server
    below = wait_for(lambda: server_below(command.pid), 60, "temporary Prefect server")
    [worker] = [p for p in below if _parent(p) == command.pid]
    os.kill(command.pid if killed == "guard" else worker, signal.SIGKILL)
    wait_for(lambda: not any(_alive(p) for p in below), 8, "end of every process the command started")
    command.wait(10)


def test_sigkill_of_serve_pauses_its_schedule_and_leaves_no_process(prefect_harness, tmp_path, settings_factory):
    from prefect.settings import PREFECT_API_URL

    from prefpipe.warehouse import Warehouse

    settings = settings_factory(tmp_path)
    Warehouse.open(settings).close()
    url = PREFECT_API_URL.value()
    env = os.environ | {"PREFECT_API_URL": url, "PREFPIPE_HOME": str(settings.home),
                        "PREFPIPE_WAREHOUSE": str(settings.warehouse)}
    serve = start("serve", "--cron", "7 4 * * *", env=env)
    deployment = read_deployment(url, "nightly/nightly", wait_s=90)
    assert deployment.schedules[0].active and not deployment.paused
    wait_for(lambda: read_deployment(url, "nightly/nightly").last_polled, 30, "poll of serve's runner")  # serving
    below = descendants(serve.pid)
    os.kill(serve.pid, signal.SIGKILL)
    wait_for(lambda: not any(_alive(p) for p in below), 10, "end of serve's worker")
    assert read_deployment(url, "nightly/nightly").paused  # serve's own shutdown ran on the way out
    serve.wait(10)
