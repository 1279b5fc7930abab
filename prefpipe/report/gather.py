"""What the morning report shows, gathered as plain rows from the lake and the warehouse-table copy through
the analysts' sandboxed connection (prefpipe.analyst)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from prefpipe.analyst import analyst_connection
from prefpipe.lake import ANALYSES, in_written_order, partitions
from prefpipe.settings import Settings
from prefpipe.sql import sql

ANALYSIS_PLOTS = {"tilt": ("frontier.png", "tilt_frontier", "The reward–KL frontier of the tilted policy "
                           "π_ref·exp(r/β) and of best-of-n, averaged over prompts"),
                  "tradeoff": ("tradeoff.png", "tradeoff_corpora", "The probability–quality trade-off: mean "
                               "log-probability under the prior against mean reward, per sampling setting")}


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
        folders += [settings.results / f"evalset={evalset}/model={model_id}/run_date={r['run_date']}/run_id="
                    f"{r['run_id']}" for r in [last, *earlier]]
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


def latest_analyses(analysis: Path) -> list[dict]:
    """The newest run of each kind of analysis: its folder, picture and table."""
    runs, _ = partitions(analysis, ANALYSES)
    found = []
    for kind, (picture, view, caption) in ANALYSIS_PLOTS.items():
        of_kind = in_written_order([r for r in runs if r.parent.parent.name == f"analysis={kind}"], ANALYSES)
        if of_kind:
            run = of_kind[-1]
            found.append({"kind": kind, "run": run, "picture": run / picture, "view": view, "caption": caption,
                          "run_id": run.name.partition("=")[2], "run_date": run.parent.name.partition("=")[2],
                          "rows": pq.read_table(run / ANALYSES.kinds[kind][1]).to_pylist()})
    return found
