"""The `prefpipe` command: a thin face over the flows (flows/) and the library. Errors are one line on
stderr (exit 1); usage errors exit 2. Defaults come from Settings and TrainConfig, never from here."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import sys
import traceback
import typing
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

# Prefect's run log is the command's output; stderr holds the command's one-line error
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_STREAM", "ext://sys.stdout")

import typer

from flows.serve import prefect_session
from prefpipe.errors import InputError, PrefpipeError
from prefpipe.names import check_name
from prefpipe.settings import Settings, check_threshold
from prefpipe.text import format_records, format_table

app = typer.Typer(help="Curate human preference data and evaluate reward models.", add_completion=False,
                  no_args_is_help=True, pretty_exceptions_enable=False)
STATE = {"debug": False}
DEFAULTS = Settings()

WarehouseOpt = Annotated[Path | None, typer.Option("--warehouse", help="DuckDB file "
                         "(default: $PREFPIPE_WAREHOUSE or $PREFPIPE_HOME/warehouse.duckdb)")]
EXCLUDE_OPTION = typer.Option("--exclude-evalset", help="Leave out the annotations whose prompt or a response "
                              "matches this registered evaluation set (repeatable; `all`: every set).")
ExcludeOpt = Annotated[list[str] | None, EXCLUDE_OPTION]
ThresholdOpt = Annotated[float, typer.Option(help="A drop larger than this against the previous night fails the run.")]
TaskRunnerOpt = Annotated[str, typer.Option(help="threads (in this process) | dask (a Dask cluster, via prefect-dask)")]
DaskAddressOpt = Annotated[str | None, typer.Option(help="With --task-runner dask: the scheduler's address "
                                                    "(tcp://host:8786) (default: a local cluster)")]


def _quiet_expected_errors() -> None:
    """Prefect logs a failed flow or task with its traceback. A PrefpipeError is an expected failure that
    the command reports once, in one line: its log records keep their line and lose the traceback
    (--debug keeps it)."""
    make = logging.getLogRecordFactory()

    def record(*args, **kwargs) -> logging.LogRecord:
        made = make(*args, **kwargs)
        if made.exc_info and isinstance(made.exc_info[1], PrefpipeError) and not STATE["debug"]:
            made.exc_info = made.exc_text = None
        return made

    logging.setLogRecordFactory(record)


_quiet_expected_errors()


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    STATE["debug"] = debug


# -- data ------------------------------------------------------------------------------------------------

@app.command()
def ingest(paths: Annotated[list[Path], typer.Argument(help="Batch files or folders (each file one batch).")],
           warehouse: WarehouseOpt = None,
           fmt: Annotated[str, typer.Option("--format", help="auto|canonical|csv|parquet|hh-rlhf|oasst|pandalm|"
                                            "pairwise|ratings (auto: detected from the content)")] = "auto",
           max_quarantined: Annotated[float, typer.Option(
               "--max-quarantined", help="Fail a batch whose quarantined share is above this.")
           ] = DEFAULTS.max_quarantined_share) -> None:
    """Ingest annotation batches into the warehouse and build their pairs."""
    from flows.ingest import ingest_flow, summary_table
    from prefpipe.ingest import batch_files

    settings = Settings.from_env(warehouse=warehouse, max_quarantined_share=max_quarantined)
    files = batch_files(paths)  # fail on a missing file before starting Prefect
    with prefect_session(settings):
        summaries = ingest_flow([str(p) for p in files], settings=settings, fmt=fmt)
    typer.echo("\n" + summary_table(summaries))
    if any(s.status == "failed" for s in summaries):
        raise PrefpipeError("; ".join(s.message for s in summaries if s.status == "failed"))


@app.command()
def stats(warehouse: WarehouseOpt = None) -> None:
    """Print warehouse counts, per-batch counts, annotator agreement and near-duplicate clusters."""
    with _open_warehouse(warehouse) as wh:
        counts = wh.counts()
        typer.echo(format_table(list(counts), [tuple(counts.values())]))
        for title, columns, rows in wh.curation_views() + wh.cluster_views():
            typer.echo(f"\n{title}\n" + (format_table(columns, rows) if rows else "(none)"))


@app.command()
def export(out: Annotated[Path, typer.Argument(help="Output file: .jsonl or .parquet.")],
           split: Annotated[str, typer.Option(help="train|validation|test|all")] = "train",
           fmt: Annotated[str, typer.Option("--format", help="pairwise (prompt, chosen, rejected, margin: TRL) or "
                                            "rewardbench (id, prompt, chosen, rejected, subset: an evaluation set)"
                                            )] = "pairwise",
           exclude_evalset: ExcludeOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Write curated pairs for training or evaluating elsewhere (TRL RewardTrainer, RewardBench)."""
    from prefpipe.export import export_pairs

    with _open_warehouse(warehouse) as wh:
        rows = export_pairs(wh, out, None if split == "all" else split, layout=fmt, exclude=exclude_evalset)
        [(left_out,)] = wh.con.execute("SELECT count(DISTINCT annotation_seq) FROM excluded_annotations").fetchall()
    typer.echo(f"{out}: {rows} pairs ({split})"
               + (f"; left out {left_out} annotations that match {', '.join(exclude_evalset)}" if exclude_evalset
                  else ""))


# -- training: the options are TrainConfig's fields ---------------------------------------------------------

def train(*, processes: int, name: str | None, resume: str | None, exclude_evalset: list[str] | None,
          warehouse: Path | None, **options) -> None:
    """Train a Bradley-Terry reward model on the training split, evaluate it and register it."""
    from flows.train import resume_folder, train_flow
    from prefpipe.config import TrainConfig

    settings = Settings.from_env(warehouse=warehouse)
    if name is not None:
        check_name(name)
    config = None
    if resume:
        resume_folder(settings, resume)  # a wrong name fails before Prefect starts
    else:
        config = TrainConfig(**options)
        if exclude_evalset:  # an unknown set fails before Prefect starts
            from prefpipe.contamination import set_names

            with _open_warehouse(warehouse) as wh:
                set_names(wh.con, exclude_evalset)
        else:
            _require_warehouse(settings)
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


def _train_command() -> None:
    from prefpipe.config import TrainConfig

    own = {"processes": (int, 1, typer.Option("--nproc", help="Data-parallel processes (torchrun).")),
           "name": (str | None, None, typer.Option(help="Model id (default: rm-LOSS-TIME)")),
           "resume": (str | None, None, typer.Option(help="Continue the run of this model id (or folder) from its "
                                                     "last checkpoint; the other options are ignored.")),
           "exclude_evalset": (list[str] | None, None, EXCLUDE_OPTION),
           "warehouse": (Path | None, None, typer.Option(help="DuckDB file (default: $PREFPIPE_WAREHOUSE or "
                                                         "$PREFPIPE_HOME/warehouse.duckdb)"))}
    train.__signature__ = inspect.Signature(config_options(TrainConfig) + [
        inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option])
        for key, (kind, default, option) in own.items()])
    app.command()(train)


_train_command()


# -- the registry -------------------------------------------------------------------------------------------

models_app = typer.Typer(help="The model registry: list (default), add, activate, deactivate.",
                         no_args_is_help=False)
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, warehouse: WarehouseOpt = None) -> None:
    """List the model registry."""
    from prefpipe.registry import list_models

    if ctx.invoked_subcommand is not None:
        return
    columns, rows = [], []
    if Settings.from_env(warehouse=warehouse).warehouse.exists():  # listing makes no warehouse
        with _open_warehouse(warehouse) as wh:
            columns, rows = list_models(wh)
    typer.echo(format_table(columns, rows) if rows else
               "(no models yet: run `prefpipe train` or `prefpipe models add`)")


@models_app.command("add")
def models_add(path: Annotated[Path, typer.Argument(help="A Hugging Face sequence-classification folder, or a "
                                                  "DPO policy (a causal LM) with --reference.")],
               name: Annotated[str, typer.Option(help="The model id.")],
               reference: Annotated[Path | None, typer.Option(help="The DPO policy's reference causal LM: PATH is "
                                                              "scored by Σ log π − Σ log π_ref over the response."
                                                              )] = None,
               replace: Annotated[bool, typer.Option("--replace", help="Replace the model registered under this "
                                                     "id (and its training record).")] = False,
               warehouse: WarehouseOpt = None) -> None:
    """Register a model trained elsewhere (active for the nightly evaluation)."""
    from prefpipe.registry import add_model

    check_name(name)
    with _changing_warehouse(warehouse) as (wh, _):
        add_model(wh, path, name, reference, replace=replace)
    kind = f"DPO policy against {reference}" if reference else "reward model"
    typer.echo(f"{name}: registered ({path}, {kind}), active")


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

    with _changing_warehouse(warehouse) as (wh, _):
        set_active(wh, name, active)
    typer.echo(f"{name}: {'active' if active else 'inactive'}")


evalset_app = typer.Typer(help="Evaluation sets: add, list.", no_args_is_help=True)
app.add_typer(evalset_app, name="evalset")


@evalset_app.command("add")
def evalset_add(path: Annotated[Path | None, typer.Argument(help="A RewardBench-format file (.jsonl, .json, "
                                                            ".parquet).")] = None,
                name: Annotated[str, typer.Option(help="The set's name; a changed file becomes a new version.")] = "",
                fmt: Annotated[str, typer.Option("--format", help="auto|rewardbench|rewardbench2")] = "auto",
                from_split: Annotated[str | None, typer.Option(help="Register the warehouse's curated pairs of "
                                                               "this split instead of a file.")] = None,
                warehouse: WarehouseOpt = None) -> None:
    """Register an evaluation set (or a new version of it)."""
    from prefpipe.registry import register_evalset, register_split

    if (path is None) == (from_split is None):
        raise PrefpipeError("give a file or --from-split SPLIT (one of them)")
    check_name(name)
    with _changing_warehouse(warehouse) as (wh, settings):
        row, new = (register_split(wh, settings.home, from_split, name) if from_split
                    else register_evalset(wh, settings.home, path, name, fmt))
    state = "registered" if new else "unchanged, already registered"
    typer.echo(f"{row['name']}: version {row['version'][:12]} {state}: {row['examples']} examples, {row['format']}, "
               f"subsets {', '.join(row['subsets'])}; {row['contaminated']} examples match the warehouse's prompts "
               "or responses")


@evalset_app.command("list")
def evalset_list(warehouse: WarehouseOpt = None) -> None:
    """The latest version of every registered evaluation set."""
    from prefpipe.registry import latest_evalsets

    rows = []
    if Settings.from_env(warehouse=warehouse).warehouse.exists():
        with _open_warehouse(warehouse) as wh:
            rows = latest_evalsets(wh)
    columns = ["name", "version", "format", "examples", "contaminated", "registered_at", "path"]
    typer.echo(format_table(columns, [tuple(r[c] if c != "version" else r[c][:12] for c in columns) for r in rows])
               if rows else "(no evaluation sets yet: run `prefpipe evalset add`)")


# -- analyses (prefpipe/cli_analysis.py) --------------------------------------------------------------------

def _analysis_commands() -> None:
    from prefpipe.cli_analysis import analyse_app, combos_app, normalise, rewards_app

    app.add_typer(rewards_app, name="rewards")
    app.add_typer(combos_app, name="combos")
    app.add_typer(analyse_app, name="analyse")
    models_app.command("normalise")(normalise)


_analysis_commands()


# -- evaluation -----------------------------------------------------------------------------------------------

@app.command()
def nightly(force: Annotated[bool, typer.Option(help="Score again units that already have results.")] = False,
            threshold: ThresholdOpt = DEFAULTS.regression_threshold, task_runner: TaskRunnerOpt = "threads",
            dask_address: DaskAddressOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Score every active model on every registered evaluation set now (the nightly flow, once)."""
    from flows.demo import LEADERBOARD_EMPTY
    from flows.nightly import check_task_runner, nightly_flow

    settings = Settings.from_env(warehouse=warehouse)
    check_task_runner(task_runner, dask_address)
    check_threshold(threshold)  # before Prefect starts
    with prefect_session(settings):
        board = nightly_flow(settings, force=force, threshold=threshold, task_runner=task_runner,
                             dask_address=dask_address)["leaderboard"]
    typer.echo("\n" + format_records(board, LEADERBOARD_EMPTY))


@app.command()
def report(out: Annotated[Path | None, typer.Option("--out", help="The report's folder, replaced whole (default: "
                                                    "$PREFPIPE_REPORT or $PREFPIPE_HOME/report).")] = None,
           threshold: ThresholdOpt = DEFAULTS.regression_threshold) -> None:
    """Write the morning report: the nightly results as web pages (leaderboard, models, regressions,
    analyses) that open from the folder in any browser, with no server. The nightly run writes it too."""
    from prefpipe.report import write_report

    typer.echo(f"The morning report: {write_report(Settings.from_env(), out, threshold)}")


@app.command()
def serve(cron: Annotated[str, typer.Option(help="When the nightly evaluation runs (cron).")] = DEFAULTS.nightly_cron,
          timezone: Annotated[str, typer.Option(help="The cron's time zone (IANA name).")] = DEFAULTS.nightly_timezone,
          threshold: ThresholdOpt = DEFAULTS.regression_threshold, task_runner: TaskRunnerOpt = "threads",
          dask_address: DaskAddressOpt = None,
          port: Annotated[int, typer.Option(help="Port of the local Prefect server, when one is started.")
                          ] = DEFAULTS.prefect_port,
          warehouse: WarehouseOpt = None) -> None:
    """Run the nightly evaluation on a schedule, until stopped (Ctrl-C). Uses the Prefect server of
    PREFECT_API_URL, or starts a local one (its log: $PREFPIPE_HOME/prefect-server.log)."""
    from flows.serve import serve as serve_nightly

    serve_nightly(Settings.from_env(warehouse=warehouse), cron=cron, timezone=timezone, threshold=threshold,
                  task_runner=task_runner, dask_address=dask_address, port=port, echo=typer.echo)


@app.command()
def sql(query: Annotated[str | None, typer.Argument(help="SELECT ... over the views (see sql/views/).")] = None,
        file: Annotated[Path | None, typer.Option("-f", "--file", help="Read the query from a file.")] = None,
        fmt: Annotated[str, typer.Option("--format", help="table|csv|json")] = "table") -> None:
    """Query the results lake and the warehouse tables with SQL (read-only; reads their Parquet copies, so it
    never waits for a running ingest or nightly job)."""
    import csv
    import io
    import json

    from prefpipe.analyst import analyst_connection, read_only_query

    if (query is None) == (file is None):
        raise PrefpipeError("give a query or -f FILE (one of them)")
    if fmt not in ("table", "csv", "json"):
        raise PrefpipeError(f"--format: must be table, csv or json, got {fmt!r}")
    if file is not None:
        query = _read_text(file)
    settings = Settings.from_env()
    con, _, foreign = analyst_connection(settings.results, settings.tables, rewards=settings.rewards,
                                         analysis=settings.analysis)
    for path in foreign:
        print(f"prefpipe: skipped {path}: not a result partition", file=sys.stderr)
    columns, rows = read_only_query(con, query)
    if fmt == "json":
        typer.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=1))
    elif fmt == "csv":
        out = io.StringIO()
        csv.writer(out).writerows([columns, *rows])
        typer.echo(out.getvalue().rstrip("\n"))
    else:
        typer.echo(format_table(columns, rows))


@app.command()
def demo(annotations: Annotated[int, typer.Option(help="Synthetic annotations to generate.")] = 400,
         epochs: Annotated[int, typer.Option(help="Epochs of the demo model (0: do not train).")] = 2,
         warehouse: WarehouseOpt = None) -> None:
    """Generate a synthetic batch (ties, drops, edits, several annotators), ingest it, train a reward model on
    it (the packaged MiniLM), register its curated test split, run the nightly evaluation once, and end with
    the reward-tilt analysis of the model over the test split's candidates."""
    from flows.demo import demo as run_demo

    settings = Settings.from_env(warehouse=warehouse)
    with prefect_session(settings):
        run_demo(settings, annotations, epochs, echo=typer.echo)


# -- helpers ---------------------------------------------------------------------------------------------------

def _open_warehouse(warehouse: Path | None):
    from prefpipe.warehouse import Warehouse

    settings = Settings.from_env(warehouse=warehouse)
    _require_warehouse(settings)
    return Warehouse.open(settings)


@contextmanager
def _changing_warehouse(warehouse: Path | None):
    """The warehouse (made if there is none yet) and the settings, for a command that changes it; its
    Parquet copy for `prefpipe sql` is renewed after."""
    from prefpipe.tables import publish_tables
    from prefpipe.warehouse import Warehouse

    settings = Settings.from_env(warehouse=warehouse)
    with Warehouse.open(settings) as wh:
        yield wh, settings
        publish_tables(wh.con, settings.tables)


def _require_warehouse(settings: Settings) -> None:
    if not settings.warehouse.exists():
        raise PrefpipeError(f"{settings.warehouse}: no warehouse yet; run `prefpipe ingest` first")


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not valid UTF-8 (byte {e.start + 1})", file=path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", file=path) from None


# -- entry points -------------------------------------------------------------------------------------------

def main() -> None:
    """The `prefpipe` command: run under a guard, so that no process it starts outlives it (SIGKILL too)."""
    from prefpipe.processes import run_guarded

    run_guarded(run)


def _warning_to_the_log(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning (numpy's RuntimeWarning, ...) is part of the run's log, on stdout: stderr holds only
    the command's error."""
    print(f"warning: {category.__name__}: {message} ({Path(filename).name}:{lineno})", file=sys.stdout)


def run(args: list[str] | None = None) -> int:
    """Run the command line ARGS (default: sys.argv) in this process; returns the exit status."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_to_the_log
            result = app(args, standalone_mode=False)
        return result if isinstance(result, int) else 0  # --help: click's exit code
    except PrefpipeError as e:
        if STATE["debug"]:
            traceback.print_exc()
        print(f"prefpipe: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("prefpipe: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # a usage error of the command line (exit 2)
            e.show()
            return e.exit_code
        if STATE["debug"]:
            traceback.print_exc()
        print(f"prefpipe: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    main()
