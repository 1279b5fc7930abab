"""No process that a prefpipe command starts outlives it, even when the command is killed with SIGKILL.

The temporary Prefect server, `prefect server start` under `serve`, torchrun workers and Dask workers are
started by libraries, in their own ways (some in sessions of their own). Rather than patching each, a
command runs as a worker process under a small guard process (its parent, the PID the user sees), and both
are Linux child subreapers, so an orphaned descendant is re-parented to one of them, never to init:

- the guard waits for the worker and forwards it SIGTERM, SIGHUP and a SIGINT sent with `kill` (a Ctrl-C
  from the terminal reaches the worker directly). When the worker ends, however it ends, the guard stops
  every process left below it (SIGTERM, then SIGKILL after GRACE_S) and exits with the worker's status;
- the worker watches the guard. When the guard is gone (SIGKILL), the worker takes its own graceful
  shutdown if it has one (`serve` pauses its schedule on SIGTERM), then stops every process below it and
  exits.

Elsewhere than Linux the command runs in one process, as before.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

GRACE_S = 3.0  # from SIGTERM to SIGKILL
POLL_S = 0.2
PR_SET_CHILD_SUBREAPER = 36
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
SHARED_SERVER = "PREFPIPE_SHARED_PREFECT"  # in the environment of a home's shared Prefect server's supervisor
SI_USER = 0  # si_code of a signal sent with kill(); a terminal's Ctrl-C comes from the kernel


def run_guarded(main: Callable[[], int]) -> None:
    """Run MAIN in a worker under a guard (see the module's doc) and exit with its status."""
    if not sys.platform.startswith("linux") or not become_subreaper():
        sys.exit(main())
    guard = os.getpid()
    sys.stdout.flush(), sys.stderr.flush()
    worker = os.fork()
    if worker == 0:
        threading.Thread(target=_watch_guard, args=(guard,), name="prefpipe-guard-watch", daemon=True).start()
        sys.exit(main())
    os._exit(_guard(worker))


def become_subreaper() -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _guard(worker: int) -> int:
    """Forward signals to WORKER until it ends; then stop what it left behind. Returns the exit status."""
    awaited = (*FORWARDED, signal.SIGCHLD)  # a child's end wakes the guard at once: no poll's delay on exit
    signal.pthread_sigmask(signal.SIG_BLOCK, awaited)
    while True:
        info = signal.sigtimedwait(awaited, POLL_S)
        if info is not None and info.si_signo in FORWARDED and (info.si_signo != signal.SIGINT
                                                                 or info.si_code == SI_USER):
            _send(worker, info.si_signo)
        status = _reap(worker)
        if status is not None:
            break
    stop_descendants(os.getpid())
    return status if status >= 0 else 128 - status


def _reap(worker: int) -> int | None:
    """Collect every finished child (orphans are re-parented here); WORKER's exit status once it ends."""
    found = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == worker:
            found = os.waitstatus_to_exitcode(status)


def _watch_guard(guard: int) -> None:
    while os.getppid() == guard:
        time.sleep(POLL_S)
    me = os.getpid()
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
        atexit.register(stop_descendants, me)  # should the shutdown end this process first
        os.kill(me, signal.SIGTERM)  # the command's own graceful shutdown (serve: pause the schedule, stop)
        time.sleep(GRACE_S)
    stop_descendants(me)
    os._exit(128 + signal.SIGKILL)


def stop_descendants(root: int, grace_s: float = GRACE_S) -> None:
    """SIGTERM every process below ROOT, then SIGKILL those still there after GRACE_S."""
    pids = descendants(root)
    for pid in pids:
        _send(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        _reap(-1)  # zombies re-parented to ROOT would otherwise look alive
        pids = [p for p in pids if _alive(p)]
    for pid in descendants(root):
        _send(pid, signal.SIGKILL)
    _reap(-1)


def descendants(root: int) -> list[int]:
    """Every live process below ROOT, from /proc, but for a home's shared Prefect server, which outlives the
    command that started it by design and stops itself when idle (prefpipe/prefect_server.py)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (parent := _parent(int(entry))) is not None:
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if not _shared_server(child):
                found.append(child)
                todo.append(child)
    return [p for p in found if _alive(p)]


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])  # the name in () may hold spaces
    except (OSError, IndexError, ValueError):
        return None


def _shared_server(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return any(v.startswith(f"{SHARED_SERVER}=".encode()) for v in f.read().split(b"\0"))
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _send(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # gone already
        os.kill(pid, signum)
