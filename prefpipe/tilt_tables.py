"""The reward-tilt analysis as tables and a picture: per prompt and aggregated, for every β of the tilted
policy and every n of best-of-n (prefpipe.tilt), and the reward–KL frontier (E[r] against KL, the β curve
and the best-of-n points on the same axes). Tables are built from numpy arrays, never row by row."""

from __future__ import annotations

import math
import textwrap
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.figure import Figure

from prefpipe.config import TiltConfig
from prefpipe.tilt import Candidates, best_of_n, tilt

PIECE_ROWS = 65_536  # candidates per piece: its arrays stay in the CPU cache through all its analyses, and two
# pieces run at a time (benchmarks/analysis.py measures it against passes over the whole arrays)


def tilt_tables(prompt_ids, reward: np.ndarray, log_ref: np.ndarray | None, config: TiltConfig,
                ref_source: str) -> tuple[pa.Table, pa.Table]:
    """(per prompt, frontier): a row per prompt and β or n, and a row per β or n averaged over prompts.
    PROMPT_IDS: anything pyarrow reads as strings (an Arrow column, a list, a numpy array)."""
    column = prompt_ids if isinstance(prompt_ids, pa.ChunkedArray) else pa.chunked_array([pa.array(prompt_ids)])
    column = column.combine_chunks()
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    reward = np.asarray(reward, dtype=np.float64)
    log_ref = np.zeros_like(reward) if log_ref is None else np.asarray(log_ref, dtype=np.float64)
    if not np.all(codes[1:] >= codes[:-1]):  # each prompt's candidates together (a rewards run has them so)
        order = np.argsort(codes, kind="stable")
        codes, reward, log_ref = codes.take(order), reward.take(order), log_ref.take(order)
    analyses = [("tilt", b) for b in config.betas] + [("best_of_n", n) for n in config.ns]
    with ThreadPoolExecutor(2) as pool:  # numpy releases the GIL: two cores, two pieces at a time
        first, shared, out = _analyse(pool, analyses, codes, reward, log_ref)
        prompt = encoded.dictionary.take(pa.array(first))  # one column, shared by every part
        assembled = pool.map(partial(_assemble, prompt, shared), analyses, out)
        parts, means = zip(*assembled, strict=True)
    sourced = [pa.concat_tables(parts, promote_options="default"), pa.Table.from_pylist(list(means))]
    return tuple(t.append_column("ref_source", _constant(ref_source, len(t))) for t in sourced)


def _analyse(pool: ThreadPoolExecutor, analyses: list[tuple[str, float]], codes: np.ndarray, reward: np.ndarray,
             log_ref: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """Every analysis over candidates grouped by prompt, piece by piece in POOL: per prompt, its code and
    the columns every analysis shares (its number of candidates, E_π_ref[r]), and per analysis its own."""
    pieces, prompts = _pieces(codes)
    size = int(prompts[-1])
    first = np.empty(size, dtype=codes.dtype)
    shared = {"candidates": np.empty(size, dtype=np.int64), "ref_reward": np.empty(size)}
    out = [{name: np.empty(size) for name in COLUMNS[kind]} for kind, _ in analyses]

    def piece(i: int) -> None:  # writes the piece's prompts' rows of FIRST, SHARED and OUT
        (start, end), rows = pieces[i], slice(prompts[i], prompts[i + 1])
        c = Candidates.build(codes[start:end], reward[start:end], log_ref[start:end])
        first[rows], shared["candidates"][rows], shared["ref_reward"][rows] = c.prompt[c.starts], c.counts, c.ref_reward
        for (kind, value), columns in zip(analyses, out, strict=True):
            for name, values in _analysis(c, kind, value).items():
                columns[name][rows] = values

    list(pool.map(piece, range(len(pieces))))
    return first, shared, out


def _assemble(prompt: pa.Array, shared: dict[str, np.ndarray], analysis: tuple[str, float],
              own: dict[str, np.ndarray]) -> tuple[pa.Table, dict]:
    """One analysis's per-prompt table and its means over prompts."""
    kind, value = analysis
    key = {"beta": value} if kind == "tilt" else {"n": int(value)}
    values = {"ref_reward": shared["ref_reward"], **own}
    if kind == "best_of_n":
        values["kl_bound"] = np.full(len(prompt), np.log(value) - (value - 1) / value)
    mean = {"kind": kind, "beta": None, "n": None, **key, "prompts": len(prompt),
            **{name: float(np.mean(values[name])) if name in values else None for name in MEANS}}
    return _rows(kind, prompt, shared["candidates"], **key, **values), mean


COLUMNS = {"tilt": ("kl", "expected_reward", "log_z", "effective_candidates"),
           "best_of_n": ("kl", "expected_reward", "win_rate")}
MEANS = ("kl", "expected_reward", "ref_reward", "effective_candidates", "kl_bound", "win_rate")


def _pieces(codes: np.ndarray) -> tuple[list[tuple[int, int]], np.ndarray]:
    """[start, end) of pieces of about PIECE_ROWS candidates, cut between prompts, and where each piece's
    prompts begin among all prompts (with the number of prompts last)."""
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, dtype=np.int64)
    first = np.unique(np.searchsorted(starts, np.arange(0, len(codes), PIECE_ROWS)))  # a piece's first prompt
    cuts = [*starts[first].tolist(), len(codes)]
    return list(pairwise(cuts)), np.r_[first, len(starts)]


def _analysis(c: Candidates, kind: str, value: float) -> dict[str, np.ndarray]:
    """One β or n over candidates C: a per-prompt array per output column."""
    if kind == "tilt":
        t = tilt(c, value)
        return {"kl": t.kl, "expected_reward": t.expected_reward, "log_z": t.log_z,
                "effective_candidates": t.effective_candidates}
    b = best_of_n(c, int(value))
    return {"kl": b.kl, "expected_reward": b.expected_reward, "win_rate": b.win_rate}


def _rows(kind: str, prompt: pa.Array, counts: np.ndarray, *, beta: float | None = None, n: int | None = None,
          **values: np.ndarray) -> pa.Table:
    size = len(prompt)
    return pa.table({"kind": _constant(kind, size), "prompt_id": prompt,
                     "beta": pa.nulls(size, pa.float64()) if beta is None else pa.array(np.full(size, beta)),
                     "n": pa.nulls(size, pa.int64()) if n is None else pa.array(np.full(size, n, dtype=np.int64)),
                     "candidates": pa.array(counts), **{name: pa.array(np.asarray(v, dtype=np.float64))
                                              for name, v in values.items()}})


def _constant(value: str, size: int) -> pa.Array:
    """A column of one string, dictionary-encoded: no list of SIZE strings is made (nor stored)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(size, dtype=np.int32)), pa.array([value]))


def plot_frontier(frontier: pa.Table, path: Path, title: str) -> Path:
    """E[r] against KL(π‖π_ref): the tilted policies (a curve over β) and best-of-n (points), averaged over
    prompts, with π_ref at KL 0."""
    rows = frontier.to_pylist()
    tilted = sorted((r for r in rows if r["kind"] == "tilt"), key=lambda r: r["kl"])
    best = [r for r in rows if r["kind"] == "best_of_n"]
    figure = Figure(figsize=(6.4, 4.4), dpi=120)
    axes = figure.subplots()
    axes.plot([0] + [r["kl"] for r in tilted], [tilted[0]["ref_reward"]] + [r["expected_reward"] for r in tilted],
              "-o", color="tab:blue", label="tilted π_ref·exp(r/β)")
    axes.plot([r["kl"] for r in best], [r["expected_reward"] for r in best], "s", color="tab:orange",
              label="best-of-n")
    _labels(axes, rows, tilted, "β={beta:g}", (4, -10), "tab:blue")
    _labels(axes, rows, best, "n={n}", (4, 4), "tab:orange")
    axes.set_xlabel("KL(π ‖ π_ref), nats (mean over prompts)")
    axes.set_ylabel("expected reward (mean over prompts)")
    axes.set_title(textwrap.fill(title, 90), fontsize=8)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    return path


def _labels(axes, rows: list[dict], points: list[dict], text: str, offset: tuple[int, int], color: str) -> None:
    """Label POINTS, leaving out a label whose point lies within 3% of the plot of one labelled before."""
    span = [max(max(r[k] for r in rows) - min(min(r[k] for r in rows), 0), 1e-12) for k in ("kl", "expected_reward")]
    placed: list[tuple[float, float]] = []
    for r in points:
        where = (r["kl"] / span[0], r["expected_reward"] / span[1])
        if all(math.dist(where, other) > 0.03 for other in placed):
            placed.append(where)
            axes.annotate(text.format(**r), (r["kl"], r["expected_reward"]), textcoords="offset points", xytext=offset,
                          fontsize=7, color=color)
