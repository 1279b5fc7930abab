"""The `prefpipe` command: a thin face over the flows (flows/) and the library. Errors are one line on
stderr (exit 1); usage errors exit 2. Defaults come from Settings and the configs, never from here.

The command modules (this one, cli_registry.py, cli_analysis.py) import at their top what the command line
needs; a command imports its flow or its heavy library modules when it runs. Measured here (`python -X
importtime`): Prefect 1.2 s, torch 1.5 s, transformers 1.1 s, Great Expectations 3.2 s, matplotlib 0.5 s;
`prefpipe --help` takes 0.4 s and must stay under 1 s."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated

# Prefect's run log is the command's output; stderr holds the command's one-line error
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_STREAM", "ext://sys.stdout")

import typer

from prefpipe.analyst import analyst_connection, read_only_query
from prefpipe.cli_analysis import analyse_app, combos_app, normalise, rewards_app
from prefpipe.cli_options import (
    DEFAULTS,
    DaskAddressOpt,
    ExcludeOpt,
    LakeOpt,
    TaskRunnerOpt,
    ThresholdOpt,
    WarehouseOpt,
    changing_warehouse,
    open_warehouse,
    read_text,
)
from prefpipe.cli_registry import evalset_app, models_app, train
from prefpipe.errors import PrefpipeError
from prefpipe.export import export_pairs
from prefpipe.ingest import batch_files, summary_table
from prefpipe.migrate import due
from prefpipe.migrate import migrate as run_migration
from prefpipe.prefect_server import prefect_session
from prefpipe.processes import run_guarded
from prefpipe.settings import Settings, check_threshold
from prefpipe.text import LEADERBOARD_EMPTY, format_records, format_table

app = typer.Typer(help="Curate human preference data and evaluate reward models.", add_completion=False,
                  no_args_is_help=True, pretty_exceptions_enable=False)
STATE = {"debug": False}


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
    from flows.ingest import ingest_flow  # Prefect, and Great Expectations

    settings = Settings.from_env(warehouse=warehouse, max_quarantined_share=max_quarantined)
    files = batch_files(paths)  # fail on a missing file before starting Prefect
    with prefect_session(settings):
        summaries = ingest_flow([str(p) for p in files], settings=settings, fmt=fmt)
    typer.echo("\n" + summary_table(summaries))
    if any(s.status == "failed" for s in summaries):
        raise PrefpipeError("; ".join(s.message for s in summaries if s.status == "failed"))


@app.command()
def stats(warehouse: WarehouseOpt = None) -> None:
    """Print warehouse counts, per-batch counts, annotator agreement and near-duplicate clusters (and what
    `prefpipe migrate` would do, if anything: reading computes nothing)."""
    settings = Settings.from_env(warehouse=warehouse)
    with open_warehouse(settings) as wh:
        counts = wh.counts()
        typer.echo(format_table(list(counts), [tuple(counts.values())]))
        for title, columns, rows in wh.curation_views() + wh.cluster_views():
            typer.echo(f"\n{title}\n" + (format_table(columns, rows) if rows else "(none)"))
        for step in due(wh, settings.dedup):
            typer.echo(f"\nDue: {step}; run `prefpipe migrate` (the next ingest does it too)")


@app.command()
def migrate(warehouse: WarehouseOpt = None) -> None:
    """Run the warehouse's one-time steps that are due: cluster its prompts by near-duplicates (when it never was,
    or PREFPIPE_DEDUP_* changed) and check never-checked evaluation sets against it. The ingest and `evalset add`
    run them too; nothing else does."""
    settings = Settings.from_env(warehouse=warehouse)
    open_warehouse(settings).close()  # there must be one: migrating makes none
    with changing_warehouse(settings) as wh:
        messages = run_migration(wh, settings.dedup)
    typer.echo("\n".join(messages) or f"{settings.warehouse}: nothing to migrate")


@app.command()
def export(out: Annotated[Path, typer.Argument(help="Output file: .jsonl or .parquet.")],
           split: Annotated[str, typer.Option(help="train|validation|test|all")] = "train",
           fmt: Annotated[str, typer.Option("--format", help="pairwise (prompt, chosen, rejected, margin: TRL) or "
                                            "rewardbench (id, prompt, chosen, rejected, subset: an evaluation set)"
                                            )] = "pairwise",
           exclude_evalset: ExcludeOpt = None, warehouse: WarehouseOpt = None) -> None:
    """Write curated pairs for training or evaluating elsewhere (TRL RewardTrainer, RewardBench)."""
    with open_warehouse(Settings.from_env(warehouse=warehouse)) as wh:
        rows = export_pairs(wh, out, None if split == "all" else split, layout=fmt, exclude=exclude_evalset)
        [(left_out,)] = wh.con.table("excluded_annotations").aggregate("count(DISTINCT annotation_seq)").fetchall()
    typer.echo(f"{out}: {rows} pairs ({split})"
               + (f"; left out {left_out} annotations that match {', '.join(exclude_evalset)}" if exclude_evalset
                  else ""))


# -- the registry (prefpipe/cli_registry.py) and the analyses (prefpipe/cli_analysis.py) --------------------

app.command()(train)
app.add_typer(models_app, name="models")
app.add_typer(evalset_app, name="evalset")
app.add_typer(rewards_app, name="rewards")
app.add_typer(combos_app, name="combos")
app.add_typer(analyse_app, name="analyse")
models_app.command("normalise")(normalise)


# -- evaluation -----------------------------------------------------------------------------------------------

@app.command()
def nightly(force: Annotated[bool, typer.Option(help="Score again units that already have results.")] = False,
            threshold: ThresholdOpt = DEFAULTS.regression_threshold,
            task_runner: TaskRunnerOpt = DEFAULTS.task_runner,
            dask_address: DaskAddressOpt = None, warehouse: WarehouseOpt = None, lake: LakeOpt = None) -> None:
    """Score every active model on every registered evaluation set now (the nightly flow, once)."""
    from flows.nightly import nightly_flow  # Prefect, torch and transformers
    from tasks.runners import check_task_runner

    settings = Settings.from_env(warehouse=warehouse, lake=lake)
    check_task_runner(task_runner, dask_address)
    check_threshold(threshold)
    settings.check_lake(write=True)  # before Prefect starts
    with prefect_session(settings):
        board = nightly_flow(settings, force=force, threshold=threshold, task_runner=task_runner,
                             dask_address=dask_address)["leaderboard"]
    typer.echo("\n" + format_records(board, LEADERBOARD_EMPTY))


@app.command()
def report(out: Annotated[Path | None, typer.Option("--out", help="The report's folder, replaced whole (default: "
                                                    "$PREFPIPE_REPORT or $PREFPIPE_HOME/report).")] = None,
           threshold: ThresholdOpt = DEFAULTS.regression_threshold, lake: LakeOpt = None) -> None:
    """Write the morning report: the nightly results as web pages (leaderboard, models, regressions,
    analyses) that open from the folder in any browser, with no server. The nightly run writes it too."""
    from prefpipe.report import write_report  # matplotlib

    settings = Settings.from_env(lake=lake)
    settings.check_lake(write=False)
    typer.echo(f"The morning report: {write_report(settings, out, threshold)}")


@app.command()
def serve(cron: Annotated[str, typer.Option(help="When the nightly evaluation runs (cron).")] = DEFAULTS.nightly_cron,
          timezone: Annotated[str, typer.Option(help="The cron's time zone (IANA name).")] = DEFAULTS.nightly_timezone,
          threshold: ThresholdOpt = DEFAULTS.regression_threshold,
          task_runner: TaskRunnerOpt = DEFAULTS.task_runner,
          dask_address: DaskAddressOpt = None,
          port: Annotated[int, typer.Option(help="Port of the local Prefect server, when one is started.")
                          ] = DEFAULTS.prefect_port,
          warehouse: WarehouseOpt = None, lake: LakeOpt = None) -> None:
    """Run the nightly evaluation on a schedule, until stopped (Ctrl-C). Uses the Prefect server of
    PREFECT_API_URL, or starts a local one (its log: $PREFPIPE_HOME/prefect-server.log)."""
    from flows.serve import serve as serve_nightly  # Prefect, torch and transformers

    settings = Settings.from_env(warehouse=warehouse, lake=lake)
    settings.check_lake(write=True)
    serve_nightly(settings, cron=cron, timezone=timezone, threshold=threshold,
                  task_runner=task_runner, dask_address=dask_address, port=port, echo=typer.echo)


@app.command()
def sql(query: Annotated[str | None, typer.Argument(help="SELECT ... over the views (see sql/views/).")] = None,
        file: Annotated[Path | None, typer.Option("-f", "--file", help="Read the query from a file.")] = None,
        fmt: Annotated[str, typer.Option("--format", help="table|csv|json")] = "table", lake: LakeOpt = None) -> None:
    """Query the results lake and the warehouse tables with SQL (read-only; reads their Parquet copies, so it
    never waits for a running ingest or nightly job)."""
    if (query is None) == (file is None):
        raise PrefpipeError("give a query or -f FILE (one of them)")
    if fmt not in ("table", "csv", "json"):
        raise PrefpipeError(f"--format: must be table, csv or json, got {fmt!r}")
    if file is not None:
        query = read_text(file)
    settings = Settings.from_env(lake=lake)
    settings.check_lake(write=False)
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
def demo(annotations: Annotated[int, typer.Option(help="Synthetic annotations to generate.")
                                ] = DEFAULTS.demo_annotations,
         epochs: Annotated[int, typer.Option(help="Epochs of the demo model (0: do not train).")
                           ] = DEFAULTS.demo_epochs,
         warehouse: WarehouseOpt = None) -> None:
    """Generate a synthetic batch (ties, drops, edits, several annotators), ingest it, train a reward model on
    it (the packaged MiniLM), register its curated test split, run the nightly evaluation once, and end with
    the reward-tilt analysis of the model over the test split's candidates."""
    from flows.demo import demo as run_demo  # Prefect, torch and transformers

    settings = Settings.from_env(warehouse=warehouse)
    with prefect_session(settings):
        run_demo(settings, annotations, epochs, echo=typer.echo)


# -- entry points -------------------------------------------------------------------------------------------

def main() -> None:
    """The `prefpipe` command: run under a guard, so that no process it starts outlives it (SIGKILL too)."""
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
