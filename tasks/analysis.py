"""Prefect tasks of the analyses: read candidates, score them, tilt the policy; read prompts, sample under
each setting, score the samples; write the lake."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from prefpipe import candidates, registry, rewards, sampling
from prefpipe.adaptors import Setting
from prefpipe.config import Combination, TiltConfig, TradeoffConfig
from prefpipe.errors import InputError
from prefpipe.evalsets import read_evalset
from prefpipe.lake import TILT, TRADEOFF, samples_cache, write_partition
from prefpipe.scoring import score_items, scorer
from prefpipe.settings import Settings
from prefpipe.tables import prompt_json, warehouse_responses
from prefpipe.tilt_tables import plot_frontier, tilt_tables
from prefpipe.tradeoff import corpora_table, plot_tradeoff
from prefpipe.tradeoff_toy import PAPER, toy, toy_tables
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
    return rewards.write_rewards(settings.rewards, run_id, run_date, table, pa.concat_tables(per_model), source)


@task(cache_policy=NO_CACHE, task_run_name="reward of a model")
def model_reward(run: rewards.RewardRun, model: str | None) -> tuple[np.ndarray, str, dict]:
    """The reward of MODEL (default: the run's only model) over the run's candidates: (reward, its name, {})."""
    if model is None:
        if len(run.rewards) != 1:
            raise InputError(f"the rewards run {run.run_id} has rewards of {', '.join(sorted(run.rewards))}: choose "
                             "one with --model, or a combination with --combo", field="--model")
        model = next(iter(run.rewards))
    if model not in run.rewards:
        raise InputError(f"the rewards run {run.run_id} has no rewards of this model (it has "
                         f"{', '.join(sorted(run.rewards))})", field="--model", file=model)
    return run.rewards[model], f"model {model}", {}


@task(cache_policy=NO_CACHE, task_run_name="reward of combination {name}")
def combo_reward(settings: Settings, run: rewards.RewardRun, name: str) -> tuple[np.ndarray, str, dict]:
    """The reward of the registered combination NAME over the run's candidates: (reward, its name,
    {"references": its r_ref per prompt and model})."""
    with Warehouse.open(settings) as wh:
        found = registry.combos(wh, name)
        combo = found[0] if found else None
        folders = registry.model_folders(wh, list(combo.models)) if combo else {}
    if combo is None:
        raise InputError("no such combination (see `prefpipe combos`)", field="--combo", file=name)
    outside = (outside_references(settings, run, combo, folders) if combo.references in ("warehouse", "samples")
               else None)
    reward, references = rewards.combination_rewards(combo, run, outside)
    return reward, f"combination {name} ({combo.transform} of {', '.join(combo.models)})", {"references": references}


def outside_references(settings: Settings, run: rewards.RewardRun, combo: Combination,
                       folders: dict[str, tuple[Path, Path | None]]) -> dict:
    """Each model's rewards of the references from outside the run (for a combination's r_ref): the
    warehouse's responses to the run's prompts, or the reference LM's samples of them."""
    prompts = {pid: json.loads(p) for pid, p in zip(run.candidates["prompt_id"].to_pylist(),
                                                    run.candidates["prompt"].to_pylist(), strict=True)}
    if combo.references == "samples":
        keyed = sampling.reference_samples(combo.reference_lm, prompts, combo.samples, seed=combo.seed,
                                           cache=samples_cache(settings.results))
    else:
        by_text = {prompt_json(p): pid for pid, p in prompts.items()}
        keyed = [(by_text[prompt_json(p)], text) for p, text in warehouse_responses(settings.tables,
                                                                                     list(prompts.values()))]
    items = [(prompts[pid], text) for pid, text in keyed]
    return {m: ([pid for pid, _ in keyed], score_items(items, scorer(*folders[m]))) for m in combo.models}


@task(cache_policy=NO_CACHE)
def tilt_run(run: rewards.RewardRun, reward, config: TiltConfig, ref_source: str):
    log_ref, _ = run.log_ref()
    return tilt_tables(run.prompt_ids(), reward, log_ref, config, ref_source)


@task(cache_policy=NO_CACHE)
def write_tilt(settings: Settings, run_id: str, run_date: date, tables: dict, title: str) -> Path:
    """analysis=tilt/run_date=/run_id=/: the tables and the frontier's picture, whole or not at all."""
    return write_partition(settings.analysis, TILT.partition(run_date=run_date, run_id=run_id), tables,
                           also=lambda staging: plot_frontier(tables["frontier"], staging / TILT.picture, title))


@task(cache_policy=NO_CACHE)
def publish_rewards(run_id: str, folder: Path, found: list[candidates.Candidate], model_ids: list[str], source: str,
                    reference_lm: str | None) -> dict:
    """What a rewards run holds, in the log and as an artifact; what the flow returns."""
    prompts = len({c.prompt_id for c in found})
    ref_source = "uniform" if reference_lm is None and all(c.ref_logprob is None for c in found) else (
        f"lm:{reference_lm}" if reference_lm else "file")
    uniform = " (uniform over each prompt's candidates)" if ref_source == "uniform" else ""
    line = (f"rewards {run_id}: {len(found)} candidates of {prompts} prompts from {source}, scored by "
            f"{', '.join(model_ids)}; π_ref: {ref_source}{uniform}")
    print(line)
    create_markdown_artifact(key="rewards", markdown=f"{line}\n\n`{folder}`")
    return {"run_id": run_id, "path": str(folder), "candidates": len(found), "prompts": prompts,
            "ref_source": ref_source}


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
                found = [(candidates.stable_id("prompt", e.prompt), e.prompt)
                         for e in read_evalset(versions[0]["path"], versions[0]["format"])]
    distinct: dict = {}
    for prompt_id, prompt in found:
        distinct.setdefault(prompt_id, prompt)
    return list(distinct.items())[:count]


@task(cache_policy=NO_CACHE, task_run_name="sample {setting.name}")
def sample_setting(aligned: str, prompts: list, setting: Setting, config: TradeoffConfig, room: int, device: str):
    started = time.perf_counter()
    table = sampling.sample_table(aligned, prompts, setting, samples=config.samples,
                                  max_new_tokens=config.max_new_tokens, seed=config.seed, room=room, device=device)
    tokens = sum(table["tokens"].to_pylist())
    seconds = time.perf_counter() - started
    print(f"{setting.name}: {table.num_rows} samples, {tokens} tokens in {seconds:.1f} s "
          f"({tokens / seconds:.0f} tokens/s)")
    return table


@task(cache_policy=NO_CACHE, task_run_name="score the samples")
def score_samples(samples: list, aligned: str, prior: str, room: int, reward: tuple[Path, Path | None] | None,
                  reward_source: str, device: str):
    """Every sample's log-prior and reward (of the reward model at REWARD's folders, else implicit)."""
    reward_scorer = None if reward is None else scorer(*reward, device)
    return sampling.score_samples(pa.concat_tables(samples), aligned, prior, room, reward_scorer, reward_source, device)


@task(cache_policy=NO_CACHE)
def write_tradeoff(settings: Settings, run_id: str, run_date: date, tables: dict, title: str) -> Path:
    """analysis=tradeoff/run_date=/run_id=/: samples, corpora and the trade-off's picture, whole or not at all."""
    return write_partition(settings.analysis, TRADEOFF.partition(run_date=run_date, run_id=run_id), tables,
                           also=lambda staging: plot_tradeoff(tables["corpora"], staging / TRADEOFF.picture, title,
                                                              tables["samples"]))


@task(cache_policy=NO_CACHE)
def summarise_corpora(samples: pa.Table) -> pa.Table:
    return corpora_table(samples)


@task(cache_policy=NO_CACHE, task_run_name="the toy experiment")
def run_toy() -> dict[str, pa.Table]:
    return toy_tables(toy())


@task(cache_policy=NO_CACHE)
def publish_analysis(keys: tuple[str, str], run_id: str, picture: Path, title: str, table: pa.Table,
                     description: str, line: str) -> dict:
    """An analysis run's table and picture as Prefect artifacts (keys: the table's, the picture's), its line in
    the log; what the flow returns."""
    create_table_artifact(key=keys[0], table=[{k: _rounded(v) for k, v in r.items()} for r in table.to_pylist()],
                          description=description)
    create_markdown_artifact(key=keys[1], markdown=f"The picture: `{picture}`")
    print(f"{line}; {picture}")
    return {"run_id": run_id, "path": str(picture.parent), "plot": str(picture), "title": title}


@task(cache_policy=NO_CACHE)
def publish_toy(run_id: str, folder: Path, tables: dict[str, pa.Table], title: str) -> dict:
    """The toy's figures beside the paper's, as an artifact and in the log."""
    figures = {name: tables["corpora"][name][0].as_py() for name in PAPER}
    rows = [{"figure": name, "ours": _rounded(figures[name]), "paper": PAPER[name]} for name in PAPER]
    create_table_artifact(key="tradeoff-toy", table=rows, description=title)
    for row in rows:
        print(f"{row['figure']}: {row['ours']} (paper: {row['paper']})")
    return {"run_id": run_id, "path": str(folder), "figures": figures, "paper": PAPER,
            "plot": str(folder / "tradeoff.png"), "title": title}


def _rounded(value):
    return round(value, 4) if isinstance(value, float) else value
