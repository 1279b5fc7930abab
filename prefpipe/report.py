"""The morning report: the nightly results as a static site (`prefpipe report`; the nightly flow writes it after
every run).

    index.html          the leaderboard: the latest run per model and set, and its change since the previous night
    models/ID.html      a model: score history, subsets and their changes, calibration, length bias, provenance
    regressions.html    every regression of the latest night, each linked to its model
    analyses.html       the reward–KL frontier and the probability–quality trade-off, when they have runs
    figures/            the pictures (SVG, matplotlib; the analyses' own PNGs), each with a caption on its page
    style.css, sort.js  sorting a table by a column is the only script: without it the pages read as written

It reads what analysts read (prefpipe.analyst's sandboxed connection over the lake and the warehouse-table
copy), never the warehouse, and opens from file:// with no server and no network. It is written whole: staged,
then swapped in place of the previous report (prefpipe.files.replace_whole).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from math import ceil, isfinite, nan
from pathlib import Path

import pyarrow.parquet as pq

from prefpipe.analyst import analyst_connection
from prefpipe.config import Combination
from prefpipe.errors import InputError
from prefpipe.files import replace_whole
from prefpipe.lake import ANALYSES, in_written_order, partitions
from prefpipe.metrics import calibration_bins
from prefpipe.settings import Settings, check_threshold
from prefpipe.sql import sql

UNIT = (0, 0.25, 0.5, 0.75, 1)  # the ticks of an axis in [0, 1]: few, so that a figure stays small
ANALYSIS_ROWS = 50  # of an analysis's table (the toy's has a row per resampled corpus: 1,000)
MARKER = ".prefpipe-report"  # in a report's folder: only such a folder (or an empty one) is ever replaced
SECTIONS = (("chat", "Chat"), ("chat_hard", "Chat Hard"), ("safety", "Safety"), ("reasoning", "Reasoning"))
PAGES = (("index.html", "Leaderboard"), ("regressions.html", "Regressions"), ("analyses.html", "Analyses"))
ANALYSIS_PLOTS = {"tilt": ("frontier.png", "tilt_frontier", "The reward–KL frontier of the tilted policy "
                           "π_ref·exp(r/β) and of best-of-n, averaged over prompts"),
                  "tradeoff": ("tradeoff.png", "tradeoff_corpora", "The probability–quality trade-off: mean "
                               "log-probability under the prior against mean reward, per sampling setting")}
STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:72em;padding:0 1em;color:#222}
nav a{margin-right:1.2em}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left}
td{font-variant-numeric:tabular-nums;white-space:nowrap}th{background:#f4f4f4;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
.up{color:#0a7d2c}.down{color:#c0262d}.bad{color:#c0262d;font-weight:600}.muted{color:#777}
figure{display:inline-block;margin:.5em 1.5em .5em 0;vertical-align:top}figcaption{max-width:28em;font-size:.9em}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0}
code{font-size:.9em;word-break:break-all}
"""
SORT = """// Sort a table by the column whose header is clicked (again: the other way). Empty cells stay last.
for (const th of document.querySelectorAll("table.sortable th")) {
  th.addEventListener("click", () => {
    const column = th.cellIndex, body = th.closest("table").tBodies[0];
    const up = th.getAttribute("aria-sort") !== "ascending";
    for (const other of th.parentNode.cells) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    const key = row => row.cells[column].dataset.v ?? row.cells[column].textContent.trim();
    const order = (a, b) => {
      const x = key(a), y = key(b);
      if (x === "" || y === "") return (x === "") - (y === "");
      const c = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y;
      return up ? c : -c;
    };
    body.append(...[...body.rows].sort(order));
  });
}
"""


def write_report(settings: Settings, out: Path | None = None, threshold: float | None = None) -> Path:
    """Write the report of the lake and the warehouse-table copy of SETTINGS to OUT (default settings.report),
    whole; return its index.html. THRESHOLD: the drop that counts as a regression (settings')."""
    out = check_out(Path(out or settings.report))
    threshold = check_threshold(settings.regression_threshold if threshold is None else threshold)
    data = gather(settings, threshold)
    replace_whole(out, lambda staging: render(data, staging, threshold))
    return out / "index.html"


def check_out(out: Path) -> Path:
    """Where a report may be written for OUT: its links resolved (the report goes where a link points), a new
    or empty folder, or an earlier report; never the current folder or one that holds it."""
    if out.is_symlink() and not out.exists():
        raise InputError(f"{out} is a link to {os.readlink(out)}, which does not exist", field="--out")
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder", field="--out")
    if Path.cwd().resolve().is_relative_to(out):
        raise InputError(f"{out} is the current folder or holds it: give a folder beside it", field="--out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise InputError(f"{out} holds other files (no {MARKER}): give a new or empty folder", field="--out")
    return out


# -- what the report shows ------------------------------------------------------------------------------------

def gather(settings: Settings, threshold: float) -> dict:
    """Everything the pages show, as plain rows. The runs' headlines are read from every run (one pass over
    the lake); the subsets, score gaps and regressions from the latest two nights' runs only."""
    con, runs, _ = analyst_connection(settings.results, settings.tables, threshold)
    history = defaultdict(list)
    for run in rows(con, "report/runs.sql") if runs else []:
        history[run["model_id"], run["evalset"]].append(run)
    latest, folders = {}, []
    for (model_id, evalset), of_pair in history.items():
        last = of_pair[-1]
        earlier = [r for r in of_pair if r["run_date"] < last["run_date"]][-1:]
        latest[model_id, evalset] = last | {"previous": earlier[0]["score"] if earlier else None}
        folders += [settings.results / f"evalset={evalset}/model={model_id}/run_date={r['run_date']}/run_id="
                    f"{r['run_id']}" for r in [last, *earlier]]
    models = registry(con, "models", "model_id") | {name: combo | {"combo": True} for name, combo in
                                                    registry(con, "combos", "name").items()}
    con.close()
    subsets, gaps, regressions = [], defaultdict(list), []
    if latest:
        con = analyst_connection(settings.results, None, threshold, only=folders).con
        subsets, regressions = rows(con, "report/subsets.sql"), rows(con, "queries/regressions.sql")
        for row in rows(con, "report/gaps.sql"):
            gaps[row["model_id"], row["evalset"]].append(row["score_gap"])
        con.close()
    return {"latest": latest, "history": history, "subsets": subsets, "gaps": gaps, "regressions": regressions,
            "models": models, "analyses": latest_analyses(settings.analysis), "written": datetime.now(UTC)}


def registry(con, table: str, key: str) -> dict[str, dict]:
    """The rows of a registry table (models, combos) of the warehouse-table copy by KEY; {} without a copy."""
    if not con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [table]).fetchall()[0][0]:
        return {}
    return {r[key]: r for r in con.table(table).to_arrow_table().to_pylist()}


def rows(con, script: str) -> list[dict]:
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


# -- the pages ------------------------------------------------------------------------------------------------

def render(data: dict, folder: Path, threshold: float) -> None:
    (folder / "models").mkdir()
    (folder / "figures").mkdir()
    (folder / MARKER).write_text("A prefpipe morning report: `prefpipe report` replaces this folder whole.\n")
    (folder / "style.css").write_text(STYLE)
    (folder / "sort.js").write_text(SORT)
    written = f"written {data['written']:%Y-%m-%d %H:%M} UTC"
    (folder / "index.html").write_text(page("Leaderboard", leaderboard(data, threshold), written))
    (folder / "regressions.html").write_text(page("Regressions", regressions(data, threshold), written))
    (folder / "analyses.html").write_text(page("Analyses", analyses(data, folder), written))
    for model_id in sorted({m for m, _ in data["latest"]}):
        (folder / "models" / f"{model_id}.html").write_text(
            page(f"Model {model_id}", model_page(data, model_id, folder, threshold), written, up="../"))


def page(title: str, body: str, written: str, up: str = "") -> str:
    links = " ".join(f'<a href="{up}{href}">{name}</a>' for href, name in PAGES)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · prefpipe</title>'
            f'<meta name="viewport" content="width=device-width"><link rel="stylesheet" href="{up}style.css">'
            f'</head>\n<body><nav>{links}<span class="muted">prefpipe morning report, {written}</span></nav>\n'
            f'<h1>{escape(title)}</h1>\n{body}\n<script src="{up}sort.js"></script></body></html>\n')


def table(columns: list[str], rows: list[list[str]]) -> str:
    """A sortable table; ROWS hold cells already made (cell())."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f'<table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def cell(value: object, html: str | None = None, css: str = "") -> str:
    """A cell: a number shows (and sorts by) 4 decimals; text is escaped (HTML: made by the caller). An empty
    cell sorts last."""
    css = f' class="{css}"' if css else ""
    if value is None:
        return f'<td{css} data-v="">{html or ""}</td>'
    if isinstance(value, float):
        return f"<td{css}>{html or four(value)}</td>"
    return f"<td{css}>{html or escape(str(value))}</td>"


def four(value: float) -> str:
    """VALUE to 4 decimals, a half away from zero, as the leaderboard query's round(x, 4) shows it."""
    if not isfinite(value):
        return str(value)
    return str(Decimal(repr(value)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def change(latest: float | None, previous: float | None, threshold: float) -> str:
    """The change since the previous night: green up, red down (bold beyond the regression threshold)."""
    if latest is None or previous is None:
        return cell(None, '<span class="muted">new</span>' if previous is None and latest is not None else "")
    delta = latest - previous
    css = "bad" if delta < -threshold else "down" if delta < 0 else "up" if delta > 0 else ""
    return cell(delta, ("+" if delta >= 0 else "") + four(delta), css)


def model_link(model_id: str, up: str = "") -> str:
    return f'<a href="{up}models/{escape(model_id)}.html">{escape(model_id)}</a>'


def leaderboard(data: dict, threshold: float) -> str:
    if not data["latest"]:
        return ('<p class="empty">No results yet: register models (<code>prefpipe models add</code>, or train one) '
                'and evaluation sets (<code>prefpipe evalset add</code>), then run <code>prefpipe nightly</code>.</p>')
    columns = ["model", "set", "score", "change", *(name for _, name in SECTIONS), "contaminated",
               "contaminated share", "decontaminated score", "run date"]
    inactive = {m for m, record in data["models"].items() if record["active"] is False}
    mark = ' <span class="muted">inactive</span>'
    rows = [[cell(m, model_link(m) + (mark if m in inactive else "")), cell(s), cell(r["score"]),
             change(r["score"], r["previous"], threshold),
             *(cell(r[key]) for key, _ in SECTIONS), cell(r["contaminated_examples"]), cell(r["contaminated_share"]),
             cell(r["decontaminated_score"]), cell(str(r["run_date"]))]
            for (m, s), r in sorted(data["latest"].items(), key=best_first)]
    return (f"<p>The latest run of every model on every evaluation set, best first per set. score: the "
            f"RewardBench score (for a set of custom subsets, their accuracy); change: since the previous night "
            f"(bold red: a regression, a drop beyond {threshold}); contaminated: the set's examples whose prompt "
            f"or a completion matches the model's training data (empty: not known). Click a column to sort.</p>\n"
            + table(columns, rows))


def best_first(item: tuple) -> tuple:
    (model_id, evalset), run = item
    return evalset, run["score"] is None, -(run["score"] or 0), model_id


def regressions(data: dict, threshold: float) -> str:
    found = data["regressions"]
    if not data["latest"]:
        return "<p class=\"empty\">No results yet.</p>"
    if not found:
        return f"<p>No regression in the latest night: nothing dropped more than {threshold}.</p>"
    rows = [[cell(r["model_id"], model_link(r["model_id"])), cell(r["evalset"]), cell(r["level"]), cell(r["name"]),
             cell(r["previous"]), cell(r["latest"]), change(r["latest"], r["previous"], threshold),
             cell(f"{r['previous_date']} → {r['latest_date']}")] for r in found]
    return (f"<p>{len(found)} value(s) of the latest night dropped more than {threshold} against the previous "
            f"night.</p>\n" + table(["model", "set", "level", "name", "previous", "latest", "change", "nights"], rows))


def analyses(data: dict, folder: Path) -> str:
    if not data["analyses"]:
        return ("<p class=\"empty\">No analyses yet: <code>prefpipe analyse tilt</code> and <code>prefpipe analyse "
                "tradeoff</code> write them.</p>")
    parts = []
    for a in data["analyses"]:
        parts.append(f"<h2>{escape(a['kind'])}</h2>")
        if a["picture"].is_file():
            name = f"{a['kind']}-{a['picture'].name}"
            shutil.copyfile(a["picture"], folder / "figures" / name)
            parts.append(figure(f"figures/{name}", f"{a['caption']}; run {a['run_id']} of {a['run_date']}."))
        columns = [c for c in a["rows"][0] if not c.endswith("_id") and c not in ("run_date", "analysis")] \
            if a["rows"] else []
        shown = a["rows"][:ANALYSIS_ROWS]
        parts.append(f"<p>{len(shown)} of the run's {len(a['rows'])} rows (all of them: the view "
                     f"<code>{a['view']}</code>, <code>WHERE run_id = '{escape(a['run_id'])}'</code>).</p>"
                     + table(columns, [[cell(r[c]) for c in columns] for r in shown]))
    return "\n".join(parts)


def figure(src: str, caption: str) -> str:
    return (f'<figure><img src="{escape(src)}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def model_page(data: dict, model_id: str, folder: Path, threshold: float) -> str:
    latest = {s: r for (m, s), r in data["latest"].items() if m == model_id}
    history = {s: h for (m, s), h in data["history"].items() if m == model_id}
    newest = max(r["run_date"] for r in latest.values())
    which = "run " + ", ".join(sorted({f"{r['run_id']} of {r['run_date']}" for r in latest.values()}))
    figures = [figure(f"../figures/{model_id}-history.svg",
                      f"Score of {model_id} on each set over its runs, up to {newest}: a line through its runs "
                      "(for a set of custom subsets, their accuracy)."),
               figure(f"../figures/{model_id}-calibration.svg",
                      f"Calibration of {model_id} on each set ({which}): the share of pairs ordered as predicted "
                      "against the predicted probability σ(score gap), counted both ways, 10 bins."),
               figure(f"../figures/{model_id}-length.svg",
                      f"Length bias of {model_id} ({which}): per subset, its accuracy against always picking the "
                      "longer answer; below the diagonal, length would do better.")]
    plot_model(model_id, history, {s: data["gaps"].get((model_id, s), []) for s in latest},
               [r for r in data["subsets"] if r["model_id"] == model_id], folder / "figures")
    subsets = [[cell(r["evalset"]), cell(r["subset"]), cell(r["examples"]),
                cell(r["accuracy"]), change(r["accuracy"], r["previous"], threshold), cell(r["longer_answer"])]
               for r in data["subsets"] if r["model_id"] == model_id]
    runs = [[cell(s), cell(str(r["run_date"])), cell(r["run_id"]), cell(r["score"]), cell(r["ece"]),
             cell(r["model_hash"], f"<code>{escape(r['model_hash'][:16])}</code>"), cell(r["code_version"])]
            for s, r in sorted(latest.items())]
    return ("\n".join(figures) + "\n<h2>Subsets of the latest run</h2>\n"
            + table(["set", "subset", "examples", "accuracy", "change", "longer answer"], subsets)
            + "\n<h2>Latest runs</h2>\n"
            + table(["set", "run date", "run", "score", "ECE", "model hash", "code version"], runs)
            + "\n<h2>Provenance</h2>\n" + provenance(data["models"].get(model_id)))


def provenance(model: dict | None) -> str:
    if model is None:
        return "<p class=\"muted\">Not in the registry copy (data/tables): trained or registered elsewhere.</p>"
    if model.get("combo"):
        facts = {"definition": Combination.from_row(model).definition()} | {
            k: model[k] for k in ("models", "weights", "created_at", "active")}
        return "<p>A combination of reward models (prefpipe combos).</p>" + definitions(facts)
    hyper = json.loads(model["hyperparameters"]) if model.get("hyperparameters") else {}
    metrics = json.loads(model["metrics"]) if model.get("metrics") else {}
    facts = {"path": model["path"], "base": model["base"], "loss": model["loss"], "created": model["created_at"],
             "active": model["active"], "training pairs": model["pairs"], "data hash": model["data_hash"],
             "batches": model["batch_ids"], "reference": model.get("reference"),
             "excluded": model.get("excluded")}
    facts |= {f"held-out {split}": ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in values.items())
              for split, values in metrics.items() if isinstance(values, dict)}
    return (definitions(facts) + "\n<h2>Hyperparameters</h2>\n"
            + definitions({k: json.dumps(v) for k, v in sorted(hyper.items())}))


def definitions(facts: dict) -> str:
    """A definition list of the FACTS that are known (not None), as text (a list: its items, comma-separated)."""
    text = {k: ", ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in facts.items() if v is not None}
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in text.items()) + "</dl>"


# -- the figures ----------------------------------------------------------------------------------------------

def plot_model(model_id: str, history: dict, gaps: dict, subsets: list[dict], figures: Path) -> None:
    """The model's three figures (SVG: text as text, fixed margins, few ticks: a few KB each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = {"svg.fonttype": "none", "svg.hashsalt": "prefpipe", "font.size": 8, "font.sans-serif": ["DejaVu Sans"]}
    with plt.rc_context(style):
        figure, axes = plt.subplots(figsize=(4, 3))
        for evalset, runs in sorted(history.items()):
            axes.plot([r["run_date"] for r in runs], [nan if r["score"] is None else r["score"] for r in runs],
                      "-o" if len(runs) == 1 else "-", markersize=3, label=evalset)
        dates = sorted({r["run_date"] for runs in history.values() for r in runs})
        shown = dates[::ceil(len(dates) / 6)]  # at most 6 dates, as days (matplotlib's would show hours)
        axes.set(ylabel="score", ylim=(0, 1), title="Score history", yticks=UNIT, xticks=shown,
                 xticklabels=[f"{d:%m-%d}" for d in shown])
        figure.autofmt_xdate()
        save(figure, figures / f"{model_id}-history.svg")

        figure, axes = unit_square(plt, "Calibration", "predicted σ(score gap)", "observed share")
        for evalset, deltas in sorted(gaps.items()):
            bins = [b for b in calibration_bins(deltas) if b["count"]]
            axes.plot([b["probability"] for b in bins], [b["true"] for b in bins], label=evalset)  # no markers: bytes
        save(figure, figures / f"{model_id}-calibration.svg")

        figure, axes = unit_square(plt, "Length bias (per subset)", "accuracy of the longer answer", "model accuracy")
        for evalset in sorted({r["evalset"] for r in subsets}):
            points = [r for r in subsets if r["evalset"] == evalset and r["longer_answer"] is not None]
            axes.plot([r["longer_answer"] for r in points], [r["accuracy"] for r in points], "o", markersize=3,
                      label=evalset)
        save(figure, figures / f"{model_id}-length.svg")


def unit_square(plt, title: str, xlabel: str, ylabel: str) -> tuple:
    """A figure of two values in [0, 1] against each other, with the diagonal where they are equal."""
    figure, axes = plt.subplots(figsize=(4, 3))
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1), xticks=UNIT, yticks=UNIT)
    return figure, axes


def save(figure, path: Path) -> None:
    """Write FIGURE as a small SVG: fixed margins (tight_layout would draw it twice), matplotlib's indentation
    and identity rotations dropped, coordinates to 0.1 pt."""
    import matplotlib.pyplot as plt

    figure.axes[0].legend(fontsize=7)
    figure.subplots_adjust(left=0.15, right=0.97, top=0.9, bottom=0.2)
    svg = io.StringIO()
    figure.savefig(svg, format="svg", metadata=dict.fromkeys(("Date", "Creator", "Format", "Type")))
    plt.close(figure)
    path.write_text(small_svg(svg.getvalue()))


def small_svg(text: str) -> str:
    """matplotlib's SVG, the same picture in half the bytes: no indentation, identity rotations or names of
    groups; coordinates to 0.1 pt; each distinct style attribute once, as a CSS class."""
    text = re.sub(r">\s+<", "><", text.replace(" \n", " "))
    text = re.sub(r' transform="rotate\(-0 [0-9.]+ [0-9.]+\)"|(?<=<g) id="[^"]*"', "", text)
    text = re.sub(r"<[^>]+>", lambda tag: re.sub(r"(\d\.\d)\d+", r"\1", tag.group()), text)
    classes: dict[str, str] = {}
    text = re.sub(r' style="([^"]*)"', lambda m: f' class="s{classes.setdefault(m[1], str(len(classes)))}"', text)
    rules = "".join(f".s{name}{{{style}}}" for style, name in classes.items())
    return text.replace("</style>", f"{rules}</style>", 1)
