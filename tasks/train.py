"""Prefect tasks of the training flow: snapshot the data, fit, evaluate, register."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from prefect import task
from prefect.artifacts import create_image_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from prefpipe import metrics, registry, tables, train, training_data
from prefpipe.config import CONFIG
from prefpipe.errors import PrefpipeError
from prefpipe.settings import HELD_OUT, Settings
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


@task(cache_policy=NO_CACHE)
def publish_metrics(run_dir: Path, results: dict) -> None:
    """The held-out metrics as a table artifact, the calibration picture as an image artifact, the headline in
    the log."""
    rows = metric_rows(results)
    create_table_artifact(key="reward-model-metrics", table=rows,
                          description=f"{run_dir.name}: held-out accuracy (strict), log loss, ECE (10 bins)")
    image = base64.b64encode((run_dir / metrics.PLOT).read_bytes()).decode()
    create_image_artifact(image_url=f"data:image/png;base64,{image}", key="reward-model-calibration",
                          description=f"{run_dir.name}: calibration of σ(Δ) ({run_dir / metrics.PLOT})")
    for row in rows[:2]:
        print(f"{row['split']}: accuracy {row['accuracy']}, log loss {row['log_loss']}, ECE {row['ece']} "
              f"on {row['pairs']} pairs")


def metric_rows(results: dict) -> list[dict]:
    """The headline per split first, then per source and per annotator."""
    def row(split, group, name, m):
        return {"split": split, "group": group, "name": name, "pairs": m["pairs"],
                **{k: None if m[k] is None else round(m[k], 4) for k in ("accuracy", "log_loss", "ece")}}

    splits = [s for s in HELD_OUT if s in results]
    rows = [row(s, "all", "", results[s]) for s in splits]
    for s in splits:
        for group in ("by_source", "by_annotator"):
            rows += [row(s, group.removeprefix("by_"), k, m) for k, m in results[s][group].items()]
    return rows
