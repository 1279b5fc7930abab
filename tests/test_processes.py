"""After SIGKILL of a prefpipe command, no process it started survives for more than a few seconds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import ONE_DEPLOYMENT, ROOT, read_deployment

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


def shared_server(home) -> int | None:
    """The PID of the home's shared Prefect server's supervisor, once it runs (prefpipe/prefect_server.py)."""
    try:
        return json.loads((home / "prefect" / "server.json").read_text())["pid"]
    except (OSError, ValueError):
        return None


@pytest.mark.parametrize("killed", ["guard", "worker", "serve's guard and worker"])
def test_sigkill_of_a_command_or_its_worker_leaves_no_process(tmp_path, killed):
    """The guard is the PID a user sees; the worker runs the command below it (prefpipe/processes.py). The
    home's shared Prefect server is no child of the command's: it stops itself once its last user is gone."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFPIPE_HOME": str(tmp_path),
                                                                             "PREFPIPE_PREFECT_IDLE": "2"}
    if killed.startswith("serve"):
        command = start("serve", "--port", str(free_port()), env=env)
    else:
        command = start("ingest", str(synthetic_batch(tmp_path / "big.jsonl", 40_000)), env=env)
    server = wait_for(lambda: shared_server(tmp_path), 90, "shared Prefect server")
    wait_for(lambda: server_answers(tmp_path / "prefect" / "server.json"), 90, "answer of the shared Prefect server")
    below = descendants(command.pid)
    [worker] = [p for p in below if _parent(p) == command.pid]
    for pid in {"guard": [command.pid], "worker": [worker]}.get(killed, [command.pid, worker]):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(_alive(p) for p in below), 8, "end of every process the command started")
    wait_for(lambda: not _alive(server), 2 + 15, "end of the shared server once unused")
    command.wait(10)


def server_answers(record: Path) -> bool:
    """The home's server answers at the URL its record names (False while the record is not written whole)."""
    try:
        return read_url(json.loads(record.read_text())["url"])
    except (OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_url(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@ONE_DEPLOYMENT
def test_sigkill_of_serve_pauses_its_schedule_and_leaves_no_process(nightly_deployment, tmp_path, settings_factory):
    from prefpipe.warehouse import Warehouse

    settings = settings_factory(tmp_path)
    Warehouse.open(settings).close()
    url = nightly_deployment
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
