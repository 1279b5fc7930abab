"""The analyses of what a reward does to a policy, as flows (a story of named tasks each):

- rewards: candidates (a file, or a split of the warehouse) -> each model's reward, a task per model ->
  π_ref's log-probabilities -> one run of the lake (rewards/);
- tilt: a rewards run -> the reward of a model or a registered combination -> the tilted policy for every
  β and best-of-n for every n, per prompt -> the lake (analysis=tilt/) -> the reward–KL frontier's picture;
- tradeoff: prompts -> samples of the aligned model, a task per sampling setting (threads: one after
  another; dask: spread over the cluster) -> their log-prior and reward -> a corpus per setting -> the lake
  (analysis=tradeoff/) -> the picture; or, with --toy, the paper's exact toy experiment.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.nightly import check_task_runner, make_task_runner
from prefpipe.config import TiltConfig, TradeoffConfig
from prefpipe.errors import InputError
from prefpipe.rewards import combination_rewards, read_rewards
from prefpipe.settings import Settings
from prefpipe.tables import compact, warehouse_responses
from tasks.analysis import (
    model_rewards,
    read_candidates,
    read_combo,
    read_models,
    read_prompts,
    reference_logprobs,
    sample_setting,
    score_samples,
    tilt_run,
    write_rewards,
    write_tilt,
    write_tradeoff,
)


@flow(name="rewards", log_prints=True)
def rewards_flow(model_ids: list[str], candidates: str | None = None, from_split: str | None = None,
                 reference_lm: str | None = None, settings: Settings | None = None, run_date: date | None = None
                 ) -> dict:
    """Score the candidates of a file (or of a warehouse split) with every model of MODEL_IDS."""
    settings = settings or Settings.from_env()
    if (candidates is None) == (from_split is None):
        raise InputError("give a candidates file or --from-split SPLIT (one of them)")
    if not model_ids:
        raise InputError("give at least one --model", field="--model")
    run_date = run_date or date.today()
    run_id = f"{run_date:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    found = read_candidates(settings, candidates, from_split)
    models = read_models(settings, list(model_ids))
    table = reference_logprobs(found, reference_lm)
    per_model = [model_rewards(found, model_id, *models[model_id]) for model_id in model_ids]
    source = candidates or f"warehouse:{from_split}"
    folder = write_rewards(settings, run_id, run_date, table, per_model, source)
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


@flow(name="tilt", log_prints=True)
def tilt_flow(config: TiltConfig | None = None, rewards: str | None = None, model: str | None = None,
              combo: str | None = None, settings: Settings | None = None, run_date: date | None = None) -> dict:
    """The tilted policy and best-of-n over the candidates of a rewards run (default: the newest), under
    the reward of MODEL or of the combination COMBO (the run's only model when neither is given)."""
    settings = settings or Settings.from_env()
    config = config or TiltConfig()
    if model is not None and combo is not None:
        raise InputError("give --model or --combo, not both")
    run = read_rewards(settings.rewards, rewards)
    tables = {}
    if combo is not None:
        combination = read_combo(settings, combo)
        outside = (_outside_references(settings, run, combination)
                   if combination.references in ("warehouse", "samples") else None)
        reward, tables["references"] = combination_rewards(combination, run, outside)
        reward_name = f"combination {combo} ({combination.transform} of {', '.join(combination.models)})"
    else:
        model = model or _only_model(run)
        if model not in run.rewards:
            raise InputError(f"the rewards run {run.run_id} has no rewards of this model (it has "
                             f"{', '.join(sorted(run.rewards))})", field="--model", file=model)
        reward, reward_name = run.rewards[model], f"model {model}"
    _, ref_source = run.log_ref()
    tables["prompts"], tables["frontier"] = tilt_run(run, reward, config, ref_source)
    run_date = run_date or date.today()
    run_id = f"{run_date:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    title = f"reward–KL frontier: {reward_name}, rewards run {run.run_id}, π_ref {ref_source}"
    folder = write_tilt(settings, run_id, run_date, tables, title)
    rows = tables["frontier"].to_pylist()
    create_table_artifact(key="tilt-frontier", table=[{k: _rounded(v) for k, v in r.items()} for r in rows],
                          description=f"{title} ({len(run.candidates)} candidates)")
    create_markdown_artifact(key="tilt-frontier-plot", markdown=f"The reward–KL frontier: `{folder / 'frontier.png'}`")
    print(f"tilt {run_id}: {reward_name} over {len(run.candidates)} candidates of "
          f"{len(set(run.prompt_ids().tolist()))} prompts (π_ref: {ref_source}); {folder / 'frontier.png'}")
    return {"run_id": run_id, "path": str(folder), "frontier": rows, "plot": str(folder / "frontier.png"),
            "title": title}


@flow(name="tradeoff", log_prints=True)
def tradeoff_flow(config: TradeoffConfig | None = None, *, toy: bool = False, aligned: str | None = None,
                  prior: str | None = None, model: str | None = None, implicit: bool = False,
                  prompts: str | None = None, evalset: str | None = None, from_split: str | None = None,
                  settings: Settings | None = None, run_date: date | None = None, task_runner: str = "threads",
                  dask_address: str | None = None) -> dict:
    """The probability–quality trade-off: the ALIGNED model sampled under every setting of CONFIG (an adaptor at
    a temperature) on the prompts of a file, an --evalset or a warehouse split, each sample scored by the PRIOR
    and by the reward of MODEL (or the implicit reward); a corpus per setting. Or the paper's TOY."""
    settings = settings or Settings.from_env()
    config = config or TradeoffConfig()
    run_date = run_date or date.today()
    run_id = f"{run_date:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    if toy:
        if any(v is not None for v in (aligned, prior, model, prompts, evalset, from_split)) or implicit:
            raise InputError("--toy takes no models and no prompts")
        return _toy(settings, run_id, run_date)
    room, reward, device = _check_tradeoff(settings, config, aligned, prior, model, implicit, prompts, evalset,
                                           from_split, task_runner, dask_address)
    found = read_prompts(settings, prompts, evalset, from_split, config.prompts)
    settings_list = config.settings
    print(f"tradeoff {run_id}: {len(settings_list)} settings x {len(found)} prompts x {config.samples} samples of "
          f"at most {config.max_new_tokens} tokens from {aligned} on {device}, seed {config.seed}, "
          f"{task_runner}{f' at {dask_address}' if dask_address else ''}")
    runner = (make_task_runner(task_runner, dask_address, len(settings_list)) if task_runner == "dask"
              else ThreadPoolTaskRunner(max_workers=1))  # one model, one setting at a time
    per_setting = tradeoff_samples.with_options(task_runner=runner)(str(aligned), found, config, room, device)
    source = f"model:{model}" if model else "implicit"
    samples = score_samples(per_setting, str(aligned), str(prior), room, reward, source, device)
    corpora = summarise(samples)
    title = (f"probability–quality trade-off: {Path(aligned).name} against the prior {Path(prior).name}, reward "
             f"{source}, {len(found)} prompts x {config.samples} samples")
    folder = write_tradeoff(settings, run_id, run_date, {"samples": samples, "corpora": corpora}, title)
    rows = corpora.to_pylist()
    columns = ("setting", "samples", "mean_log_prior", "mean_reward", "mean_log_aligned", "mean_tokens",
               "string_spearman", "string_pearson")
    create_table_artifact(key="tradeoff-corpora", table=[{k: _rounded(r[k]) for k in columns} for r in rows],
                          description=f"{title}; corpus level ρ = {_rounded(rows[0]['corpus_spearman'])}, "
                                      f"r = {_rounded(rows[0]['corpus_pearson'])}")
    create_markdown_artifact(key="tradeoff-plot", markdown=f"The trade-off's picture: `{folder / 'tradeoff.png'}`")
    print(f"tradeoff {run_id}: {samples.num_rows} samples in {len(rows)} corpora; corpus level ρ = "
          f"{rows[0]['corpus_spearman']:.3f}, r = {rows[0]['corpus_pearson']:.3f}; {folder / 'tradeoff.png'}")
    return {"run_id": run_id, "path": str(folder), "corpora": rows, "plot": str(folder / "tradeoff.png"),
            "title": title}


@flow(name="tradeoff-samples", log_prints=True)
def tradeoff_samples(aligned: str, prompts: list, config: TradeoffConfig, room: int, device: str) -> list:
    """A task per sampling setting on this flow's task runner; the samples in the settings' order."""
    futures = [sample_setting.submit(aligned, prompts, setting, config, room, device) for setting in config.settings]
    return [future.result() for future in futures]


@task(cache_policy=NO_CACHE)
def summarise(samples):
    from prefpipe.tradeoff import corpora_table

    return corpora_table(samples)


@task(cache_policy=NO_CACHE, task_run_name="the toy experiment")
def run_toy():
    from prefpipe.tradeoff import toy, toy_tables

    return toy_tables(toy())


def _toy(settings: Settings, run_id: str, run_date: date) -> dict:
    from prefpipe.tradeoff import PAPER

    tables = run_toy()
    figures = {name: tables["corpora"][name][0].as_py() for name in PAPER}
    title = "probability–quality trade-off: the toy of Tan et al. (2024), 1,000 outcomes, typical corpora resampled"
    folder = write_tradeoff(settings, run_id, run_date, tables, title)
    rows = [{"figure": name, "ours": _rounded(figures[name]), "paper": PAPER[name]} for name in PAPER]
    create_table_artifact(key="tradeoff-toy", table=rows, description=title)
    for row in rows:
        print(f"{row['figure']}: {row['ours']} (paper: {row['paper']})")
    return {"run_id": run_id, "path": str(folder), "figures": figures, "paper": PAPER,
            "plot": str(folder / "tradeoff.png"), "title": title}


def _check_tradeoff(settings: Settings, config: TradeoffConfig, aligned, prior, model, implicit, prompts, evalset,
                    from_split, task_runner, dask_address) -> tuple[int, tuple | None, str]:
    """Every input checked before anything runs: (prompt room, the reward model's folders or None, device)."""
    from prefpipe.names import check_name
    from prefpipe.sampling import check_models, resolve_device

    if aligned is None or prior is None:
        raise InputError("give --aligned PATH and --prior PATH (local causal-LM folders), or --toy")
    if (model is None) == (not implicit):
        raise InputError("give --model RM_ID (a registered reward model) or --implicit (one of them)")
    if sum(s is not None for s in (prompts, evalset, from_split)) != 1:
        raise InputError("give a prompts file, --evalset NAME or --from-split SPLIT (one of them)")
    if prompts is not None and not Path(prompts).is_file():
        raise InputError("no such file", file=prompts)
    check_task_runner(task_runner, dask_address)
    device = resolve_device(config.device)
    room = check_models(aligned, prior, config.max_new_tokens)
    if model is None:
        return room, None, device
    check_name(model, "--model")
    return room, read_models(settings, [model])[model], device


def _rounded(value):
    return round(value, 4) if isinstance(value, float) else value


def _only_model(run) -> str:
    if len(run.rewards) != 1:
        raise InputError(f"the rewards run {run.run_id} has rewards of {', '.join(sorted(run.rewards))}: choose one "
                         "with --model, or a combination with --combo", field="--model")
    return next(iter(run.rewards))


def _outside_references(settings: Settings, run, combination) -> dict:
    """Each model's rewards of the references from outside the run (for a combination's r_ref): the
    warehouse's responses to the run's prompts, or the reference LM's samples of them."""
    import json

    from prefpipe.evaluation import score_items, scorer
    from prefpipe.lake import samples_cache
    from prefpipe.registry import model_folders
    from prefpipe.sampling import reference_samples
    from prefpipe.warehouse import Warehouse

    prompts = {pid: json.loads(p) for pid, p in zip(run.candidates["prompt_id"].to_pylist(),
                                                    run.candidates["prompt"].to_pylist(), strict=True)}
    if combination.references == "samples":
        keyed = reference_samples(combination.reference_lm, prompts, combination.samples, seed=combination.seed,
                                  cache=samples_cache(settings.results))
    else:
        by_text = {compact(p): pid for pid, p in prompts.items()}
        found = warehouse_responses(settings.tables, list(prompts.values()))
        keyed = [(by_text[compact(p)], text) for p, text in found]
    items = [(prompts[pid], text) for pid, text in keyed]
    with Warehouse.open(settings) as wh:
        folders = model_folders(wh, list(combination.models))
    return {m: ([pid for pid, _ in keyed], score_items(items, scorer(*folders[m]))) for m in combination.models}
