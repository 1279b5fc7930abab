"""The `models` table: which reward models exist, what they learned from, how good they are."""

from __future__ import annotations

import json
from pathlib import Path

from prefpipe.errors import InputError
from prefpipe.warehouse import Warehouse

LISTED = ("model_id", "created_at", "active", "loss", "pairs", "base", "path")
HEADLINE = ("accuracy", "log_loss", "ece", "pairs")


def register_model(wh: Warehouse, model_id: str, path: Path, config: dict, snapshot: dict, metrics: dict) -> None:
    """Add the model; registering the same id again (a resumed run) replaces its row."""
    path = Path(path).resolve()
    with wh.transaction() as con:
        held = con.execute("SELECT path FROM models WHERE model_id = ?", [model_id]).fetchone()
        if held and held[0] != str(path):
            raise InputError(f"already names the model at {held[0]}; choose another --name", field="model id",
                             file=model_id)
        con.execute("DELETE FROM models WHERE model_id = ?", [model_id])
        headline = {split: {k: metrics[split][k] for k in HEADLINE} for split in ("validation", "test")
                    if split in metrics}
        con.execute("INSERT INTO models (model_id, path, base, loss, hyperparameters, batch_ids, pairs, data_hash, "
                    "metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [model_id, str(path), config["base"], config["loss"], json.dumps(config),
                     snapshot["batch_ids"], snapshot["pairs"]["train"], snapshot["hash"], json.dumps(headline)])


def list_models(wh: Warehouse) -> tuple[list[str], list[tuple]]:
    return wh.query(f"SELECT {', '.join(LISTED[:5])}, "
                    "round((metrics -> 'test' ->> 'accuracy')::DOUBLE, 3) AS test_accuracy, "
                    "round((metrics -> 'test' ->> 'ece')::DOUBLE, 3) AS test_ece, "
                    f"{', '.join(LISTED[5:])} FROM models ORDER BY created_at DESC, model_id")
