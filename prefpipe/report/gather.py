"""What the morning report shows, gathered as plain rows from the lake and the warehouse-table copy through
the analysts' sandboxed connection (prefpipe.analyst)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pyarrow.parquet as pq

from prefpipe.analyst import analyst_connection
from prefpipe.lake import ANALYSES, RESULTS
from prefpipe.lake_runs import find_runs, in_written_order
from prefpipe.settings import Settings
from prefpipe.sql import sql
from prefpipe.store import Location


def gather(settings: Settings, threshold: float) -> dict:
    """Everything the pages show, as plain rows. The runs' headlines are read from every run (one pass over
    the lake); the subsets, score gaps and regressions from the latest two nights' runs only."""
    con, runs, _ = analyst_connection(settings.results, settings.tables, threshold)
    history = defaultdict(list)
    for run in query_rows(con, "report/runs.sql") if runs else []:
        history[run["model_id"], run["evalset"]].append(run)
    latest, folders = {}, []
    for (model_id, evalset), of_pair in history.items():
        last = of_pair[-1]
        earlier = [r for r in of_pair if r["run_date"] < last["run_date"]][-1:]
        latest[model_id, evalset] = last | {"previous": earlier[0]["score"] if earlier else None}
        folders += [RESULTS.partition(evalset=evalset, model=model_id, run_date=r["run_date"], run_id=r["run_id"])
                    for r in [last, *earlier]]
    models = registry_rows(con, "models", "model_id") | {name: combo | {"combo": True} for name, combo in
                                                         registry_rows(con, "combos", "name").items()}
    con.close()
    subsets, gaps, regressions = [], defaultdict(list), []
    if latest:
        con = analyst_connection(settings.results, None, threshold, only=folders).con
        subsets, regressions = query_rows(con, "report/subsets.sql"), query_rows(con, "queries/regressions.sql")
        for row in query_rows(con, "report/gaps.sql"):
            gaps[row["model_id"], row["evalset"]].append(row["score_gap"])
        con.close()
    return {"latest": latest, "history": history, "subsets": subsets, "gaps": gaps, "regressions": regressions,
            "models": models, "analyses": latest_analyses(settings.analysis), "written": datetime.now(UTC)}


def registry_rows(con, table: str, key: str) -> dict[str, dict]:
    """The rows of a registry table (models, combos) of the warehouse-table copy by KEY; {} without a copy."""
    if not con.execute(sql("report/has_view.sql"), [table]).fetchall()[0][0]:
        return {}
    return {r[key]: r for r in con.table(table).to_arrow_table().to_pylist()}


def query_rows(con, script: str) -> list[dict]:
    return con.sql(sql(script)).to_arrow_table().to_pylist()


def latest_analyses(analysis: Location) -> list[dict]:
    """The newest run of each kind of analysis: its folder, picture and table."""
    runs, _ = find_runs(analysis, ANALYSES)
    found = []
    for kind in ANALYSES:
        if of_kind := in_written_order(runs[kind.name], kind):
            run = of_kind[-1]
            found.append({"kind": kind.name, "run": run, "picture": run / kind.picture, "view": kind.view,
                          "caption": kind.caption, "run_id": run.name.partition("=")[2],
                          "run_date": run.parent.name.partition("=")[2],
                          "rows": pq.read_table(run / f"{kind.tables[-1]}.parquet").to_pylist()})
    return found
