"""Prefect tasks of the analyses: read candidates, score them, tilt the policy, write the lake."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefpipe import candidates, registry, rewards
from prefpipe.config import Combination, TiltConfig
from prefpipe.frontier import plot_frontier, tilt_tables
from prefpipe.lake import write_partition
from prefpipe.settings import Settings
from prefpipe.warehouse import Warehouse
from tasks import retry_unless_input_error


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_input_error, cache_policy=NO_CACHE)
def read_candidates(settings: Settings, path: str | None, split: str | None) -> list[candidates.Candidate]:
    """The candidates of a file, or of a split of the warehouse (closed again at once)."""
    if path is not None:
        return candidates.read_candidates(path)
    with Warehouse.open(settings) as wh:
        return candidates.split_candidates(wh, split)


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_input_error, cache_policy=NO_CACHE)
def read_models(settings: Settings, model_ids: list[str]) -> dict[str, tuple[Path, Path | None]]:
    with Warehouse.open(settings) as wh:
        return registry.model_folders(wh, model_ids)


@task(cache_policy=NO_CACHE, task_run_name="rewards of {model_id}")
def model_rewards(found: list[candidates.Candidate], model_id: str, folder: Path, reference: Path | None):
    return rewards.model_rewards(found, model_id, folder, reference)


@task(cache_policy=NO_CACHE, task_run_name="reference log-probabilities")
def reference_logprobs(found: list[candidates.Candidate], reference_lm: str | None):
    return rewards.with_reference(found, None if reference_lm is None else Path(reference_lm))


@task(cache_policy=NO_CACHE)
def write_rewards(settings: Settings, run_id: str, run_date: date, table, per_model: list, source: str) -> Path:
    import pyarrow as pa

    return rewards.write_rewards(settings.rewards, run_id, run_date, table, pa.concat_tables(per_model), source)


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_input_error, cache_policy=NO_CACHE)
def read_combo(settings: Settings, name: str) -> Combination:
    with Warehouse.open(settings) as wh:
        found = registry.combos(wh, name)
    if not found:
        from prefpipe.errors import InputError

        raise InputError("no such combination (see `prefpipe combos`)", field="--combo", file=name)
    return found[0]


@task(cache_policy=NO_CACHE)
def tilt_run(run: rewards.RewardRun, reward, config: TiltConfig, ref_source: str):
    log_ref, _ = run.log_ref()
    return tilt_tables(run.prompt_ids(), reward, log_ref, config, ref_source)


@task(cache_policy=NO_CACHE)
def write_tilt(settings: Settings, run_id: str, run_date: date, tables: dict, title: str) -> Path:
    """analysis=tilt/run_date=/run_id=/: the tables and the frontier's picture, whole or not at all."""
    return write_partition(settings.analysis, f"analysis=tilt/run_date={run_date.isoformat()}/run_id={run_id}",
                           tables, also=lambda staging: plot_frontier(tables["frontier"], staging / "frontier.png",
                                                                      title))
