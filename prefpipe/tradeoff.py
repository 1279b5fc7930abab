"""The probability–quality trade-off of aligned models (Tan et al., "A Fundamental Trade-off in Aligned
Language Models and its Relation to Sampling Adaptors", EMNLP 2024).

An aligned model is, in theory, the prior tilted by a reward: p⁺(y) = p(y)·exp(r(y)/β)/Z. So for any corpus,

    mean log p(y) + mean r(y)/β = log Z + mean log p⁺(y),

and a corpus whose mean log p⁺ is within ε of −H(p⁺) (ε-typical) lies within ε of the line
mean log p + mean r/β = log Z − H(p⁺): across typical corpora, reward falls as prior likelihood rises
(slope −β), although across single strings the two may rise together.

This module holds what every trade-off analysis shares: the corpus means and correlations (`corpus_means`,
`spearman`, `pearson`), the summary of sampled corpora (`corpora_table`) and the picture (`plot_tradeoff`).
Sampling from real models is prefpipe.sampling's; the paper's exact toy experiment is prefpipe.tradeoff_toy's.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure


def corpus_means(counts: np.ndarray, *values: np.ndarray) -> np.ndarray:
    """Per corpus (a row of COUNTS: how often each outcome occurs in it), the mean of each of VALUES (one
    value per outcome) over its strings: a column per VALUES."""
    return (counts @ np.column_stack(values)) / counts.sum(axis=1, keepdims=True)


def ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (as scipy.stats.rankdata's default)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    last = np.r_[first[1:], len(x)] - 1
    average = (first + last) / 2 + 1
    out = np.empty(len(x))
    out[order] = np.repeat(average, last - first + 1)
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; nan when either side is constant or there are fewer than 2 values."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    sx, sy = np.abs(dx).max(), np.abs(dy).max()
    if not (sx > 0 and sy > 0):
        return float("nan")
    dx, dy = dx / sx, dy / sy  # scaled first: squares of tiny or huge deviations neither underflow nor overflow
    return float(np.clip((dx * dy).sum() / np.sqrt((dx * dx).sum() * (dy * dy).sum()), -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ: Pearson's r of the average ranks."""
    return pearson(ranks(x), ranks(y))


def corpora_table(samples: pa.Table) -> pa.Table:
    """A row per sampling setting (a corpus): its samples' mean log-prior, reward, aligned log-likelihood
    (plain and under the adaptor's warping) and length; the string-level correlation of log-prior and reward
    within it; and the corpus-level correlation of the settings' mean log-prior and mean reward (one value,
    on every row)."""
    columns = {name: samples[name].to_numpy(zero_copy_only=False) for name in
               ("log_prior", "reward", "log_aligned", "log_aligned_warped", "tokens")}
    encoded = samples["setting"].combine_chunks().dictionary_encode()  # settings in the order they first occur
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    rows = []
    for code, setting in enumerate(encoded.dictionary.to_pylist()):
        mask = codes == code
        first = samples.slice(int(np.argmax(mask)), 1).to_pylist()[0]
        rows.append({"kind": "model", "setting": setting, "adaptor": first["adaptor"],
                     "adaptor_value": first["adaptor_value"], "temperature": first["temperature"],
                     "samples": int(mask.sum()),
                     **{f"mean_{name}": float(values[mask].mean()) for name, values in columns.items()},
                     "string_spearman": spearman(columns["log_prior"][mask], columns["reward"][mask]),
                     "string_pearson": pearson(columns["log_prior"][mask], columns["reward"][mask])})
    x, y = [r["mean_log_prior"] for r in rows], [r["mean_reward"] for r in rows]
    corpus = {"corpus_spearman": spearman(x, y), "corpus_pearson": pearson(x, y)}
    return pa.Table.from_pylist([r | corpus for r in rows])


def plot_tradeoff(corpora: pa.Table, path: Path, title: str, samples: pa.Table | None = None) -> Path:
    """Mean reward against mean log-prior: a point per sampling setting, coloured by adaptor and labelled by
    τ, with the least-squares line; for the toy, its resampled corpora, and beside them its outcomes."""
    rows = corpora.to_pylist()
    toy_run = rows and rows[0].get("kind") == "toy"
    figure = Figure(figsize=(10.5 if toy_run else 6.4, 4.4), dpi=120)
    panels = figure.subplots(1, 2 if toy_run else 1, squeeze=False)
    axes = panels[0][-1]
    x, y = np.array([r["mean_log_prior"] for r in rows]), np.array([r["mean_reward"] for r in rows])
    if toy_run:
        axes.scatter(x, y, s=8, alpha=0.4, color="tab:blue", label="typical corpora, resampled per bin")
        line = np.linspace(x.min(), x.max(), 2)  # β = 1, Z = 1: mean r = −H(p⁺) − mean log p
        axes.plot(line, -rows[0]["entropy_aligned"] - line, color="tab:red", linestyle="--", linewidth=1,
                  label="mean r = −H(p⁺) − mean log p (the ε-typical line)")
        strings = panels[0][0]
        strings.scatter(samples["log_prior"].to_numpy(), samples["reward"].to_numpy(), s=6, alpha=0.4,
                        color="tab:blue")
        strings.set_title(f"strings: ρ = {rows[0]['string_spearman']:.2f}, r = {rows[0]['string_pearson']:.2f}",
                          fontsize=9)
        strings.set_xlabel("log prior probability")
        strings.set_ylabel("reward")
        strings.grid(alpha=0.3)
    else:
        colours = {a: matplotlib.colormaps["tab10"](i) for i, a in enumerate(dict.fromkeys(r["adaptor"] for r in rows))}
        for adaptor, colour in colours.items():
            mine = [r for r in rows if r["adaptor"] == adaptor]
            axes.scatter([r["mean_log_prior"] for r in mine], [r["mean_reward"] for r in mine], color=colour,
                         label=mine[0]["setting"].rsplit(" ", 1)[0])
            for r in mine:
                axes.annotate(f"τ={r['temperature']:g}", (r["mean_log_prior"], r["mean_reward"]), fontsize=7,
                              textcoords="offset points", xytext=(3, 3), color=colour)
    if len(rows) > 1 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        line = np.linspace(x.min(), x.max(), 2)
        axes.plot(line, slope * line + intercept, color="black", linewidth=1,
                  label=f"corpora: ρ = {rows[0]['corpus_spearman']:.2f}, r = {rows[0]['corpus_pearson']:.2f}")
    axes.set_xlabel("mean log prior probability of a corpus")
    axes.set_ylabel("mean reward of a corpus")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    return path
