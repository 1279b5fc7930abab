"""Prefect tasks of the analyses: read candidates, score them, tilt the policy; read prompts, sample under
each setting, score the samples; write the lake."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefpipe import candidates, registry, rewards
from prefpipe.adaptors import Setting
from prefpipe.config import Combination, TiltConfig, TradeoffConfig
from prefpipe.errors import InputError
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


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_unless_input_error, cache_policy=NO_CACHE)
def read_prompts(settings: Settings, path: str | None, evalset: str | None, split: str | None, count: int
                 ) -> list[tuple[str, str | list[dict]]]:
    """The first COUNT distinct prompts, as (prompt_id, prompt), of a file, a registered evaluation set's
    latest version, or a split of the warehouse."""
    if path is not None:
        found = candidates.read_prompts(path)
    else:
        with Warehouse.open(settings) as wh:
            if split is not None:
                found = [(c.prompt_id, c.prompt) for c in candidates.split_candidates(wh, split)]
            else:
                versions = registry.latest_evalsets(wh, evalset)
                if not versions:
                    raise InputError("no such evaluation set (see `prefpipe evalset list`)", file=evalset,
                                     field="--evalset")
                from prefpipe.evalsets import read_evalset

                found = [(candidates.stable_id("prompt", e.prompt), e.prompt)
                         for e in read_evalset(versions[0]["path"], versions[0]["format"])]
    distinct: dict = {}
    for prompt_id, prompt in found:
        distinct.setdefault(prompt_id, prompt)
    return list(distinct.items())[:count]


@task(cache_policy=NO_CACHE, task_run_name="sample {setting.name}")
def sample_setting(aligned: str, prompts: list, setting: Setting, config: TradeoffConfig, room: int, device: str):
    import time

    from prefpipe.sampling import sample_table

    started = time.perf_counter()
    table = sample_table(aligned, prompts, setting, samples=config.samples, max_new_tokens=config.max_new_tokens,
                         seed=config.seed, room=room, device=device)
    tokens = sum(table["tokens"].to_pylist())
    seconds = time.perf_counter() - started
    print(f"{setting.name}: {table.num_rows} samples, {tokens} tokens in {seconds:.1f} s "
          f"({tokens / seconds:.0f} tokens/s)")
    return table


@task(cache_policy=NO_CACHE, task_run_name="score the samples")
def score_samples(samples: list, aligned: str, prior: str, room: int, reward: tuple[Path, Path | None] | None,
                  reward_source: str, device: str):
    """Every sample's log-prior and reward (of the reward model at REWARD's folders, else implicit)."""
    import pyarrow as pa

    from prefpipe.evaluation import scorer
    from prefpipe.sampling import score_samples as scored

    return scored(pa.concat_tables(samples), aligned, prior, room, None if reward is None else scorer(*reward, device),
                  reward_source, device)


@task(cache_policy=NO_CACHE)
def write_tradeoff(settings: Settings, run_id: str, run_date: date, tables: dict, title: str) -> Path:
    """analysis=tradeoff/run_date=/run_id=/: samples, corpora and the trade-off's picture, whole or not at all."""
    from prefpipe.tradeoff import plot_tradeoff

    return write_partition(settings.analysis, f"analysis=tradeoff/run_date={run_date.isoformat()}/run_id={run_id}",
                           tables, also=lambda staging: plot_tradeoff(tables["corpora"], staging / "tradeoff.png",
                                                                      title, tables["samples"]))
