"""The morning report: the nightly results as a static site (`prefpipe report`; the nightly flow writes it after
every run).

    index.html          the leaderboard: the latest run per model and set, and its change since the previous night
    models/ID.html      a model: score history, subsets and their changes, calibration, length bias, provenance
    regressions.html    every regression of the latest night, each linked to its model
    analyses.html       the reward–KL frontier and the probability–quality trade-off, when they have runs
    figures/            the pictures (SVG, matplotlib; the analyses' own PNGs), each with a caption on its page
    style.css, sort.js  sorting a table by a column is the only script: without it the pages read as written
                        (both are files of this package, copied as they are)

Gathering (prefpipe.report.gather), pages (prefpipe.report.pages) and figures (prefpipe.report.figures) are
apart. It reads what analysts read (prefpipe.analyst's sandboxed connection over the lake and the warehouse-table
copy), never the warehouse, and opens from file:// with no server and no network. It is written whole: staged,
then swapped in place of the previous report (prefpipe.files.replace_whole).
"""

from __future__ import annotations

import os
from pathlib import Path

from prefpipe.errors import InputError
from prefpipe.files import replace_whole
from prefpipe.report.gather import gather
from prefpipe.report.pages import MARKER, render
from prefpipe.settings import Settings, check_threshold

__all__ = ["MARKER", "check_out", "write_report"]


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
