"""The analysis commands of `prefpipe` (registered by prefpipe/cli.py): rewards of candidates, registered
combinations, normalised models, and the reward-tilt analysis. Thin faces over flows/analysis.py and the
library; the defaults come from prefpipe/config.py. Imports that cost seconds are made when a command runs
(see prefpipe/cli.py)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated

import pyarrow.parquet as pq
import typer

from prefpipe.cli_options import DEFAULTS, LakeOpt, changing_warehouse, open_warehouse
from prefpipe.config import LSC_QUANTILE, Combination, TiltConfig, TradeoffConfig
from prefpipe.errors import InputError
from prefpipe.lake import REWARDS
from prefpipe.lake_runs import find_runs, in_written_order
from prefpipe.names import check_name
from prefpipe.prefect_server import prefect_session
from prefpipe.settings import Settings
from prefpipe.text import format_table

rewards_app = typer.Typer(help="Rewards of candidates: list the runs (default), score.", no_args_is_help=False)
combos_app = typer.Typer(help="Combinations of reward models: list (default), add.", no_args_is_help=False)
analyse_app = typer.Typer(help="What a reward does to a policy: tilt, tradeoff.", no_args_is_help=True)
DEFAULT_COMBO = Combination("x", ("m",))
COMBO_HELP = {f.name: f.metadata.get("help", "") for f in fields(Combination)}
DEFAULT_TILT = TiltConfig()
DEFAULT_TRADEOFF = TradeoffConfig()
TRADEOFF_HELP = {f.name: f.metadata.get("help", "") for f in fields(TradeoffConfig)}


@rewards_app.callback(invoke_without_command=True)
def rewards(ctx: typer.Context, lake: LakeOpt = None) -> None:
    """List the rewards runs, newest last."""
    if ctx.invoked_subcommand is not None:
        return
    settings = Settings.from_env(lake=lake)
    settings.check_lake(write=False)
    runs = find_runs(settings.rewards, (REWARDS,))[0][REWARDS.name]
    rows = []
    for run in in_written_order(runs, REWARDS):
        candidates = pq.read_table(run / "candidates.parquet", columns=["prompt_id", "source", "ref_source"])
        models = sorted(set(pq.read_table(run / "rewards.parquet", columns=["model_id"])["model_id"].to_pylist()))
        prompts = len(set(candidates["prompt_id"].to_pylist()))
        rows.append((run.name.removeprefix("run_id="), candidates.num_rows, prompts, ", ".join(models),
                     candidates["source"][0].as_py(), candidates["ref_source"][0].as_py()))
    typer.echo(format_table(["run_id", "candidates", "prompts", "models", "source", "ref_source"], rows) if rows
               else "(no rewards yet: run `prefpipe rewards score`)")


@rewards_app.command("score")
def rewards_score(candidates: Annotated[Path | None, typer.Argument(help="A candidates file (JSON Lines or Parquet): "
                                                                   "prompt, response, and optionally prompt_id, "
                                                                   "response_id, ref_logprob, reference.")] = None,
                  from_split: Annotated[str | None, typer.Option(help="The candidates of a warehouse split instead: "
                                                                 "every comparable response of its annotations.")
                                        ] = None,
                  model: Annotated[list[str] | None, typer.Option("--model", help="A registered model (repeat).")
                                   ] = None,
                  reference_lm: Annotated[Path | None, typer.Option(help="A local causal LM: π_ref's log-probability "
                                                                    "of each response (default: the file's "
                                                                    "ref_logprob, else uniform)")] = None,
                  lake: LakeOpt = None) -> None:
    """Score candidates with registered models into a rewards run of the lake."""
    from flows.analysis import rewards_flow  # Prefect, torch and transformers

    for name in model or []:
        check_name(name, "--model")
    if candidates is not None and not candidates.is_file():
        raise InputError("no such file", file=candidates)
    settings = Settings.from_env(lake=lake)
    settings.check_lake(write=True)
    with prefect_session(settings):
        done = rewards_flow(list(model or []), None if candidates is None else str(candidates), from_split,
                            None if reference_lm is None else str(reference_lm), settings=settings)
    typer.echo(f"\nrewards run {done['run_id']}: {done['candidates']} candidates of {done['prompts']} prompts; "
               f"π_ref {done['ref_source']}\n{done['path']}")


@combos_app.callback(invoke_without_command=True)
def combos(ctx: typer.Context) -> None:
    """List the registered combinations."""
    from prefpipe.registry import combos as registered  # torch, through the model checks

    if ctx.invoked_subcommand is not None:
        return
    settings, found = Settings.from_env(), []
    if settings.warehouse.exists():
        with open_warehouse(settings) as wh:
            found = registered(wh)
    typer.echo(format_table(["name", "definition"], [(c.name, c.definition()) for c in found]) if found
               else "(no combinations yet: run `prefpipe combos add`)")


@combos_app.command("add")
def combos_add(name: Annotated[str, typer.Argument(help="The combination's name (scored under it, like a model).")],
               model: Annotated[list[str], typer.Option("--model", help="A registered model (repeat).")],
               weight: Annotated[list[float] | None, typer.Option("--weight", help="One per model, in order "
                                                                  "(default: 1 each).")] = None,
               transform: Annotated[str, typer.Option(help=COMBO_HELP["transform"])] = DEFAULT_COMBO.transform,
               references: Annotated[str, typer.Option(help=COMBO_HELP["references"])
                                     ] = DEFAULT_COMBO.references,
               quantile: Annotated[list[float] | None, typer.Option(
                   "--quantile", help=f"r_ref is this quantile of a prompt's reference rewards: one for every model, "
                   f"or one per model in order (default {LSC_QUANTILE}).")] = None,
               method: Annotated[str, typer.Option(help=COMBO_HELP["method"])] = DEFAULT_COMBO.method,
               min_references: Annotated[int, typer.Option(help=COMBO_HELP["min_references"])
                                         ] = DEFAULT_COMBO.min_references,
               too_few: Annotated[str, typer.Option(help=COMBO_HELP["too_few"])] = DEFAULT_COMBO.too_few,
               reference_lm: Annotated[Path | None, typer.Option(help=COMBO_HELP["reference_lm"])] = None,
               samples: Annotated[int, typer.Option(help=COMBO_HELP["samples"])] = DEFAULT_COMBO.samples,
               seed: Annotated[int, typer.Option(help=COMBO_HELP["seed"])] = DEFAULT_COMBO.seed,
               replace: Annotated[bool, typer.Option("--replace", help="Replace a combination of this name.")] = False,
               ) -> None:
    """Register a combination of reward models; the nightly evaluation scores it like a model."""
    from prefpipe.dpo import check_causal_lm  # torch and transformers
    from prefpipe.registry import add_combo

    if reference_lm is not None:
        check_causal_lm(reference_lm, "--reference-lm", "reference LMs")
    combo = Combination(name, tuple(model), tuple(weight or ()), transform, references, tuple(quantile or ()),
                        method, min_references, too_few, None if reference_lm is None else str(reference_lm.resolve()),
                        samples, seed)
    if not combo.and_of_properties:
        typer.echo("prefpipe: warning: --transform lsc with weights other than 1: Σ wᵢ·uᵢ is a weighted "
                   "log-probability, no longer the log-probability that every property is good (the paper's AND)")
    with changing_warehouse(Settings.from_env()) as wh:
        add_combo(wh, combo, replace=replace)
    typer.echo(f"{name}: registered, active: {combo.definition()}")


@analyse_app.command("tilt")
def analyse_tilt(rewards_run: Annotated[str | None, typer.Option("--rewards", help="A rewards run id (default: "
                                                                 "the newest).")] = None,
                 model: Annotated[str | None, typer.Option(help="The reward of this model (default: the run's "
                                                           "only one).")] = None,
                 combo: Annotated[str | None, typer.Option(help="Or of this registered combination.")] = None,
                 beta: Annotated[str, typer.Option(help="β of the tilted policies, comma-separated.")
                                 ] = ",".join(f"{b:g}" for b in DEFAULT_TILT.betas),
                 n: Annotated[str, typer.Option(help="n of best-of-n, comma-separated.")
                              ] = ",".join(map(str, DEFAULT_TILT.ns)),
                 lake: LakeOpt = None) -> None:
    """The tilted policy π_ref·exp(r/β) and best-of-n over each prompt's candidates, into the lake, with the
    reward–KL frontier's picture."""
    from flows.analysis import tilt_flow  # Prefect

    config = TiltConfig(_numbers(beta, float, "--beta"), _numbers(n, int, "--n"))
    settings = Settings.from_env(lake=lake)
    settings.check_lake(write=True)
    with prefect_session(settings):
        done = tilt_flow(config, rewards_run, model, combo, settings=settings)
    rows = [(r["kind"], r["beta"] if r["kind"] == "tilt" else r["n"], round(r["kl"], 4), round(r["expected_reward"], 4),
             None if r.get("win_rate") is None else round(r["win_rate"], 4)) for r in done["frontier"]]
    typer.echo(f"\n{done['title']}\n" + format_table(["kind", "beta or n", "kl", "expected_reward", "win_rate"], rows))
    typer.echo(f"\n{done['plot']}")


@analyse_app.command("tradeoff")
def analyse_tradeoff(
        prompts_file: Annotated[Path | None, typer.Argument(help="A prompts file (JSON Lines or Parquet: prompt, and "
                                                            "optionally prompt_id).")] = None,
        toy: Annotated[bool, typer.Option("--toy", help="The paper's exact toy experiment instead (no models).")
                       ] = False,
        aligned: Annotated[Path | None, typer.Option(help="The aligned model: a local causal-LM folder.")] = None,
        prior: Annotated[Path | None, typer.Option(help="The prior (reference) model: a local causal-LM folder "
                                                   "with the aligned model's tokenizer.")] = None,
        model: Annotated[str | None, typer.Option(help="The reward: a registered reward model.")] = None,
        implicit: Annotated[bool, typer.Option("--implicit", help="Or the implicit reward log p⁺ − log p.")] = False,
        evalset: Annotated[str | None, typer.Option(help="The prompts of a registered evaluation set instead.")
                           ] = None,
        from_split: Annotated[str | None, typer.Option(help="Or of a warehouse split.")] = None,
        prompts: Annotated[int, typer.Option(help=TRADEOFF_HELP["prompts"])] = DEFAULT_TRADEOFF.prompts,
        samples: Annotated[int, typer.Option(help=TRADEOFF_HELP["samples"])] = DEFAULT_TRADEOFF.samples,
        adaptor: Annotated[list[str] | None, typer.Option("--adaptor", help=TRADEOFF_HELP["adaptors"] + " Repeat "
                                                          f"(default: {' '.join(DEFAULT_TRADEOFF.adaptors)}).")
                           ] = None,
        temperature: Annotated[str, typer.Option(help="Temperatures τ, comma-separated, each with every adaptor.")
                               ] = ",".join(f"{t:g}" for t in DEFAULT_TRADEOFF.temperatures),
        max_new_tokens: Annotated[int, typer.Option(help=TRADEOFF_HELP["max_new_tokens"])
                                  ] = DEFAULT_TRADEOFF.max_new_tokens,
        seed: Annotated[int, typer.Option(help=TRADEOFF_HELP["seed"])] = DEFAULT_TRADEOFF.seed,
        device: Annotated[str, typer.Option(help=TRADEOFF_HELP["device"])] = DEFAULT_TRADEOFF.device,
        task_runner: Annotated[str, typer.Option(help="threads (one setting after another) | dask")
                               ] = DEFAULTS.task_runner,
        dask_address: Annotated[str | None, typer.Option(help="A Dask scheduler (default: a local cluster).")
                                ] = None,
        lake: LakeOpt = None) -> None:
    """The probability–quality trade-off of sampling adaptors (Tan et al., 2024): the aligned model sampled
    under every adaptor at every temperature, each corpus's mean reward against its mean log-prior; into the
    lake, with its picture. Or --toy: the paper's exact toy experiment."""
    from flows.analysis import tradeoff_flow  # Prefect, torch and transformers

    config = TradeoffConfig(tuple(adaptor or DEFAULT_TRADEOFF.adaptors), _numbers(temperature, float, "--temperature"),
                            prompts, samples, max_new_tokens, seed, device)
    settings = Settings.from_env(lake=lake)
    settings.check_lake(write=True)
    with prefect_session(settings):
        done = tradeoff_flow(config, settings=settings, toy=toy, aligned=_text(aligned), prior=_text(prior),
                             model=model, implicit=implicit, prompts=_text(prompts_file), evalset=evalset,
                             from_split=from_split, task_runner=task_runner, dask_address=dask_address)
    typer.echo(_tradeoff_lines(done, toy))


def _tradeoff_lines(done: dict, toy: bool) -> str:
    """What a trade-off run found: the toy's figures beside the paper's, or a row per corpus; then its picture."""
    if toy:
        rows = [(name, round(done["figures"][name], 4), paper) for name, paper in done["paper"].items()]
        return f"\n{done['title']}\n" + format_table(["figure", "ours", "paper"], rows) + f"\n\n{done['plot']}"
    columns = ["setting", "mean_log_prior", "mean_reward", "mean_log_aligned", "mean_tokens", "string_spearman"]
    rows = [tuple(round(r[c], 4) if isinstance(r[c], float) else r[c] for c in columns) for r in done["corpora"]]
    first = done["corpora"][0]
    return (f"\n{done['title']}\n" + format_table(columns, rows) + f"\ncorpus level: ρ = "
            f"{first['corpus_spearman']:.4f}, r = {first['corpus_pearson']:.4f}\n\n{done['plot']}")


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def normalise(model_id: Annotated[str, typer.Argument(help="A registered reward model.")],
              to: Annotated[str, typer.Option(help="The reference set: edits | evalset:NAME | split:NAME")],
              scale: Annotated[bool, typer.Option("--scale", help="Also divide by the reference set's std.")] = False,
              name: Annotated[str | None, typer.Option(help="The new model's id (default: ID-normalised)")] = None,
              ) -> None:
    """Register a copy of a reward model whose rewards have mean 0 on a reference set (InstructGPT §3.5)."""
    from prefpipe.normalise import normalise_model, reference_items  # torch and transformers
    from prefpipe.registry import check_free_name, model_record, register_normalised

    check_name(model_id, "ID")
    new = check_name(name or f"{model_id}-normalised")
    settings = Settings.from_env()
    with changing_warehouse(settings) as wh:
        source = model_record(wh, model_id)
        if source["kind"] != "classifier":
            raise InputError(f"a {'DPO policy' if source['kind'] == 'dpo' else source['kind']} has no score head to "
                             "normalise", file=model_id)
        check_free_name(wh.con, new, settings.models / new)  # before a model folder is written
        record = normalise_model(Path(source["path"]), settings.models / new, reference_items(wh, to), scale, to)
        register_normalised(wh, model_id, new, settings.models / new, record)
    scaled = f", × {record['scale']:.6g}" if scale else ""
    typer.echo(f"{new}: registered, active: ({model_id} + {record['bias']:.6g}){scaled}: mean 0 on {to} "
               f"({record['size']} responses)\n{settings.models / new}")


def _numbers(text: str, kind: type, field: str) -> tuple:
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"must be comma-separated {'whole ' if kind is int else ''}numbers, got {text!r}",
                         field=field) from None
