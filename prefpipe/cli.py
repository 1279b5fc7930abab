"""The `prefpipe` command. Errors are one line on stderr (exit 1); usage errors exit 2."""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

for _name, _value in {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false",
                      "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1",
                      # Prefect's run log is the command's output; stderr holds the command's one-line error
                      "PREFECT_LOGGING_HANDLERS_CONSOLE_STREAM": "ext://sys.stdout"}.items():
    os.environ.setdefault(_name, _value)

import typer  # noqa: E402

from prefpipe.errors import PrefpipeError  # noqa: E402
from prefpipe.names import check_name  # noqa: E402
from prefpipe.settings import Settings  # noqa: E402

app = typer.Typer(help="Curate human preference data and evaluate reward models.", add_completion=False,
                  no_args_is_help=True, pretty_exceptions_enable=False)
STATE = {"debug": False}

WarehouseOpt = Annotated[Path | None, typer.Option("--warehouse", help="DuckDB file "
                         "[default: $PREFPIPE_WAREHOUSE or $PREFPIPE_HOME/warehouse.duckdb]")]


ThresholdOpt = Annotated[float, typer.Option(help="A drop larger than this against the previous night fails the run.")]
TaskRunnerOpt = Annotated[str, typer.Option(help="threads (in this process) | dask (a Dask cluster, via prefect-dask)")]
DaskAddressOpt = Annotated[str | None, typer.Option(help="With --task-runner dask: the scheduler's address "
                                                    "(tcp://host:8786) [default: a local cluster]")]


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


@app.command()
def ingest(paths: Annotated[list[Path], typer.Argument(help="Batch files or folders (each file one batch).")],
           warehouse: WarehouseOpt = None,
           fmt: Annotated[str, typer.Option("--format", help="auto|canonical|csv|parquet|hh-rlhf|oasst|pandalm|"
                                            "pairwise|ratings (auto: detected from the content)")] = "auto",
           max_quarantined: Annotated[float | None, typer.Option(
               "--max-quarantined", help="Fail a batch whose quarantined share is above this [default: 0.5]")] = None,
           ) -> None:
    """Ingest annotation batches into the warehouse and build their pairs."""
    from flows.ingest import ingest_flow
    from prefpipe.ingest import batch_files

    settings = Settings.from_env(warehouse=warehouse, max_quarantined_share=max_quarantined)
    files = batch_files(paths)  # fail on a missing file before starting Prefect
    summaries = ingest_flow([str(p) for p in files], settings=settings, fmt=fmt)
    _print_summaries(summaries)
    if any(s.status == "failed" for s in summaries):
        raise PrefpipeError("; ".join(s.message for s in summaries if s.status == "failed"))


@app.command()
def stats(warehouse: WarehouseOpt = None) -> None:
    """Print warehouse counts, per-batch counts and annotator agreement."""
    with _open_warehouse(warehouse) as wh:
        counts = wh.counts()
        typer.echo(format_table(list(counts), [tuple(counts.values())]))
        for title, view in (("Batches", "batch_counts"), ("Quarantine by rule", "quarantine_by_rule"),
                            ("Per source", "source_stats"), ("Per annotator", "annotator_stats"),
                            ("Agreement where a prompt was judged more than once", "agreement"),
                            ("Agreement between two annotators", "annotator_agreement")):
            columns, rows = wh.query(f"SELECT * FROM {view} LIMIT 20")
            typer.echo(f"\n{title}\n" + (format_table(columns, rows) if rows else "(none)"))


@app.command()
def export(out: Annotated[Path, typer.Argument(help="Output file: .jsonl or .parquet.")],
           split: Annotated[str, typer.Option(help="train|validation|test|all")] = "train",
           fmt: Annotated[str, typer.Option("--format", help="pairwise (prompt, chosen, rejected, margin: TRL) or "
                                            "rewardbench (id, prompt, chosen, rejected, subset: an evaluation set)"
                                            )] = "pairwise",
           warehouse: WarehouseOpt = None) -> None:
    """Write curated pairs for training or evaluating elsewhere (TRL RewardTrainer, RewardBench)."""
    from prefpipe.export import export_pairs

    with _open_warehouse(warehouse) as wh:
        rows = export_pairs(wh, out, None if split == "all" else split, layout=fmt)
    typer.echo(f"{out}: {rows} pairs ({split})")


@app.command()
def train(base: Annotated[str, typer.Option(help="A local model folder [default: the packaged all-MiniLM-L6-v2]")] = "",
          loss: Annotated[str, typer.Option(help="bt | bt-margin | plackett-luce")] = "bt",
          epochs: Annotated[int, typer.Option()] = 1,
          lr: Annotated[float, typer.Option(help="Peak learning rate (linear warm-up and decay).")] = 3e-5,
          max_tokens: Annotated[int, typer.Option(help="Padded tokens per batch (whole annotations).")] = 8192,
          max_length: Annotated[int, typer.Option(help="Tokens per input; the prompt is cut from the left.")] = 512,
          accumulate: Annotated[int, typer.Option(help="Batches per optimizer step.")] = 1,
          margin_scale: Annotated[float, typer.Option(help="bt-margin: -log σ(Δ - scale × rank gap).")] = 1.0,
          center_coefficient: Annotated[float, typer.Option(help="Reward centring: coef × mean (r_c + r_r)².")] = 0.0,
          seed: Annotated[int, typer.Option()] = 0,
          checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints (0: none).")] = 200,
          bf16: Annotated[bool, typer.Option("--bf16/--no-bf16", help="bf16 autocast where supported.")] = False,
          dropout: Annotated[bool, typer.Option("--dropout/--no-dropout", help="Keep the backbone's dropout.")] = False,
          device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
          processes: Annotated[int, typer.Option("--nproc", help="Data-parallel processes (torchrun).")] = 1,
          name: Annotated[str | None, typer.Option(help="Model id [default: rm-LOSS-TIME]")] = None,
          resume: Annotated[str | None, typer.Option(help="Continue the run of this model id (or folder) from its "
                                                     "last checkpoint; the other options are ignored.")] = None,
          warehouse: WarehouseOpt = None) -> None:
    """Train a Bradley-Terry reward model on the training split, evaluate it and register it."""
    from flows.train import resume_folder, train_flow
    from prefpipe.train import TrainConfig

    settings = Settings.from_env(warehouse=warehouse)
    if name is not None:
        check_name(name)
    config = None
    if resume:
        resume_folder(settings, resume)  # a wrong name fails before Prefect starts
    else:
        _require_warehouse(settings)
        config = TrainConfig(base=base, loss=loss, epochs=epochs, lr=lr, max_tokens=max_tokens, max_length=max_length,
                             accumulate=accumulate, margin_scale=margin_scale, center_coefficient=center_coefficient,
                             seed=seed, checkpoint_every=checkpoint_every, bf16=bf16, dropout=dropout,
                             device=device)
    result = train_flow(config, settings=settings, name=name, resume=resume, processes=processes)
    typer.echo(f"\n{result['model_id']}: {result['path']}")


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
    if Settings.from_env(warehouse=warehouse).warehouse.exists():
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
    with _changing_warehouse(warehouse) as wh:
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

    with _changing_warehouse(warehouse) as wh:
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
    import tempfile

    from prefpipe.export import export_pairs
    from prefpipe.registry import register_evalset

    if (path is None) == (from_split is None):
        raise PrefpipeError("give a file or --from-split SPLIT (one of them)")
    check_name(name)
    settings = Settings.from_env(warehouse=warehouse)
    with _changing_warehouse(warehouse) as wh, tempfile.TemporaryDirectory() as tmp:
        if from_split:
            path = Path(tmp) / f"{name}-{from_split}.jsonl"
            export_pairs(wh, path, from_split, layout="rewardbench")
        row, new = register_evalset(wh, settings.home, path, name, fmt,
                                    source=f"warehouse:{from_split}" if from_split else None)
    state = "registered" if new else "unchanged, already registered"
    typer.echo(f"{row['name']}: version {row['version'][:12]} {state}: {row['examples']} examples, {row['format']}, "
               f"subsets {', '.join(row['subsets'])}")


@evalset_app.command("list")
def evalset_list(warehouse: WarehouseOpt = None) -> None:
    """The latest version of every registered evaluation set."""
    from prefpipe.registry import latest_evalsets

    rows = []
    if Settings.from_env(warehouse=warehouse).warehouse.exists():
        with _open_warehouse(warehouse) as wh:
            rows = latest_evalsets(wh)
    columns = ["name", "version", "format", "examples", "registered_at", "path"]
    typer.echo(format_table(columns, [tuple(r[c] if c != "version" else r[c][:12] for c in columns) for r in rows])
               if rows else "(no evaluation sets yet: run `prefpipe evalset add`)")


@app.command()
def nightly(force: Annotated[bool, typer.Option(help="Score again units that already have results.")] = False,
            threshold: ThresholdOpt = 0.02, task_runner: TaskRunnerOpt = "threads", dask_address: DaskAddressOpt = None,
            warehouse: WarehouseOpt = None) -> None:
    """Score every active model on every registered evaluation set now (the nightly flow, once)."""
    from flows.nightly import check_task_runner, nightly_flow

    settings = Settings.from_env(warehouse=warehouse)
    check_task_runner(task_runner, dask_address)
    _print_leaderboard(nightly_flow(settings, force=force, threshold=threshold, task_runner=task_runner,
                                    dask_address=dask_address)["leaderboard"])


@app.command()
def serve(cron: Annotated[str, typer.Option(help="When the nightly evaluation runs (cron).")] = "0 2 * * *",
          timezone: Annotated[str, typer.Option(help="The cron's time zone (IANA name).")] = "UTC",
          threshold: ThresholdOpt = 0.02, task_runner: TaskRunnerOpt = "threads", dask_address: DaskAddressOpt = None,
          port: Annotated[int, typer.Option(help="Port of the local Prefect server, when one is started.")] = 4200,
          warehouse: WarehouseOpt = None) -> None:
    """Run the nightly evaluation on a schedule, until stopped (Ctrl-C). Uses the Prefect server of
    PREFECT_API_URL, or starts a local one (its log: $PREFPIPE_HOME/prefect-server.log)."""
    from flows.nightly import check_task_runner, nightly_schedule

    settings = Settings.from_env(warehouse=warehouse)
    nightly_schedule(cron, timezone)  # a wrong cron fails before a server starts
    check_task_runner(task_runner, dask_address)
    for name in ("home", "warehouse", "results", "models", "tables"):  # scheduled runs are subprocesses
        os.environ[f"PREFPIPE_{name.upper()}"] = str(getattr(settings, name).resolve())
    with _prefect_api(settings.home / "prefect-server.log", port) as url:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.nightly import serve_nightly

        typer.echo(f"nightly evaluation: cron '{cron}' ({timezone}) on the Prefect server at {url}; "
                   "stop with Ctrl-C")
        signal.signal(signal.SIGINT, _stop_gracefully)
        try:  # Ctrl-C or `kill`: Prefect pauses the schedule, then the server (if started here) stops
            with temporary_settings({PREFECT_API_URL: url}):
                serve_nightly(cron, timezone, threshold, task_runner, dask_address)
        except* KeyboardInterrupt:
            pass
        typer.echo("stopped; the schedule is paused until the next `prefpipe serve`")


def _stop_gracefully(*_: object) -> None:
    """Ctrl-C: the runner's own graceful shutdown (as on SIGTERM). A task cancelled by asyncio's Ctrl-C
    handler can absorb the cancellation and keep serving; a second Ctrl-C interrupts at once."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def _prefect_api(log: Path, port: int):
    """The configured Prefect API, or a local Prefect server started for the time of the block."""
    import subprocess
    import time

    from prefect.settings import get_current_settings

    if configured := get_current_settings().api.url:
        yield configured
        return
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = url  # for the subprocesses that run the flow
    if _answers(url):  # a server that someone started without configuring it
        yield url
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # a session of its own: Ctrl-C stops `serve` first, which pauses its schedule, then the server
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        typer.echo(f"starting a local Prefect server at {url} (log: {log})")
        deadline = time.monotonic() + 120
        while not _answers(url):
            if server.poll() is not None:
                raise PrefpipeError(f"the local Prefect server stopped with exit code {server.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise PrefpipeError(f"the local Prefect server did not answer at {url} within 120 s; see {log}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


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
    con, _, foreign = analyst_connection(settings.results, settings.tables)
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
    """Generate a synthetic batch (ties, drops, edits, several annotators), ingest it, and train a reward
    model on it (the packaged MiniLM)."""
    from flows.ingest import ingest_flow
    from flows.train import train_flow
    from prefpipe.synth import synthetic_batch
    from prefpipe.train import TrainConfig

    settings = Settings.from_env(warehouse=warehouse)
    batch = synthetic_batch(settings.home / "samples" / f"synthetic-{annotations}.jsonl", annotations)
    typer.echo(f"Generated {batch} ({annotations} annotations and 3 malformed lines)")
    _print_summaries(ingest_flow([str(batch)], settings=settings))
    if epochs:
        typer.echo(f"\nTraining a reward model (all-MiniLM-L6-v2, {epochs} epochs) on the training split")
        result = train_flow(TrainConfig(epochs=epochs, lr=1e-4, max_tokens=2048), settings=settings)
        test = result["metrics"]["test"]
        typer.echo(f"\n{result['model_id']}: held-out (test) accuracy {test['accuracy']:.3f} on {test['pairs']} "
                   f"pairs (chance 0.5); log loss {test['log_loss']:.3f}, ECE {test['ece']:.3f}\n{result['path']}")
        _demo_nightly(settings)


def _demo_nightly(settings: Settings) -> None:
    """Register the curated test split as an evaluation set and run the nightly evaluation once."""
    import tempfile

    from flows.nightly import nightly_flow
    from prefpipe.export import export_pairs
    from prefpipe.registry import register_evalset
    from prefpipe.warehouse import Warehouse

    with Warehouse.open(settings) as wh, tempfile.TemporaryDirectory() as tmp:
        curated = Path(tmp) / "curated-test.jsonl"
        export_pairs(wh, curated, "test", layout="rewardbench")
        register_evalset(wh, settings.home, curated, "curated-test", source="warehouse:test")
    typer.echo("\nNightly evaluation (every active model on every registered set), once:")
    _print_leaderboard(nightly_flow(settings)["leaderboard"])


def _print_leaderboard(board: list[dict]) -> None:
    typer.echo("\n" + (format_table(list(board[0]), [tuple(r.values()) for r in board]) if board
                       else "(no results: register models and evaluation sets first)"))


def _open_warehouse(warehouse: Path | None):
    from prefpipe.warehouse import Warehouse

    settings = Settings.from_env(warehouse=warehouse)
    _require_warehouse(settings)
    return Warehouse.open(settings)


@contextmanager
def _changing_warehouse(warehouse: Path | None):
    """The warehouse (made if there is none yet), for a command that changes it; its Parquet copy for
    `prefpipe sql` is renewed after."""
    from prefpipe.tables import publish_tables
    from prefpipe.warehouse import Warehouse

    settings = Settings.from_env(warehouse=warehouse)
    with Warehouse.open(settings) as wh:
        yield wh
        publish_tables(wh.con, settings.tables)


def _require_warehouse(settings: Settings) -> None:
    if not settings.warehouse.exists():
        raise PrefpipeError(f"{settings.warehouse}: no warehouse yet; run `prefpipe ingest` first")


def _print_summaries(summaries) -> None:
    from flows.ingest import SUMMARY_COLUMNS, summary_row

    columns = SUMMARY_COLUMNS[:-1]
    typer.echo("\n" + format_table(columns, [tuple(summary_row(s)[c] for c in columns) for s in summaries]))


def _read_text(path: Path) -> str:
    from prefpipe.errors import InputError

    try:
        return path.read_text()
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not valid UTF-8 (byte {e.start + 1})", file=path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", file=path) from None


def format_table(columns: list[str], rows: list[tuple]) -> str:
    cells = [[str(c) for c in columns]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    """The `prefpipe` command: run under a guard, so that no process it starts outlives it (SIGKILL too)."""
    from prefpipe.processes import run_guarded

    run_guarded(run)


def run(args: list[str] | None = None) -> int:
    """Run the command line ARGS (default: sys.argv) in this process; returns the exit status."""
    try:
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
