"""Nightly evaluation: every active model on every registered set, into the results lake; then the
leaderboard, and a failure naming every regression against the previous night and every failed unit."""

import os
import time
import traceback
import uuid
from datetime import date
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from prefpipe.analyst import analyst_connection
from prefpipe.errors import InputError, PrefpipeError
from prefpipe.report import write_report
from prefpipe.settings import Settings, check_threshold
from prefpipe.sql import sql
from tasks.nightly import read_registry, score_unit

TASK_RUNNERS = ("threads", "dask")


@flow(name="nightly", log_prints=True)
def nightly_flow(settings: Settings | None = None, force: bool = False, threshold: float | None = None,
                 run_date: date | None = None, task_runner: str = "threads", dask_address: str | None = None) -> dict:
    """Every active model on every registered set. Units run on threads in this process, or with
    TASK_RUNNER dask on a Dask cluster: a local one, or the scheduler at DASK_ADDRESS."""
    settings = settings or Settings.from_env()
    threshold = check_threshold(settings.regression_threshold if threshold is None else threshold)
    check_task_runner(task_runner, dask_address)
    run_date = run_date or date.today()
    run_id, started = f"{run_date:%Y%m%d}-{uuid.uuid4().hex[:8]}", time.time()
    scored, evalsets = read_registry(settings)
    units = [(s, evalset) for s in scored for evalset in evalsets]
    combos = sum("combo" in s for s in scored)
    print(f"run {run_id}: {len(scored) - combos} active models and {combos} combinations x {len(evalsets)} "
          f"evaluation sets on {task_runner}{f' at {dask_address}' if dask_address else ''}")
    runner = make_task_runner(task_runner, dask_address, len(units))
    outcomes, failed = nightly_units.with_options(task_runner=runner)(  # absolute: workers may run elsewhere
        settings.results.resolve(), units, run_id, run_date, force, started, settings.tables.resolve())
    board, regressions = [], []
    con, runs, foreign = analyst_connection(settings.results, regression_threshold=threshold)
    for path in foreign:
        print(f"skipped {path}: not a result partition (evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN)")
    if runs:
        board = con.sql(sql("queries/leaderboard.sql")).to_arrow_table().to_pylist()
        regressions = con.sql(sql("queries/regressions.sql")).to_arrow_table().to_pylist()
        definitions = {s["id"]: s["combo"].definition() for s in scored if "combo" in s}
        create_table_artifact(key="leaderboard", table=[{k: str(v) if k == "run_date" else v for k, v in r.items()}
                                                        for r in board],
                              description=f"Latest run per model and set ({run_id})" + "".join(
                                  f"; {name} = {text}" for name, text in definitions.items()))
    if regressions:
        lines = [f"- **{r['model_id']}** on {r['evalset']}, {r['level']} {r['name']}: {r['previous']:.4f} -> "
                 f"{r['latest']:.4f} ({r['change']:+.4f}; {r['previous_date']} -> {r['latest_date']})"
                 for r in regressions]
        create_markdown_artifact(key="nightly-regressions", markdown=f"# Regressions beyond {threshold}\n\n"
                                 + "\n".join(lines))
    problems, report = [f"{len(failed)} unit(s) failed: " + "; ".join(failed)] if failed else [], None
    try:
        report = write_report(settings, threshold=threshold)
        create_link_artifact(key="morning-report", link=report.resolve().as_uri(), link_text="The morning report",
                             description=f"The leaderboard, models, regressions and analyses after run {run_id}")
        print(f"The morning report: {report}")
    except PrefpipeError as error:  # the scores are in the lake: say why, and fail the run at the end with the rest
        problems.append(f"report: {error}")
    except Exception as error:  # a defect, or the disk: the same, with its traceback in the run's log
        print(traceback.format_exc())
        problems.append(f"report: {type(error).__name__}: {error}")
    problems += (
        [f"{len(regressions)} regression(s) beyond {threshold}: " + "; ".join(
            f"{r['model_id']} on {r['evalset']} {r['name']} {r['change']:+.4f}" for r in regressions)]
        if regressions else [])
    if problems:
        raise PrefpipeError("nightly: " + " | ".join(problems))
    return {"run_id": run_id, "units": outcomes, "leaderboard": board, "report": report}


@flow(name="nightly-units", log_prints=True)
def nightly_units(results: Path, units: list[tuple], run_id: str, run_date: date, force: bool, started: float,
                  tables_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Score the units concurrently on this flow's task runner; one failing unit does not stop the others.
    Returns what each finished unit did, and a line for each failed one."""
    futures = {(scored["id"], evalset["name"]): score_unit.submit(results, scored, evalset, run_id, run_date, force,
                                                                   started, tables_dir)
               for scored, evalset in units}
    outcomes, failed = {}, []
    for (model_id, name), future in futures.items():
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            failed.append(f"{model_id} on {name}: {type(outcome).__name__}: {str(outcome).splitlines()[0]}")
        else:
            outcomes[f"{model_id} on {name}"] = outcome
            print(f"{model_id} on {name}: {outcome}")
    return outcomes, failed


def check_task_runner(kind: str, address: str | None) -> None:
    if kind not in TASK_RUNNERS:
        raise InputError(f"must be one of {', '.join(TASK_RUNNERS)}, got {kind!r}", field="--task-runner")
    if address and kind != "dask":
        raise InputError("a Dask scheduler address needs --task-runner dask", field="--dask-address")


def make_task_runner(kind: str, address: str | None, units: int) -> TaskRunner:
    """Threads in this process, or Dask: the scheduler at ADDRESS, or a local cluster of one single-threaded
    worker process per core (at most one per unit; Dask gives each worker one BLAS/torch thread)."""
    if kind == "threads":
        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    workers = max(1, min(os.cpu_count() or 1, units))
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "dashboard_address": None})
