"""Fixtures shared by the tests: a Prefect test server, settings on a temporary home, a warehouse, ingest."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_batch

from prefpipe.ingest import ingest_file  # the package sets no telemetry, no hub (prefpipe.OFFLINE)
from prefpipe.settings import Settings
from prefpipe.warehouse import Warehouse


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for every test that runs a real flow."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def settings_factory():
    def make(tmp: Path, **overrides) -> Settings:
        return Settings.from_env(**{"home": tmp / "home", "warehouse": tmp / "warehouse.duckdb",
                                    "data_docs": False, "max_quarantined_share": 1.0} | overrides)
    return make


@pytest.fixture
def settings(tmp_path: Path, settings_factory) -> Settings:
    return settings_factory(tmp_path)


@pytest.fixture
def wh(settings: Settings):
    with Warehouse(settings.warehouse) as warehouse:
        yield warehouse


@pytest.fixture
def ingest(wh: Warehouse, settings: Settings, tmp_path: Path):
    """Write the given lines as a batch file and ingest it; returns the summary."""
    counter = iter(range(10**6))

    def run(*lines: dict | str, fmt: str = "auto", **overrides):
        path = write_batch(tmp_path / f"batch-{next(counter)}.jsonl", *lines)
        summary = ingest_file(wh, path, settings.with_(**overrides) if overrides else settings, fmt)
        assert summary.balanced, summary
        return summary

    return run
