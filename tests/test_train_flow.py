"""Training through the real flow: registry, artifacts, file modes, two processes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from flows.ingest import ingest_flow
from prefpipe.synth import synthetic_batch
from prefpipe.warehouse import Warehouse

pytestmark = pytest.mark.slow


def test_train_flow_registers_the_model_and_publishes_its_metrics(prefect_harness, tmp_path, settings_factory):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.train import train_flow
    from prefpipe.config import TrainConfig
    from prefpipe.errors import InputError
    from prefpipe.registry import list_models
    from prefpipe.synth import tiny_reward_model

    settings = settings_factory(tmp_path, splits=(0.7, 0.15, 0.15))
    config = TrainConfig(base=str(tiny_reward_model(tmp_path / "tiny")), lr=3e-3, epochs=2, max_tokens=2048)
    with pytest.raises(InputError, match="no training pairs: ingest annotations first"):
        train_flow(config, settings=settings, name="empty")
    assert not (settings.models / "empty").exists()

    ingest_flow([str(synthetic_batch(tmp_path / "batch.jsonl", 200, bad_lines=0))], settings=settings)
    umask = os.umask(0o022)
    try:
        result = train_flow(config, settings=settings, name="tiny-bt", progress=False)
    finally:
        os.umask(umask)
    run_dir = Path(result["path"])
    for path in (run_dir, *run_dir.iterdir()):  # others (analysts, Dask workers) can read the model
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    assert result["metrics"]["test"]["accuracy"] > 0.7
    with Warehouse.open(settings) as wh:
        columns, rows = list_models(wh)
        record = wh.con.execute("SELECT pairs, data_hash, len(batch_ids), active, hyperparameters ->> 'loss' "
                                "FROM models").fetchall()
    assert [r[columns.index("model_id")] for r in rows] == ["tiny-bt"]
    assert rows[0][columns.index("test_accuracy")] == round(result["metrics"]["test"]["accuracy"], 3)
    snapshot = result["figures"]
    assert record == [(snapshot["comparisons"] // 2, record[0][1], 1, True, "bt")]  # 2 epochs over the pairs
    with pytest.raises(InputError, match="already exists"):
        train_flow(config, settings=settings, name="tiny-bt")
    two = train_flow(config, settings=settings, name="tiny-2", processes=2, progress=False)  # torchrun, gloo
    assert two["figures"]["processes"] == 2 and two["metrics"]["test"]["accuracy"] > 0.7

    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["reward-model-metrics",
                                                                        "reward-model-calibration"])))}
    assert artifacts["reward-model-calibration"].data.startswith("data:image/png;base64,")
    table = artifacts["reward-model-metrics"].data
    assert "validation" in table and "ann-0" in table
