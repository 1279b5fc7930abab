"""Nightly evaluation: every active model on every registered set, into the results lake; then the
leaderboard, the morning report, and a failure naming every regression against the previous night and every
failed unit (a unit: one model or combination on one set)."""

import time
from datetime import date

from prefect import flow

from prefpipe.errors import PrefpipeError
from prefpipe.lake import new_run_id
from prefpipe.settings import Settings, check_threshold
from prefpipe.store import Location
from tasks.nightly import publish_leaderboard, read_registry, score_unit, sweep_leftovers, write_morning_report
from tasks.runners import check_task_runner, make_task_runner


@flow(name="nightly", log_prints=True)
def nightly_flow(settings: Settings | None = None, force: bool = False, threshold: float | None = None,
                 run_date: date | None = None, task_runner: str | None = None, dask_address: str | None = None
                 ) -> dict:
    """Every active model on every registered set. Units run on threads in this process, or with
    TASK_RUNNER dask on a Dask cluster: a local one, or the scheduler at DASK_ADDRESS."""
    settings = settings or Settings.from_env()
    threshold = check_threshold(settings.regression_threshold if threshold is None else threshold)
    task_runner = task_runner or settings.task_runner
    check_task_runner(task_runner, dask_address)
    run_date = run_date or date.today()
    run_id, started = new_run_id(run_date), time.time()
    contenders, evalsets = read_registry(settings)
    units = [(c, evalset) for c in contenders for evalset in evalsets]
    combos = sum(c.is_combo for c in contenders)
    print(f"run {run_id}: {len(contenders) - combos} active models and {combos} combinations x {len(evalsets)} "
          f"evaluation sets on {task_runner}{f' at {dask_address}' if dask_address else ''}")
    runner = make_task_runner(task_runner, dask_address, len(units))
    sweeping = sweep_leftovers.submit(settings)  # on this flow's threads, beside the units
    outcomes, failed = nightly_units.with_options(task_runner=runner)(  # absolute: workers may run elsewhere
        settings.results.resolve(), units, run_id, run_date, force, started, settings.tables.resolve())
    if isinstance(swept := sweeping.result(raise_on_failure=False), BaseException):  # housekeeping: not a failure
        print(f"the bucket's leftovers were not swept: {swept}")
    board, regressions = publish_leaderboard(settings, threshold, run_id, contenders)
    report, report_problem = write_morning_report(settings, threshold, run_id)
    problems = [*([f"{len(failed)} unit(s) failed: " + "; ".join(failed)] if failed else []),
                *([f"report: {report_problem}"] if report_problem else []),
                *([f"{len(regressions)} regression(s) beyond {threshold}: " + "; ".join(
                    f"{r['model_id']} on {r['evalset']} {r['name']} {r['change']:+.4f}" for r in regressions)]
                  if regressions else [])]
    if problems:
        raise PrefpipeError("nightly: " + " | ".join(problems))
    return {"run_id": run_id, "units": outcomes, "leaderboard": board, "report": report}


@flow(name="nightly-units", log_prints=True)
def nightly_units(results: Location, units: list[tuple], run_id: str, run_date: date, force: bool, started: float,
                  tables_dir: Location) -> tuple[dict[str, str], list[str]]:
    """Score the units concurrently on this flow's task runner; one failing unit does not stop the others.
    Returns what each finished unit did, and a line for each failed one."""
    futures = {(contender.id, evalset["name"]): score_unit.submit(results, contender, evalset, run_id, run_date,
                                                                  force, started, tables_dir)
               for contender, evalset in units}
    outcomes, failed = {}, []
    for (model_id, name), future in futures.items():
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            failed.append(f"{model_id} on {name}: {type(outcome).__name__}: {str(outcome).splitlines()[0]}")
        else:
            outcomes[f"{model_id} on {name}"] = outcome
            print(f"{model_id} on {name}: {outcome}")
    return outcomes, failed
