"""The report's pages, as HTML written from the gathered rows (prefpipe.report.gather): the leaderboard, a page
per model, the regressions and the analyses; with the package's style sheet and sorting script beside them."""

from __future__ import annotations

import json
import shutil
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from math import isfinite
from pathlib import Path

from prefpipe.config import Combination
from prefpipe.report.figures import plot_model

HERE = Path(__file__).resolve().parent
MARKER = ".prefpipe-report"  # in a report's folder: only such a folder (or an empty one) is ever replaced
ANALYSIS_ROWS = 50  # of an analysis's table (the toy's has a row per resampled corpus: 1,000)
SECTIONS = (("chat", "Chat"), ("chat_hard", "Chat Hard"), ("safety", "Safety"), ("reasoning", "Reasoning"))
PAGES = (("index.html", "Leaderboard"), ("regressions.html", "Regressions"), ("analyses.html", "Analyses"))


def render(data: dict, folder: Path, threshold: float) -> None:
    (folder / "models").mkdir()
    (folder / "figures").mkdir()
    (folder / MARKER).write_text("A prefpipe morning report: `prefpipe report` replaces this folder whole.\n")
    for name in ("style.css", "sort.js"):
        shutil.copyfile(HERE / name, folder / name)
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


def html_table(columns: list[str], rows: list[list[str]]) -> str:
    """A sortable table; ROWS hold cells already made (td())."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f'<table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def td(value: object, html: str | None = None, css: str = "") -> str:
    """A cell: a number shows (and sorts by) 4 decimals; text is escaped (HTML: made by the caller). An empty
    cell sorts last."""
    css = f' class="{css}"' if css else ""
    if value is None:
        return f'<td{css} data-v="">{html or ""}</td>'
    if isinstance(value, float):
        return f"<td{css}>{html or four_decimals(value)}</td>"
    return f"<td{css}>{html or escape(str(value))}</td>"


def four_decimals(value: float) -> str:
    """VALUE to 4 decimals, a half away from zero, as the leaderboard query's round(x, 4) shows it."""
    if not isfinite(value):
        return str(value)
    return str(Decimal(repr(value)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def change(latest: float | None, previous: float | None, threshold: float) -> str:
    """The change since the previous night: green up, red down (bold beyond the regression threshold)."""
    if latest is None or previous is None:
        return td(None, '<span class="muted">new</span>' if previous is None and latest is not None else "")
    delta = latest - previous
    css = "bad" if delta < -threshold else "down" if delta < 0 else "up" if delta > 0 else ""
    return td(delta, ("+" if delta >= 0 else "") + four_decimals(delta), css)


def model_link(model_id: str, up: str = "") -> str:
    return f'<a href="{up}models/{escape(model_id)}.html">{escape(model_id)}</a>'


def leaderboard(data: dict, threshold: float) -> str:
    if not data["latest"]:
        return ('<p class="empty">No results yet: register models (<code>prefpipe models add</code>, or train one) '
                'and evaluation sets (<code>prefpipe evalset add</code>), then run <code>prefpipe nightly</code>.</p>')
    columns = ["model", "set", "score", "change", *(name for _, name in SECTIONS), "contaminated",
               "contaminated share", "decontaminated score", "run date", "kind"]
    inactive = {m for m, record in data["models"].items() if record["active"] is False}
    mark = ' <span class="muted">inactive</span>'
    rows = [[td(m, model_link(m) + (mark if m in inactive else "")), td(s), td(r["score"]),
             change(r["score"], r["previous"], threshold),
             *(td(r[key]) for key, _ in SECTIONS), td(r["contaminated_examples"]), td(r["contaminated_share"]),
             td(r["decontaminated_score"]), td(str(r["run_date"])), td(r["kind"])]
            for (m, s), r in sorted(data["latest"].items(), key=best_first)]
    return (f"<p>The latest run of every model on every evaluation set, best first per set. score: the "
            f"RewardBench score (for a set of custom subsets, their accuracy); kind: classifier, dpo (a policy's "
            f"implicit reward), judge (a generative judge) or combination; change: since the previous night "
            f"(bold red: a regression, a drop beyond {threshold}); contaminated: the set's examples whose prompt "
            f"or a completion matches the model's training data (empty: not known). Click a column to sort.</p>\n"
            + html_table(columns, rows))


def best_first(item: tuple) -> tuple:
    (model_id, evalset), run = item
    return evalset, run["score"] is None, -(run["score"] or 0), model_id


def regressions(data: dict, threshold: float) -> str:
    found = data["regressions"]
    if not data["latest"]:
        return "<p class=\"empty\">No results yet.</p>"
    if not found:
        return f"<p>No regression in the latest night: nothing dropped more than {threshold}.</p>"
    rows = [[td(r["model_id"], model_link(r["model_id"])), td(r["evalset"]), td(r["level"]), td(r["name"]),
             td(r["previous"]), td(r["latest"]), change(r["latest"], r["previous"], threshold),
             td(f"{r['previous_date']} → {r['latest_date']}")] for r in found]
    return (f"<p>{len(found)} value(s) of the latest night dropped more than {threshold} against the previous "
            f"night.</p>\n"
            + html_table(["model", "set", "level", "name", "previous", "latest", "change", "nights"], rows))


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
                     + html_table(columns, [[td(r[c]) for c in columns] for r in shown]))
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
    subsets = [[td(r["evalset"]), td(r["subset"]), td(r["examples"]),
                td(r["accuracy"]), change(r["accuracy"], r["previous"], threshold), td(r["longer_answer"])]
               for r in data["subsets"] if r["model_id"] == model_id]
    runs = [[td(s), td(str(r["run_date"])), td(r["run_id"]), td(r["score"]), td(r["ece"]),
             td(r["model_hash"], f"<code>{escape(r['model_hash'][:16])}</code>"), td(r["code_version"])]
            for s, r in sorted(latest.items())]
    return ("\n".join(figures) + "\n<h2>Subsets of the latest run</h2>\n"
            + html_table(["set", "subset", "examples", "accuracy", "change", "longer answer"], subsets)
            + "\n<h2>Latest runs</h2>\n"
            + html_table(["set", "run date", "run", "score", "ECE", "model hash", "code version"], runs)
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
    facts = {"kind": model.get("kind"), "judge": model.get("judge"), "path": model["path"], "base": model["base"],
             "loss": model["loss"], "created": model["created_at"],
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
