"""Prefect tasks of the training flow: snapshot the data, fit, evaluate, register."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefpipe import metrics, registry, tables, train, training_data
from prefpipe.config import CONFIG
from prefpipe.errors import PrefpipeError
from prefpipe.settings import Settings
from prefpipe.warehouse import Warehouse
from tasks import retry_unless_input_error


@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_unless_input_error,
      cache_policy=NO_CACHE)
def snapshot_data(settings: Settings, run_dir: Path, exclude: list[str] | None = None) -> dict:
    """The warehouse's annotations into RUN_DIR/data.parquet (less the matches of the sets EXCLUDE); the warehouse is
    closed again for training."""
    with Warehouse.open(settings) as wh:
        return training_data.write_snapshot(wh.con, run_dir / training_data.SNAPSHOT, exclude=exclude)


@task(cache_policy=NO_CACHE)
def fit_model(run_dir: Path, resume: bool = False, processes: int = 1, progress: bool = True) -> dict:
    """Train in this process, or in PROCESSES processes under torchrun (data parallel)."""
    if processes == 1:
        return train.fit(run_dir, resume=resume, progress=progress, report=print)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "prefpipe.train", str(run_dir), *(["--resume"] if resume else []),
               *([] if progress else ["--no-progress"])]
    print("running " + " ".join(command))
    if subprocess.run(command, check=False).returncode != 0:
        raise PrefpipeError(f"{run_dir}: training in {processes} processes failed (see above); "
                            "continue with --resume")
    return json.loads((run_dir / train.FIGURES).read_text())


@task(cache_policy=NO_CACHE)
def held_out_metrics(run_dir: Path) -> dict:
    return metrics.held_out_metrics(run_dir)


@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_unless_input_error,
      cache_policy=NO_CACHE)
def register_model(settings: Settings, model_id: str, run_dir: Path, snapshot: dict, results: dict,
                   replace: bool = False) -> None:
    config = json.loads((run_dir / CONFIG).read_text())
    with Warehouse.open(settings) as wh:
        registry.register_model(wh, model_id, run_dir, config, snapshot, results, replace=replace)
        tables.publish_tables(wh.con, settings.tables)
