"""One local Prefect server per home, shared by every command that runs a flow there.

Without PREFECT_API_URL, Prefect starts a temporary server (uvicorn + SQLite, ~230 MB) in every process that
runs a flow, and gives up when it does not answer within 20 s: on a busy machine every command failed so,
and three commands at once ran three servers on one SQLite file. Here a command that needs Prefect asks for
the home's server instead:

- a command holds a shared lock on `HOME/prefect/users.lock` for as long as it runs, and starts the server
  when none is running (under `start.lock`, so that commands started together start one);
- the server runs under a small supervisor (`python -m prefpipe.prefect_server`), detached from the command
  that started it: it outlives that command and serves the others. The supervisor stops the server once no
  command has held the users lock for `idle_s` seconds. The kernel drops a killed command's lock (kill -9
  too), and the server dies with its supervisor (PDEATHSIG), so nothing is left behind for long;
- its database is `HOME/prefect/prefect.db` (PREFECT_HOME), its log `HOME/prefect/server.log`; a new home's
  database starts as a copy of a migrated empty one, kept in ~/.cache/prefpipe/ per Prefect version.

PREFECT_API_URL, when the user sets one, wins: nothing is started. Imports no Prefect: it runs Prefect's CLI.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from prefpipe.errors import PrefpipeError
from prefpipe.processes import SHARED_SERVER as MARK
from prefpipe.processes import become_subreaper, stop_descendants

PR_SET_PDEATHSIG = 1
POLL_S = 0.5


@contextlib.contextmanager
def prefect_api(home: Path, *, start_timeout_s: float, idle_s: float, port: int | None = None) -> Iterator[str]:
    """The Prefect API URL for the time of the block: PREFECT_API_URL when set, else the home's shared server
    (started if need be, on PORT or a free port), set as PREFECT_API_URL for this process and its children."""
    if configured := os.environ.get("PREFECT_API_URL"):
        yield configured
        return
    folder = home / "prefect"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "users.lock", "a") as users:
        with _exclusive(folder / "start.lock", start_timeout_s, "another command starting the Prefect server"):
            fcntl.flock(users, fcntl.LOCK_SH)  # the supervisor takes start.lock before it looks for users
            url = running_url(folder) or _start(folder, port, start_timeout_s, idle_s)
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            os.environ.pop("PREFECT_API_URL", None)


def running_url(folder: Path) -> str | None:
    """The URL of the home's server when its supervisor is alive and the server answers."""
    try:
        state = json.loads((folder / "server.json").read_text())
    except (OSError, ValueError):
        return None
    alive = _command_line(state.get("pid", 0)).startswith(f"{sys.executable} -m prefpipe.prefect_server")
    return state["url"] if alive and answers(state["url"]) else None


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _start(folder: Path, port: int | None, timeout_s: float, idle_s: float) -> str:
    (folder / "server.json").unlink(missing_ok=True)
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}/api"
    if answers(url):
        raise PrefpipeError(f"port {port}: something else answers there (not this home's Prefect server); "
                            "choose another --port, or set PREFECT_API_URL to use that server")
    log = folder / "server.log"
    database, template = folder / "prefect.db", _template()
    fresh = not database.exists()
    if fresh and template.is_file():
        shutil.copyfile(template, database)
        fresh = False
    env = os.environ | {MARK: str(folder), "PREFECT_HOME": str(folder)}
    with open(log, "ab") as out:
        supervisor = subprocess.Popen([sys.executable, "-m", "prefpipe.prefect_server", str(folder), str(port),
                                       str(idle_s)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True)
    started = time.monotonic()
    while not answers(url):
        waited = time.monotonic() - started
        if supervisor.poll() is not None:
            raise PrefpipeError(f"the local Prefect server on port {port} stopped with exit code "
                                f"{supervisor.returncode} after {waited:.0f} s: {_last_message(log)} (log: {log})")
        if waited > timeout_s:
            supervisor.terminate()  # it stops its server
            supervisor.wait()
            (folder / "server.json").unlink(missing_ok=True)
            raise PrefpipeError(f"the local Prefect server on port {port} did not answer within {timeout_s:.0f} s "
                                f"(a busy machine?): set PREFPIPE_PREFECT_START_TIMEOUT to wait longer, or "
                                f"PREFECT_API_URL to use a running server (log: {log})")
        time.sleep(POLL_S)
    if fresh and database.is_file():
        _keep_template(database, template)
    return url


def _template() -> Path:
    """A migrated, empty Prefect database for this Prefect version: a new home's server starts from a copy
    (its first start would otherwise migrate a new SQLite file: ~7 s of CPU)."""
    return Path.home() / ".cache" / "prefpipe" / f"prefect-{metadata.version('prefect')}.db"


def _keep_template(database: Path, template: Path) -> None:
    """Copy a freshly started server's DATABASE as the TEMPLATE (SQLite's backup: consistent while it runs)."""
    with contextlib.suppress(OSError, sqlite3.Error):
        template.parent.mkdir(parents=True, exist_ok=True)
        staged = template.with_suffix(f".{os.getpid()}.tmp")
        with contextlib.closing(sqlite3.connect(database)) as source, \
                contextlib.closing(sqlite3.connect(staged)) as copy:
            source.backup(copy)
        staged.replace(template)  # whole or not at all, also with two homes starting at once


def supervise(folder: Path, port: int, idle_s: float) -> int:
    """Run the server until no command has used it for IDLE_S seconds (the supervisor's main)."""
    become_subreaper()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    env = {k: v for k, v in os.environ.items() if k != MARK}  # the server is the supervisor's to stop
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent)
    (folder / "server.json").write_text(json.dumps({"url": f"http://127.0.0.1:{port}/api", "pid": os.getpid()}))
    idle_since = time.monotonic()
    try:
        while server.poll() is None:
            time.sleep(POLL_S)
            with contextlib.suppress(BlockingIOError), open(folder / "start.lock", "a") as start:
                fcntl.flock(start, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no command is joining meanwhile
                if _in_use(folder):
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= idle_s:  # stopped before a new command may start another
                    (folder / "server.json").unlink(missing_ok=True)
                    stop_descendants(os.getpid())
                    return 0
        return server.returncode
    finally:
        stop_descendants(os.getpid())
        with contextlib.suppress(OSError, ValueError):  # a server that stopped by itself is no longer there
            if json.loads((folder / "server.json").read_text())["pid"] == os.getpid():
                (folder / "server.json").unlink()


def _in_use(folder: Path) -> bool:
    with open(folder / "users.lock", "a") as users:
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


@contextlib.contextmanager
def _exclusive(path: Path, timeout_s: float, holder: str) -> Iterator[None]:
    with open(path, "a") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PrefpipeError(f"{path}: still held after {timeout_s:.0f} s by {holder}") from None
                time.sleep(POLL_S)
        yield


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _last_message(log: Path) -> str:
    """The log's last paragraph, on one line (Prefect's console wraps a long message)."""
    paragraphs = [p for p in log.read_text(errors="replace").split("\n\n") if p.strip()]
    return " ".join(paragraphs[-1].split()) if paragraphs else "no output"


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))


@contextlib.contextmanager
def prefect_session(settings, port: int | None = None) -> Iterator[str]:
    """The Prefect API for the time of the block, for a command that runs a flow with SETTINGS (Settings): the
    one configured (PREFECT_API_URL, a profile, a test harness), else the home's shared local server (started
    on PORT, or a free port, when none runs). Yields its URL."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings  # 1.2 s: see cli.py

    if configured := get_current_settings().api.url:
        yield configured
        return
    with prefect_api(settings.home, start_timeout_s=settings.prefect_start_timeout_s, idle_s=settings.prefect_idle_s,
                     port=port) as url, temporary_settings({PREFECT_API_URL: url}):
        yield url
