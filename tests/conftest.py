from __future__ import annotations

import json
import os
from pathlib import Path

for _name, _value in {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false",
                      "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"}.items():
    os.environ.setdefault(_name, _value)

import pytest  # noqa: E402

from prefpipe.ingest import ingest_file  # noqa: E402
from prefpipe.settings import Settings  # noqa: E402
from prefpipe.warehouse import Warehouse  # noqa: E402


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


def annotation(prompt_id: str = "p-1", *ranks, annotator: str = "ann-1", **fields) -> dict:
    """A canonical annotation; ranks given as ints (or None = unranked), texts made distinct."""
    responses = [{"response_id": chr(97 + i), "text": f"text {prompt_id} {i}"} | ({} if r is None else {"rank": r})
                 for i, r in enumerate(ranks or (1, 2))]
    return {"prompt_id": prompt_id, "prompt": f"prompt {prompt_id}", "annotator_id": annotator,
            "responses": responses} | fields


def write_batch(path: Path, *lines: dict | str) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


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


def quarantine(wh: Warehouse) -> dict[int, tuple[str, str]]:
    return {line: (rule, reason) for line, rule, reason in
            wh.con.execute("SELECT line, rule, reason FROM quarantine").fetchall()}


def pairs(wh: Warehouse, annotation_id: str | None = None) -> set[tuple[str, str, int]]:
    rows = wh.con.execute("SELECT chosen_id, rejected_id, margin FROM pairs WHERE ? IS NULL OR annotation_id = ?",
                          [annotation_id, annotation_id]).fetchall()
    return set(rows)
