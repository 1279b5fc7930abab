"""Prefect tasks of the nightly evaluation: read the registry, score one (model, set) unit."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefpipe import evaluation, registry, tables
from prefpipe.settings import Settings
from prefpipe.warehouse import Warehouse
from tasks import retry_unless_input_error


@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_unless_input_error,
      cache_policy=NO_CACHE)
def read_registry(settings: Settings) -> tuple[list[tuple[str, str]], list[dict]]:
    """Active models and the latest version of every evaluation set; the warehouse is closed again.
    The warehouse tables are published to Parquet too, so analysts' SQL sees tonight's registry."""
    with Warehouse.open(settings) as wh:
        tables.publish_tables(wh.con, settings.tables)
        return registry.active_models(wh), registry.latest_evalsets(wh)


@task(cache_policy=NO_CACHE, task_run_name="score {model_id} on {evalset[name]}")
def score_unit(results: Path, model_id: str, model_path: str, reference: str | None, evalset: dict, run_id: str,
               run_date: date, force: bool, started: float) -> str:
    """One model on one set: a new run folder in the lake, or skipped when these results exist."""
    print(f"{model_id} on {evalset['name']}: {evalset['examples']} examples"
          f"{f' (DPO policy against {reference})' if reference else ''}")
    folder = evaluation.evaluate(Path(model_path), model_id, Path(evalset["path"]), evalset["name"], results,
                           run_id=run_id, run_date=run_date, force=force, fmt=evalset["format"], started=started,
                           reference=None if reference is None else Path(reference))
    return "skipped (results exist for this model, set and code version)" if folder is None else str(folder)
