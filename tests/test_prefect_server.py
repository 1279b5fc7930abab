"""The home's shared Prefect server: commands that run flows succeed on a busy machine, share one server,
and leave nothing behind; a server that cannot start says why in one line."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest
from helpers import LLMBAR, ROOT, first_rows, run_cli

from prefpipe.errors import PrefpipeError
from prefpipe.evaluation import evaluate_model
from prefpipe.ingest import ingest_file
from prefpipe.prefect_server import _template, prefect_api
from prefpipe.synth import synthetic_batch, tiny_reward_model
from prefpipe.warehouse import Warehouse

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc, flock")]
BUSY_S = 240  # the longest a CPU burner lives, should the test fail before it stops them


@pytest.fixture
def busy_machine():
    """Starts a CPU-bound process per core, each bounded in time; returns the function that stops them (also
    called when the test ends)."""
    burners = []

    def stop() -> None:
        for p in burners:
            p.kill()
            p.wait()

    def start_burning():
        burn = f"import time\nend = time.monotonic() + {BUSY_S}\nwhile time.monotonic() < end: pass"
        burners.extend(subprocess.Popen([sys.executable, "-c", burn]) for _ in range(os.cpu_count()))
        return stop

    yield start_burning
    stop()


@contextlib.contextmanager
def shared_server(home, port: int):
    """The home's shared server on PORT, asked for in this process (as a command without PREFECT_API_URL)."""
    saved = os.environ.pop("PREFECT_API_URL", None)
    try:
        with prefect_api(home, start_timeout_s=60, idle_s=1, port=port) as url:
            yield url
    finally:
        if saved is not None:
            os.environ["PREFECT_API_URL"] = saved


def home_env(home, idle_s: float = 3) -> dict:
    return {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {
        "PREFPIPE_HOME": str(home), "PREFPIPE_PREFECT_IDLE": str(idle_s)}


def start(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "prefpipe.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(command: subprocess.Popen, timeout: float = 300) -> str:
    out, err = command.communicate(timeout=timeout)
    assert command.returncode == 0 and err == "", (out[-2000:], err)
    return out


def supervisor(home) -> int | None:
    try:
        return json.loads((home / "prefect" / "server.json").read_text())["pid"]
    except (OSError, ValueError):
        return None


def scores(home) -> dict[str, list[float]]:
    [folder] = (home / "results").glob("evalset=small/model=rm/*/*/")
    return scores_of(folder)


def scores_of(folder) -> dict[str, list[float]]:
    table = pq.ParquetFile(folder / "scores.parquet").read().to_pylist()
    return {r["example_id"]: r["chosen_scores"] + r["rejected_scores"] for r in table}


def test_flow_commands_succeed_on_a_busy_machine_share_one_server_and_equal_a_quiet_run(
        tmp_path, busy_machine, settings_factory):
    batches = [synthetic_batch(tmp_path / f"b{i}.jsonl", 60, seed=i, bad_lines=0) for i in range(2)]
    small, model = first_rows(LLMBAR, 20, tmp_path / "small.jsonl"), tiny_reward_model(tmp_path / "rm", positions=2048)
    busy = tmp_path / "busy"
    assert run_cli("models", "add", str(model), "--name", "rm", env={"PREFPIPE_HOME": str(busy)}).returncode == 0
    env = home_env(busy, idle_s=120) | {"PREFPIPE_LOCK_TIMEOUT": "200"}  # start-ups under load are slow
    stop_burning = busy_machine()
    started = time.monotonic()
    try:
        together = [start("ingest", str(b), env=env) for b in batches]  # three at once, on one home
        together.append(start("evalset", "add", str(small), "--name", "small", env=env))
        outputs = [finish(c) for c in together]
        together = [start("nightly", env=env), start("report", "--out", str(busy / "own-report"), env=env)]
        outputs += [finish(c) for c in together]
        busy_s = time.monotonic() - started
    finally:
        stop_burning()
        if pid := supervisor(busy):
            os.kill(pid, signal.SIGTERM)  # rather than idle for two minutes
    log = (busy / "prefect" / "server.log").read_text()
    assert log.count("Check out the dashboard") == 1, log[-3000:]  # one server served all the flow commands
    assert _template().is_file()  # the next new home's server starts from a migrated copy of its database
    assert all("loaded" in out for out in outputs[:2])
    assert (busy / "report" / "index.html").is_file() and (busy / "own-report" / "index.html").is_file()

    quiet = settings_factory(tmp_path / "quiet")  # a quiet run of the same steps, through the library
    with Warehouse.open(quiet) as wh:
        quiet_pairs = sum(ingest_file(wh, b, quiet).pairs for b in batches)
    run = json.loads(run_cli("sql", "SELECT count(*) AS n FROM pairs", "--format", "json",
                             env={"PREFPIPE_HOME": str(busy)}).stdout)[0]["n"]
    assert run == quiet_pairs > 0
    folder = evaluate_model(model, "rm", small, "small", quiet.results, run_id="quiet")
    got, want = scores(busy), scores_of(folder)
    assert got.keys() == want.keys() and len(got) == 20
    assert all(got[k] == pytest.approx(want[k], abs=1e-6) for k in want)
    print(f"five commands under load in {busy_s:.0f} s")


class NotPrefect(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_server_that_cannot_start_says_why_in_one_line(tmp_path):
    env = home_env(tmp_path / "home") | {"PREFPIPE_PREFECT_START_TIMEOUT": "0.5"}
    batch = synthetic_batch(tmp_path / "b.jsonl", 5, bad_lines=0)
    done = subprocess.run([sys.executable, "-m", "prefpipe.cli", "ingest", str(batch)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "did not answer within 0 s (a busy machine?): set PREFPIPE_PREFECT_START_TIMEOUT" in done.stderr
    assert supervisor(tmp_path / "home") is None  # nothing left running

    other = http.server.HTTPServer(("127.0.0.1", 0), NotPrefect)  # something else answers on the port
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        port = other.server_address[1]
        with pytest.raises(PrefpipeError) as refused, shared_server(tmp_path / "home2", port):
            pass
        assert str(refused.value) == (f"port {port}: something else answers there (not this home's Prefect server); "
                                      "choose another --port, or set PREFECT_API_URL to use that server")
    finally:
        other.shutdown()
    with socket.socket() as taken:  # a port held by something that is no HTTP server: Prefect's server stops
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PrefpipeError) as stopped, shared_server(tmp_path / "home4", port):
            pass
    log = tmp_path / "home4" / "prefect" / "server.log"
    assert str(stopped.value).startswith(f"the local Prefect server on port {port} stopped with exit code 1 after ")
    assert f"Port {port} is already in use" in str(stopped.value) and "\n" not in str(stopped.value)
    assert str(stopped.value).endswith(f"(log: {log})") and supervisor(tmp_path / "home4") is None
    for port in ("70000", "-1", "0"):
        done = run_cli("serve", "--port", port, env=home_env(tmp_path / "home3"))
        assert done.stderr == f"prefpipe: error: --port: must be a port number from 1 to 65535, got {port}\n"
