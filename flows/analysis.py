"""The analyses of what a reward does to a policy, as flows (a story of named tasks each):

- rewards: candidates (a file, or a split of the warehouse) -> each model's reward, a task per model ->
  π_ref's log-probabilities -> one run of the lake (rewards/);
- tilt: a rewards run -> the reward of a model or a registered combination -> the tilted policy for every
  β and best-of-n for every n, per prompt -> the lake (analysis=tilt/) -> the reward–KL frontier's picture.
"""

from __future__ import annotations

import uuid
from datetime import date

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from prefpipe.config import TiltConfig
from prefpipe.errors import InputError
from prefpipe.rewards import combination_rewards, read_rewards
from prefpipe.settings import Settings
from prefpipe.tables import compact, warehouse_responses
from tasks.analysis import (
    model_rewards,
    read_candidates,
    read_combo,
    read_models,
    reference_logprobs,
    tilt_run,
    write_rewards,
    write_tilt,
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
        outside = _warehouse_references(settings, run, combination) if combination.references == "warehouse" else None
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
    create_table_artifact(key="tilt-frontier", table=[{k: (round(v, 4) if isinstance(v, float) else v)
                                                       for k, v in r.items()} for r in rows],
                          description=f"{title} ({len(run.candidates)} candidates)")
    create_markdown_artifact(key="tilt-frontier-plot", markdown=f"The reward–KL frontier: `{folder / 'frontier.png'}`")
    print(f"tilt {run_id}: {reward_name} over {len(run.candidates)} candidates of "
          f"{len(set(run.prompt_ids().tolist()))} prompts (π_ref: {ref_source}); {folder / 'frontier.png'}")
    return {"run_id": run_id, "path": str(folder), "frontier": rows, "plot": str(folder / "frontier.png"),
            "title": title}


def _only_model(run) -> str:
    if len(run.rewards) != 1:
        raise InputError(f"the rewards run {run.run_id} has rewards of {', '.join(sorted(run.rewards))}: choose one "
                         "with --model, or a combination with --combo", field="--model")
    return next(iter(run.rewards))


def _warehouse_references(settings: Settings, run, combination) -> dict:
    """Each model's rewards of the warehouse's responses to the run's prompts (for a combination's r_ref)."""
    import json

    from prefpipe.evaluation import score_items, scorer
    from prefpipe.registry import model_folders
    from prefpipe.warehouse import Warehouse

    prompts = {pid: json.loads(p) for pid, p in zip(run.candidates["prompt_id"].to_pylist(),
                                                    run.candidates["prompt"].to_pylist(), strict=True)}
    by_text = {compact(p): pid for pid, p in prompts.items()}
    items = warehouse_responses(settings.tables, list(prompts.values()))
    with Warehouse.open(settings) as wh:
        folders = model_folders(wh, list(combination.models))
    return {m: ([by_text[compact(p)] for p, _ in items], score_items(items, scorer(*folders[m])))
            for m in combination.models}
