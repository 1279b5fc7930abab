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

from datetime import date
from pathlib import Path

from prefect import flow

from prefpipe.config import TiltConfig, TradeoffConfig
from prefpipe.errors import InputError
from prefpipe.lake import new_run_id
from prefpipe.names import check_name
from prefpipe.rewards import read_rewards
from prefpipe.sampling import check_models, resolve_device
from prefpipe.settings import Settings
from tasks.analysis import (
    combo_reward,
    model_reward,
    model_rewards,
    publish_analysis,
    publish_rewards,
    publish_toy,
    read_candidates,
    read_models,
    read_prompts,
    reference_logprobs,
    run_toy,
    sample_setting,
    score_samples,
    summarise_corpora,
    tilt_run,
    write_rewards,
    write_tilt,
    write_tradeoff,
)
from tasks.runners import check_task_runner, make_task_runner

CORPUS_COLUMNS = ("setting", "samples", "mean_log_prior", "mean_reward", "mean_log_aligned", "mean_tokens",
                  "string_spearman", "string_pearson")


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
    run_id = new_run_id(run_date)
    found = read_candidates(settings, candidates, from_split)
    models = read_models(settings, list(model_ids))
    table = reference_logprobs(found, reference_lm)
    per_model = [model_rewards(found, model_id, *models[model_id]) for model_id in model_ids]
    source = candidates or f"warehouse:{from_split}"
    folder = write_rewards(settings, run_id, run_date, table, per_model, source)
    return publish_rewards(run_id, folder, found, model_ids, source, reference_lm)


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
    reward, reward_name, tables = (combo_reward(settings, run, combo) if combo is not None
                                   else model_reward(run, model))
    _, ref_source = run.log_ref()
    tables["prompts"], tables["frontier"] = tilt_run(run, reward, config, ref_source)
    run_date = run_date or date.today()
    run_id = new_run_id(run_date)
    title = f"reward–KL frontier: {reward_name}, rewards run {run.run_id}, π_ref {ref_source}"
    folder = write_tilt(settings, run_id, run_date, tables, title)
    prompts = len(set(run.prompt_ids().tolist()))
    return publish_analysis(("tilt-frontier", "tilt-frontier-plot"), run_id, folder / "frontier.png", title,
                            tables["frontier"], f"{title} ({len(run.candidates)} candidates)",
                            f"tilt {run_id}: {reward_name} over {len(run.candidates)} candidates of {prompts} prompts "
                            f"(π_ref: {ref_source})") | {"frontier": tables["frontier"].to_pylist()}


@flow(name="tradeoff", log_prints=True)
def tradeoff_flow(config: TradeoffConfig | None = None, *, toy: bool = False, aligned: str | None = None,
                  prior: str | None = None, model: str | None = None, implicit: bool = False,
                  prompts: str | None = None, evalset: str | None = None, from_split: str | None = None,
                  settings: Settings | None = None, run_date: date | None = None, task_runner: str | None = None,
                  dask_address: str | None = None) -> dict:
    """The probability–quality trade-off: the ALIGNED model sampled under every setting of CONFIG (an adaptor at
    a temperature) on the prompts of a file, an --evalset or a warehouse split, each sample scored by the PRIOR
    and by the reward of MODEL (or the implicit reward); a corpus per setting. Or the paper's TOY."""
    settings = settings or Settings.from_env()
    config = config or TradeoffConfig()
    task_runner = task_runner or settings.task_runner
    run_date = run_date or date.today()
    run_id = new_run_id(run_date)
    if toy:
        if any(v is not None for v in (aligned, prior, model, prompts, evalset, from_split)) or implicit:
            raise InputError("--toy takes no models and no prompts")
        tables = run_toy()
        title = ("probability–quality trade-off: the toy of Tan et al. (2024), 1,000 outcomes, typical corpora "
                 "resampled")
        return publish_toy(run_id, write_tradeoff(settings, run_id, run_date, tables, title), tables, title)
    room, reward, device = _check_tradeoff(settings, config, aligned, prior, model, implicit, prompts, evalset,
                                           from_split, task_runner, dask_address)
    found = read_prompts(settings, prompts, evalset, from_split, config.prompts)
    print(f"tradeoff {run_id}: {len(config.settings)} settings x {len(found)} prompts x {config.samples} samples of "
          f"at most {config.max_new_tokens} tokens from {aligned} on {device}, seed {config.seed}, "
          f"{task_runner}{f' at {dask_address}' if dask_address else ''}")
    runner = make_task_runner(task_runner, dask_address, len(config.settings), threads=1)  # one model, one setting
    per_setting = tradeoff_samples.with_options(task_runner=runner)(str(aligned), found, config, room, device)
    source = f"model:{model}" if model else "implicit"
    samples = score_samples(per_setting, str(aligned), str(prior), room, reward, source, device)
    corpora = summarise_corpora(samples)
    title = (f"probability–quality trade-off: {Path(aligned).name} against the prior {Path(prior).name}, reward "
             f"{source}, {len(found)} prompts x {config.samples} samples")
    folder = write_tradeoff(settings, run_id, run_date, {"samples": samples, "corpora": corpora}, title)
    first = corpora.slice(0, 1).to_pylist()[0]
    corpus = f"corpus level ρ = {first['corpus_spearman']:.3f}, r = {first['corpus_pearson']:.3f}"
    return publish_analysis(("tradeoff-corpora", "tradeoff-plot"), run_id, folder / "tradeoff.png", title,
                            corpora.select(list(CORPUS_COLUMNS)), f"{title}; {corpus}",
                            f"tradeoff {run_id}: {samples.num_rows} samples in {corpora.num_rows} corpora; {corpus}"
                            ) | {"corpora": corpora.to_pylist()}


@flow(name="tradeoff-samples", log_prints=True)
def tradeoff_samples(aligned: str, prompts: list, config: TradeoffConfig, room: int, device: str) -> list:
    """A task per sampling setting on this flow's task runner; the samples in the settings' order."""
    futures = [sample_setting.submit(aligned, prompts, setting, config, room, device) for setting in config.settings]
    return [future.result() for future in futures]


def _check_tradeoff(settings: Settings, config: TradeoffConfig, aligned, prior, model, implicit, prompts, evalset,
                    from_split, task_runner, dask_address) -> tuple[int, tuple | None, str]:
    """Every input checked before anything runs: (prompt room, the reward model's folders or None, device)."""
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
