"""Ingest through the real flow: a real DuckDB file, the real GX suite, Prefect; a kill mid-load, a busy warehouse."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import CONSISTENT, PANDALM, ROOT, cli, run_cli

from flows.ingest import ingest_flow
from prefpipe.processes import _parent, descendants
from prefpipe.synth import synthetic_batch
from prefpipe.warehouse import Warehouse

pytestmark = pytest.mark.slow


def test_flow_ingests_a_folder_and_writes_data_docs(prefect_harness, tmp_path, settings_factory):
    folder = tmp_path / "batches"
    synthetic_batch(folder / "a.jsonl", 120, seed=1)
    synthetic_batch(folder / "b.jsonl", 80, seed=2, bad_lines=0)
    settings = settings_factory(tmp_path, data_docs=True)
    first = ingest_flow([str(folder)], settings=settings)
    assert [(s.status, s.loaded, s.quarantined) for s in first] == [("loaded", 120, 3), ("loaded", 80, 0)]
    assert all(s.balanced for s in first)
    assert (settings.docs_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    again = ingest_flow([str(folder / "a.jsonl")], settings=settings)
    assert [(s.status, s.skipped) for s in again] == [("skipped", 123)]
    with Warehouse(settings.warehouse) as wh:
        batches, annotations, *_ = wh.con.execute(CONSISTENT).fetchone()
    assert (batches, annotations) == (2, 200)


def test_a_load_killed_midway_leaves_all_or_nothing_and_a_rerun_matches_a_clean_run(
        prefect_harness, tmp_path, settings_factory):
    from prefect.settings import PREFECT_API_URL

    batch = synthetic_batch(tmp_path / "big.jsonl", 25_000, seed=3)  # its load lasts long enough to be killed
    clean = ingest_flow([str(batch)], settings=settings_factory(tmp_path / "clean"))[0]
    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFPIPE_WAREHOUSE": str(tmp_path / "w.duckdb"),
           "PREFPIPE_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "prefpipe.cli", "ingest", str(batch)], cwd=ROOT,
                            env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # the load starts as soon as validation is done
        if "Task run 'validate" in line and "Completed" in line:
            time.sleep(0.05)
            break
    [worker] = [p for p in descendants(proc.pid) if _parent(p) == proc.pid]  # the process doing the load
    os.kill(worker, signal.SIGKILL)
    proc.wait()
    with Warehouse(tmp_path / "w.duckdb") as wh:
        batches, annotations, _responses, pairs, quarantined, orphans, loaded = wh.con.execute(CONSISTENT).fetchone()
    assert orphans == 0 and loaded == annotations
    assert (batches, annotations, pairs, quarantined) in {(0, 0, 0, 0), (1, clean.loaded, clean.pairs, clean.quarantined)}
    rerun = cli("ingest", str(batch), env=env)
    assert rerun.returncode == 0, rerun.stderr
    with Warehouse(tmp_path / "w.duckdb") as wh:
        batches, annotations, _responses, pairs, quarantined, orphans, loaded = wh.con.execute(CONSISTENT).fetchone()
    assert (batches, annotations, pairs, quarantined) == (1, clean.loaded, clean.pairs, clean.quarantined)


def test_a_folder_is_ingested_file_by_file_and_every_outcome_is_reported(prefect_harness, tmp_path):
    import gzip

    from prefect.settings import PREFECT_API_URL

    folder = tmp_path / "batches"
    synthetic_batch(folder / "a.jsonl", 50, seed=1, bad_lines=0)
    whole = gzip.compress(synthetic_batch(tmp_path / "b.jsonl", 30, seed=2).read_bytes())
    (folder / "b.jsonl.gz").write_bytes(whole[: len(whole) // 2])  # a transfer cut short
    synthetic_batch(folder / "c.jsonl", 40, seed=3, bad_lines=0)
    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFPIPE_HOME": str(tmp_path / "home")}
    done = cli("ingest", str(folder), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "home" / "prefect").exists()  # PREFECT_API_URL is used: no server of the home's
    assert done.stderr.splitlines() == [f"prefpipe: error: {folder / 'b.jsonl.gz'}: truncated gzip: Compressed file "
                                        "ended before the end-of-stream marker was reached"]
    outcomes = [line.split()[:4] for line in done.stdout.splitlines() if line.startswith(str(folder))]
    assert outcomes == [[str(folder / "a.jsonl"), "loaded", "50", "50"], [str(folder / "b.jsonl.gz"), "failed", "0", "0"],
                        [str(folder / "c.jsonl"), "loaded", "40", "40"]]
    published = cli("sql", "SELECT count(*) AS n FROM annotations", "--format", "csv", env=env)
    assert published.stdout.splitlines() == ["n", "90"]  # the copies hold what was committed


def test_a_second_writer_waits_then_says_the_warehouse_is_busy(tmp_path):
    path = tmp_path / "w.duckdb"
    with Warehouse(path):
        started = time.monotonic()
        result = cli("stats", "--warehouse", str(path), env={"PREFPIPE_LOCK_TIMEOUT": "1.5"})
        waited = time.monotonic() - started
    assert result.returncode == 1
    assert "warehouse is busy" in result.stderr and "waited 1.5 s" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and waited >= 1.5
    assert cli("stats", "--warehouse", str(path)).returncode == 0  # the file is fine afterwards


def test_cli_ingests_a_public_format_then_shows_agreement_and_exports(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    pandalm = PANDALM
    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFPIPE_HOME": str(tmp_path)}
    ingested = cli("ingest", str(pandalm), env=env)
    assert ingested.returncode == 0, ingested.stderr
    assert "2997" in ingested.stdout and "text 18" in ingested.stdout
    stats = run_cli("stats", env=env)
    assert stats.returncode == 0, stats.stderr
    assert "Agreement where a prompt was judged more than once" in stats.stdout and "fleiss_kappa" in stats.stdout
    assert "annotator1" in stats.stdout
    exported = run_cli("export", str(tmp_path / "train.parquet"), "--split", "all", env=env)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == f"{tmp_path / 'train.parquet'}: 2657 pairs (all)"
    wrong = run_cli("export", str(tmp_path / "x.csv"), env=env)
    assert wrong.returncode == 1 and wrong.stderr.strip() == f"prefpipe: error: {tmp_path / 'x.csv'}: the output must end in .jsonl or .parquet"
