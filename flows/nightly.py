"""Nightly evaluation: every active model on every registered set, into the results lake; then the
leaderboard, and a failure naming every regression against the previous night and every failed unit."""

from __future__ import annotations

import uuid
from datetime import date

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from prefpipe.errors import PrefpipeError
from prefpipe.lake import lake_connection
from prefpipe.settings import Settings
from tasks.nightly import read_registry, score_unit

LEADERBOARD = """
SELECT model_id, evalset, run_date, round(max(value) FILTER (level = 'score' AND name = 'score'), 4) AS score,
       round(max(value) FILTER (level = 'section' AND name = 'Chat Hard'), 4) AS chat_hard,
       round(max(value) FILTER (level = 'section' AND name = 'custom'), 4) AS custom,
       count(*) FILTER (level = 'subset') AS subsets
FROM leaderboard GROUP BY ALL ORDER BY evalset, score DESC NULLS LAST, chat_hard DESC NULLS LAST, model_id"""


@flow(name="nightly", log_prints=True)
def nightly_flow(settings: Settings | None = None, force: bool = False, threshold: float = 0.02,
                 run_date: date | None = None) -> dict:
    settings = settings or Settings.from_env()
    run_date = run_date or date.today()
    run_id = f"{run_date:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    models, evalsets = read_registry(settings)
    print(f"run {run_id}: {len(models)} active models x {len(evalsets)} evaluation sets")
    futures = {(model_id, evalset["name"]): score_unit.submit(settings.results, model_id, path, reference, evalset,
                                                               run_id, run_date, force)
               for model_id, path, reference in models for evalset in evalsets}
    outcomes, failed = {}, []
    for (model_id, name), future in futures.items():
        outcome = future.result(raise_on_failure=False)  # one failing unit does not stop the others
        if isinstance(outcome, BaseException):
            failed.append(f"{model_id} on {name}: {type(outcome).__name__}: {str(outcome).splitlines()[0]}")
        else:
            outcomes[model_id, name] = outcome
            print(f"{model_id} on {name}: {outcome}")
    board, regressions = [], []
    con = lake_connection(settings.results, regression_threshold=threshold)
    if con is not None:
        board = con.sql(LEADERBOARD).to_arrow_table().to_pylist()
        regressions = con.sql("SELECT * FROM regressions ORDER BY model_id, evalset, level, name"
                              ).to_arrow_table().to_pylist()
        create_table_artifact(key="leaderboard", table=[{k: str(v) if k == "run_date" else v for k, v in r.items()}
                                                        for r in board],
                              description=f"Latest run per model and set ({run_id})")
    if regressions:
        lines = [f"- **{r['model_id']}** on {r['evalset']}, {r['level']} {r['name']}: {r['previous']:.4f} -> "
                 f"{r['latest']:.4f} ({r['change']:+.4f}; {r['previous_date']} -> {r['latest_date']})"
                 for r in regressions]
        create_markdown_artifact(key="nightly-regressions", markdown=f"# Regressions beyond {threshold}\n\n"
                                 + "\n".join(lines))
    problems = ([f"{len(failed)} unit(s) failed: " + "; ".join(failed)] if failed else []) + (
        [f"{len(regressions)} regression(s) beyond {threshold}: " + "; ".join(
            f"{r['model_id']} on {r['evalset']} {r['name']} {r['change']:+.4f}" for r in regressions)]
        if regressions else [])
    if problems:
        raise PrefpipeError("nightly: " + " | ".join(problems))
    return {"run_id": run_id, "units": outcomes, "leaderboard": board}
