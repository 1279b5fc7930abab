"""The registry commands of `prefpipe` (registered by prefpipe/cli.py): train a model, the model registry and
the evaluation sets. Thin faces over flows/train.py and prefpipe.registry; the defaults come from
prefpipe/config.py. Imports that cost seconds are made when a command runs (see prefpipe/cli.py)."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Annotated

import typer

from prefpipe.cli_options import EXCLUDE_OPTION, LakeOpt, WarehouseOpt, changing_warehouse, open_warehouse
from prefpipe.config import TrainConfig
from prefpipe.contamination import set_names
from prefpipe.errors import InputError, PrefpipeError
from prefpipe.migrate import migrate
from prefpipe.names import check_name
from prefpipe.prefect_server import prefect_session
from prefpipe.settings import Settings
from prefpipe.store import Bucket
from prefpipe.text import format_table

models_app = typer.Typer(help="The model registry: list (default), add, activate, deactivate, normalise.",
                         no_args_is_help=False)
evalset_app = typer.Typer(help="Evaluation sets: add, list.", no_args_is_help=True)


# -- training: the options are TrainConfig's fields ---------------------------------------------------------

def train(*, processes: int, name: str | None, resume: str | None, exclude_evalset: list[str] | None,
          warehouse: Path | None, **options) -> None:
    """Train a Bradley-Terry reward model on the training split, evaluate it and register it."""
    from flows.train import resume_folder, train_flow  # Prefect and torch

    settings = Settings.from_env(warehouse=warehouse)
    if name is not None:
        check_name(name)
    config = None
    if resume:
        resume_folder(settings, resume)  # a wrong name fails before Prefect starts
    else:
        config = TrainConfig(**options)
        with open_warehouse(settings) as wh:  # an unknown set fails before Prefect starts
            set_names(wh.con, exclude_evalset or [])
    with prefect_session(settings):
        result = train_flow(config, settings=settings, name=name, resume=resume, processes=processes,
                            exclude=exclude_evalset)
    typer.echo(f"\n{result['model_id']}: {result['path']}")


def config_options(config: type) -> list[inspect.Parameter]:
    """One option per field of a config dataclass, with the field's default and help (as TRL makes its
    command line from its config), so that each lives in one place."""
    hints = typing.get_type_hints(config)
    options = []
    for field in dataclasses.fields(config):
        flag = "--" + field.name.replace("_", "-")
        declared = f"{flag}/--no-{flag[2:]}" if hints[field.name] is bool else flag
        option = typer.Option(declared, help=field.metadata.get("help"))
        options.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default,
                                         annotation=Annotated[hints[field.name], option]))
    return options


OWN_TRAIN_OPTIONS = {
    "processes": (int, 1, typer.Option("--nproc", help="Data-parallel processes (torchrun).")),
    "name": (str | None, None, typer.Option(help="Model id (default: rm-LOSS-TIME)")),
    "resume": (str | None, None, typer.Option(help="Continue the run of this model id (or folder) from its last "
                                              "checkpoint; the other options are ignored.")),
    "exclude_evalset": (list[str] | None, None, EXCLUDE_OPTION),
    "warehouse": (Path | None, None, typer.Option(help="DuckDB file (default: $PREFPIPE_WAREHOUSE or "
                                                  "$PREFPIPE_HOME/warehouse.duckdb)"))}
train.__signature__ = inspect.Signature(config_options(TrainConfig) + [
    inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option])
    for key, (kind, default, option) in OWN_TRAIN_OPTIONS.items()])


# -- the model registry ---------------------------------------------------------------------------------------

@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, warehouse: WarehouseOpt = None) -> None:
    """List the model registry."""
    from prefpipe.registry import list_models  # torch, through the model checks

    if ctx.invoked_subcommand is not None:
        return
    settings, columns, rows = Settings.from_env(warehouse=warehouse), [], []
    if settings.warehouse.exists():  # listing makes no warehouse
        with open_warehouse(settings) as wh:
            columns, rows = list_models(wh)
    typer.echo(format_table(columns, rows) if rows else
               "(no models yet: run `prefpipe train` or `prefpipe models add`)")


@models_app.command("add")
def models_add(path: Annotated[Path, typer.Argument(help="A Hugging Face sequence-classification folder, a DPO "
                                                  "policy (a causal LM) with --reference, or a causal LM with a "
                                                  "chat template with --judge.")],
               name: Annotated[str, typer.Option(help="The model id.")],
               reference: Annotated[Path | None, typer.Option(help="The DPO policy's reference causal LM: PATH is "
                                                              "scored by Σ log π − Σ log π_ref over the response."
                                                              )] = None,
               judge: Annotated[bool, typer.Option("--judge", help="A generative judge: a causal LM prompted to "
                                                   "choose between two answers (RewardBench's prompts), in both "
                                                   "orders; on RewardBench 2 sets it rates each answer.")] = False,
               judge_template: Annotated[str | None, typer.Option(help="The judge's prompts: rewardbench (default: "
                                                                  "MT-Bench's pairwise judge, RewardBench 2's "
                                                                  "rating prompt).")] = None,
               judge_scoring: Annotated[str | None, typer.Option(help="logprob (default): the next-token "
                                                                 "log-probabilities of A and B (of the ratings), one "
                                                                 "forward pass, a continuous score; generate: greedy "
                                                                 "decoding, the verdict parsed.")] = None,
               max_new_tokens: Annotated[int | None, typer.Option(help="The most tokens a judge generates (generate "
                                                                  "scoring; default 512).")] = None,
               replace: Annotated[bool, typer.Option("--replace", help="Replace the model registered under this "
                                                     "id (and its training record).")] = False,
               publish: PublishOpt = False,
               warehouse: WarehouseOpt = None, lake: LakeOpt = None) -> None:
    """Register a model trained elsewhere (active for the nightly evaluation)."""
    from prefpipe.judges import JudgeSettings
    from prefpipe.published import publish_model
    from prefpipe.registry import add_model

    check_name(name)
    settings = _publishing(Settings.from_env(warehouse=warehouse, lake=lake), publish)
    options = {"--judge-template": ("template", judge_template), "--judge-scoring": ("scoring", judge_scoring),
               "--max-new-tokens": ("max_new_tokens", max_new_tokens)}
    given = {key: value for key, value in options.values() if value is not None}
    if given and not judge:
        flag = next(flag for flag, (_, value) in options.items() if value is not None)
        raise InputError("applies to a generative judge only: add --judge", field=flag)
    judging = JudgeSettings(**given) if judge else None
    with changing_warehouse(settings) as wh:
        add_model(wh, path, name, reference, judge=judging, replace=replace)
    kind = (f"DPO policy against {reference}" if reference else f"generative judge: {judging.template} template, "
            f"{judging.scoring}" + (f", at most {judging.max_new_tokens} new tokens" if judging.scoring == "generate"
                                    else "") if judging else "reward model")
    typer.echo(f"{name}: registered ({path}, {kind}), active")
    for folder in (path, reference) if publish else ():
        if folder is not None:
            typer.echo(f"published {folder} to {publish_model(settings.results, Path(folder))}")


def _publishing(settings: Settings, publish: bool) -> Settings:
    """SETTINGS, checked for --publish: a lake in a bucket that this user may write to."""
    if publish:
        if not isinstance(settings.results, Bucket):
            raise InputError("publishing needs a lake in a bucket (PREFPIPE_LAKE or --lake s3://...)",
                             field="--publish")
        settings.check_lake(write=True)
    return settings


PublishOpt = Annotated[bool, typer.Option("--publish", help="Upload it now to the lake's bucket, for workers that "
                                          "share no disk (the nightly does it otherwise).")]


@models_app.command("deactivate")
def models_deactivate(name: str, warehouse: WarehouseOpt = None) -> None:
    """Take a model out of the nightly evaluation."""
    _set_active(name, False, warehouse)


@models_app.command("activate")
def models_activate(name: str, warehouse: WarehouseOpt = None) -> None:
    """Put a model back into the nightly evaluation."""
    _set_active(name, True, warehouse)


def _set_active(name: str, active: bool, warehouse: Path | None) -> None:
    from prefpipe.registry import set_active

    with changing_warehouse(Settings.from_env(warehouse=warehouse)) as wh:
        set_active(wh, name, active)
    typer.echo(f"{name}: {'active' if active else 'inactive'}")


# -- evaluation sets ------------------------------------------------------------------------------------------

@evalset_app.command("add")
def evalset_add(path: Annotated[Path | None, typer.Argument(help="A RewardBench-format file (.jsonl, .json, "
                                                            ".parquet).")] = None,
                name: Annotated[str, typer.Option(help="The set's name; a changed file becomes a new version.")] = "",
                fmt: Annotated[str, typer.Option("--format", help="auto|rewardbench|rewardbench2")] = "auto",
                from_split: Annotated[str | None, typer.Option(help="Register the warehouse's curated pairs of "
                                                               "this split instead of a file.")] = None,
                publish: PublishOpt = False, warehouse: WarehouseOpt = None, lake: LakeOpt = None) -> None:
    """Register an evaluation set (or a new version of it)."""
    from prefpipe.published import publish_file
    from prefpipe.registry import register_evalset, register_split

    if (path is None) == (from_split is None):
        raise PrefpipeError("give a file or --from-split SPLIT (one of them)")
    check_name(name)
    settings = _publishing(Settings.from_env(warehouse=warehouse, lake=lake), publish)
    with changing_warehouse(settings) as wh:
        for message in migrate(wh, settings.dedup):  # the set is checked against clusters of today's settings
            typer.echo(message)
        row, new = (register_split(wh, settings.home, from_split, name) if from_split
                    else register_evalset(wh, settings.home, path, name, fmt))
    state = "registered" if new else "unchanged, already registered"
    typer.echo(f"{row['name']}: version {row['version'][:12]} {state}: {row['examples']} examples, {row['format']}, "
               f"subsets {', '.join(row['subsets'])}; {row['contaminated']} examples match the warehouse's prompts "
               "or responses")
    if publish:
        typer.echo(f"published to {publish_file(settings.results, Path(row['path']))}")


@evalset_app.command("list")
def evalset_list(warehouse: WarehouseOpt = None) -> None:
    """The latest version of every registered evaluation set."""
    from prefpipe.registry import latest_evalsets

    settings, rows = Settings.from_env(warehouse=warehouse), []
    if settings.warehouse.exists():
        with open_warehouse(settings) as wh:
            rows = latest_evalsets(wh)
    columns = ["name", "version", "format", "examples", "contaminated", "registered_at", "path"]
    typer.echo(format_table(columns, [tuple(r[c] if c != "version" else r[c][:12] for c in columns) for r in rows])
               if rows else "(no evaluation sets yet: run `prefpipe evalset add`)")
