"""The warehouse (prefpipe.warehouse): opening applies the DDL and computes nothing; a second writer waits, then
fails in one line; a bad memory limit is refused before anything is read."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from helpers import ROOT

from prefpipe.errors import InputError, WarehouseBusy
from prefpipe.warehouse import Warehouse


def test_opening_a_new_warehouse_applies_the_ddl_and_computes_nothing(settings):
    with Warehouse.open(settings) as wh:
        assert wh.counts() == {"batches": 0, "annotations": 0, "responses": 0, "pairs": 0, "quarantine": 0}
        assert wh.con.table("cluster_settings").fetchall() == []  # clustering is the migration's (prefpipe.migrate)
        assert {title for title, _, _ in wh.curation_views()} >= {"Batches", "Quarantine by rule"}
        assert wh.batch_rows("0" * 64) is None
    with Warehouse.open(settings) as wh:  # again: the DDL is idempotent
        assert wh.con.table("latest_evalsets").fetchall() == []


def test_a_second_writer_waits_then_fails_naming_the_holder(settings):
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(settings.warehouse)!r}); "
                               "print('held', flush=True); time.sleep(30)"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(WarehouseBusy) as error:
            Warehouse(settings.warehouse, lock_timeout_s=0.5)
        assert time.monotonic() - started >= 0.5
        assert str(error.value) == (f"{settings.warehouse}: warehouse is busy: another process (PID {holder.pid}) "
                                    "holds it; waited 0.5 s (PREFPIPE_LOCK_TIMEOUT)")
    finally:
        holder.kill()
        holder.wait()


def test_a_bad_memory_limit_is_refused_in_one_line(tmp_path):
    with pytest.raises(InputError) as error:
        Warehouse(tmp_path / "w.duckdb", memory_limit="lots")
    assert str(error.value) == "memory_limit (PREFPIPE_MEMORY_LIMIT): must be a size such as 2.5GB, got 'lots'"
