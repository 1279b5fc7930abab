"""The report's figures of a model: score history, calibration and length bias, as small SVGs (matplotlib's
object API: no pyplot and no backend to choose)."""

from __future__ import annotations

import io
import re
from math import ceil, nan
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from prefpipe.calibration import calibration_bins

UNIT = (0, 0.25, 0.5, 0.75, 1)  # the ticks of an axis in [0, 1]: few, so that a figure stays small


def plot_model(model_id: str, history: dict, gaps: dict, subsets: list[dict], figures: Path) -> None:
    """The model's three figures (SVG: text as text, fixed margins, few ticks: a few KB each)."""
    style = {"svg.fonttype": "none", "svg.hashsalt": "prefpipe", "font.size": 8, "font.sans-serif": ["DejaVu Sans"]}
    with matplotlib.rc_context(style):
        figure = Figure(figsize=(4, 3))
        axes = figure.subplots()
        for evalset, runs in sorted(history.items()):
            axes.plot([r["run_date"] for r in runs], [nan if r["score"] is None else r["score"] for r in runs],
                      "-o" if len(runs) == 1 else "-", markersize=3, label=evalset)
        dates = sorted({r["run_date"] for runs in history.values() for r in runs})
        shown = dates[::ceil(len(dates) / 6)]  # at most 6 dates, as days (matplotlib's would show hours)
        axes.set(ylabel="score", ylim=(0, 1), title="Score history", yticks=UNIT, xticks=shown,
                 xticklabels=[f"{d:%m-%d}" for d in shown])
        figure.autofmt_xdate()
        save(figure, figures / f"{model_id}-history.svg")

        figure, axes = unit_square("Calibration", "predicted σ(score gap)", "observed share")
        for evalset, deltas in sorted(gaps.items()):
            bins = [b for b in calibration_bins(deltas) if b["count"]]
            axes.plot([b["probability"] for b in bins], [b["true"] for b in bins], label=evalset)  # no markers: bytes
        save(figure, figures / f"{model_id}-calibration.svg")

        figure, axes = unit_square("Length bias (per subset)", "accuracy of the longer answer", "model accuracy")
        for evalset in sorted({r["evalset"] for r in subsets}):
            points = [r for r in subsets if r["evalset"] == evalset and r["longer_answer"] is not None]
            axes.plot([r["longer_answer"] for r in points], [r["accuracy"] for r in points], "o", markersize=3,
                      label=evalset)
        save(figure, figures / f"{model_id}-length.svg")


def unit_square(title: str, xlabel: str, ylabel: str) -> tuple:
    """A figure of two values in [0, 1] against each other, with the diagonal where they are equal."""
    figure = Figure(figsize=(4, 3))
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1), xticks=UNIT, yticks=UNIT)
    return figure, axes


def save(figure, path: Path) -> None:
    """Write FIGURE as a small SVG: fixed margins (tight_layout would draw it twice), matplotlib's indentation
    and identity rotations dropped, coordinates to 0.1 pt."""
    figure.axes[0].legend(fontsize=7)
    figure.subplots_adjust(left=0.15, right=0.97, top=0.9, bottom=0.2)
    svg = io.StringIO()
    figure.savefig(svg, format="svg", metadata=dict.fromkeys(("Date", "Creator", "Format", "Type")))
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
