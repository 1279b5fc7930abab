"""What several test files use: the project's public samples, the CLI in a subprocess, small files."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "data" / "public"  # copies of public data sets, with their licenses (data/public/README.md)
LLMBAR = PUBLIC / "evalsets" / "llmbar-rewardbench.jsonl"
HH = PUBLIC / "hh-rlhf" / "helpful-base-test-first2000.jsonl.gz"
OASST = PUBLIC / "oasst" / "en_100_trees.jsonl.gz"
PANDALM = PUBLIC / "pandalm" / "testset-v1.json.gz"


def cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """`prefpipe ARGS` in a subprocess, as a user runs it (under its process guard)."""
    return subprocess.run([sys.executable, "-m", "prefpipe.cli", *args], capture_output=True, text=True,
                          cwd=kwargs.pop("cwd", ROOT), env=os.environ | (env or {}), timeout=300, **kwargs)


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict | None = None) -> Done:
    """`prefpipe ARGS` run by the CLI's own code in this process, with ENV set for the time of the call: for
    commands that start no flow (a subprocess costs seconds of imports)."""
    from prefpipe.cli import run

    out, err, saved = io.StringIO(), io.StringIO(), dict(os.environ)
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return Done(code, out.getvalue(), err.getvalue())


def read_text(path: Path) -> str:
    """A sample's text, gzip or not."""
    return gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()


def first_rows(path: Path, rows: int, out: Path) -> Path:
    out.write_text("".join(read_text(path).splitlines(keepends=True)[:rows]))
    return out


def read_deployment(url: str, name: str, wait_s: float = 0):
    """The deployment NAME on the Prefect server at URL, waiting up to WAIT_S for it to appear."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + wait_s
    with temporary_settings({PREFECT_API_URL: url}):
        while True:
            try:
                with get_client(sync_client=True) as client:
                    return client.read_deployment_by_name(name)
            except (ObjectNotFound, httpx.TransportError):  # not there yet, or the server is still starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
