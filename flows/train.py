"""Training flow: snapshot the curated pairs -> fit a reward model -> evaluate it -> register it."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from prefpipe.config import CONFIG, TrainConfig
from prefpipe.errors import InputError
from prefpipe.names import check_name
from prefpipe.settings import Settings
from prefpipe.training_data import SNAPSHOT, snapshot_record
from tasks.train import fit_model, held_out_metrics, publish_metrics, register_model, snapshot_data


@flow(name="train", log_prints=True)
def train_flow(config: TrainConfig | None = None, settings: Settings | None = None, name: str | None = None,
               resume: str | None = None, processes: int = 1, progress: bool = True,
               exclude: list[str] | None = None) -> dict:
    """Train a model on the warehouse's training split, or resume the run RESUME (an id or a folder). EXCLUDE:
    evaluation sets (or `all`) whose matches in the warehouse are left out (prefpipe.contamination)."""
    settings = settings or Settings.from_env()
    if processes < 1:
        raise InputError(f"must be at least 1, got {processes}", field="--nproc")
    if resume:
        run_dir = resume_folder(settings, resume)
        snapshot = snapshot_record(run_dir / SNAPSHOT)
    else:
        config = config or TrainConfig()
        run_dir = new_run_folder(settings, name or f"rm-{config.loss}-{datetime.now(UTC):%Y%m%d-%H%M%S}")
        config.save(run_dir)
        snapshot = snapshot_data(settings, run_dir, exclude)
        if not snapshot["pairs"]["train"]:
            shutil.rmtree(run_dir)
            raise InputError("no training pairs: ingest annotations first", file=settings.warehouse)
    print(f"{run_dir.name}: {snapshot['annotations']} annotations from {len(snapshot['batch_ids'])} batches; "
          f"pairs {snapshot['pairs']}; data {snapshot['hash'][:12]}")
    if excluded := snapshot.get("excluded"):
        print(f"left out {excluded['annotations']} annotations that match evaluation sets: " + ", ".join(
            f"{name} ({e['annotations']} annotations, {e['examples']} examples)"
            for name, e in excluded["evalsets"].items()))
    figures = fit_model(run_dir, resume=bool(resume), processes=processes, progress=progress)
    print(f"trained {figures['steps']} steps: {figures['comparisons']} comparisons, {figures['tokens']} tokens "
          f"in {figures['seconds']:.0f} s ({figures['tokens'] / max(figures['seconds'], 1e-9):.0f} tokens/s); "
          f"{figures['identical_after_truncation']} pairs left out, identical after truncation")
    results = held_out_metrics(run_dir)
    register_model(settings, run_dir.name, run_dir, snapshot, results, replace=bool(resume))
    publish_metrics(run_dir, results)
    return {"model_id": run_dir.name, "path": str(run_dir), "figures": figures, "metrics": results}


def new_run_folder(settings: Settings, model_id: str) -> Path:
    run_dir = settings.models / check_name(model_id)
    if run_dir.exists():
        raise InputError("already exists: choose another --name, or --resume it", file=run_dir)
    run_dir.mkdir(parents=True)
    return run_dir


def resume_folder(settings: Settings, resume: str) -> Path:
    for run_dir in (Path(resume), settings.models / resume):
        if (run_dir / CONFIG).is_file():
            return run_dir
    raise InputError(f"no training run of that name in {settings.models} (nor a run folder)", file=resume)
