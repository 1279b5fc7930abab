"""What several test files use: the project's public samples, the CLI in a subprocess, small files."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def cli_ok(*args: str) -> str:
    """The output of `prefpipe ARGS` run in this process, which must succeed, saying nothing on stderr (it holds
    only a failed command's error: a library's warnings go to the log)."""
    done = run_cli(*args)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def read_text(path: Path) -> str:
    """A sample's text, gzip or not."""
    return gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()


def first_rows(path: Path, rows: int, out: Path) -> Path:
    out.write_text("".join(read_text(path).splitlines(keepends=True)[:rows]))
    return out


# tests that create the `nightly/nightly` deployment on the shared Prefect server run one at a time, on one worker
ONE_DEPLOYMENT = pytest.mark.xdist_group("nightly-deployment")


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


# -- batches and what the warehouse made of them -------------------------------------------------------

@contextlib.contextmanager
def sql_macros(*scripts: str):
    """An in-memory DuckDB connection with the project's SQL SCRIPTS run (e.g. their macros), closed after."""
    import duckdb

    from prefpipe.sql import run_script

    con = duckdb.connect()
    try:
        for script in scripts:
            run_script(con, script)
        yield con
    finally:
        con.close()


def annotation(prompt_id: str = "p-1", *ranks, annotator: str = "ann-1", **fields) -> dict:
    """A canonical annotation; ranks given as ints (or None = unranked), texts made distinct."""
    responses = [{"response_id": chr(97 + i), "text": f"text {prompt_id} {i}"} | ({} if r is None else {"rank": r})
                 for i, r in enumerate(ranks or (1, 2))]
    return {"prompt_id": prompt_id, "prompt": f"prompt {prompt_id}", "annotator_id": annotator,
            "responses": responses} | fields


WORDS = ("river mountain lantern copper violin harbor meadow pepper falcon orchard tunnel saddle compass marble "
         "willow thunder biscuit canyon ember glacier hammock island jasmine kettle lobster nectar oyster quartz "
         "raven spruce tulip umber velvet walnut yarrow zephyr anchor basket candle dagger").split()


def text(seed: int, words: int = 24) -> str:
    """Words drawn from a small vocabulary: unrelated texts share words, rarely 5-grams."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def write_batch(path: Path, *lines: dict | str) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def quarantine(wh) -> dict[int, tuple[str, str]]:
    return {line: (rule, reason) for line, rule, reason in
            wh.con.execute("SELECT line, rule, reason FROM quarantine").fetchall()}


def pairs(wh, annotation_id: str | None = None) -> set[tuple[str, str, int]]:
    rows = wh.con.execute("SELECT chosen_id, rejected_id, margin FROM pairs WHERE ? IS NULL OR annotation_id = ?",
                          [annotation_id, annotation_id]).fetchall()
    return set(rows)


# -- warehouses for the flow tests -------------------------------------------------------------------------

CONSISTENT = """
SELECT (SELECT count(*) FROM batches), (SELECT count(*) FROM annotations), (SELECT count(*) FROM responses),
       (SELECT count(*) FROM pairs), (SELECT count(*) FROM quarantine),
       (SELECT count(*) FROM pairs ANTI JOIN annotations USING (annotation_id)),
       (SELECT coalesce(sum(loaded), 0) FROM batches)"""  # counts, orphan pairs, and loaded as the batches say


def one_model_one_set(settings, tmp_path: Path):
    """A warehouse with one tiny reward model and the first 20 LLMBar examples as the set `small`."""
    from prefpipe.registry import add_model, register_evalset
    from prefpipe.synth import tiny_reward_model
    from prefpipe.warehouse import Warehouse

    small = first_rows(LLMBAR, 20, tmp_path / "small.jsonl")
    with Warehouse.open(settings) as wh:
        add_model(wh, tiny_reward_model(tmp_path / "rm", positions=2048), "rm")
        register_evalset(wh, settings.home, small, "small")
    return settings
