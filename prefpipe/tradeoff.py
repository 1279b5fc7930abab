"""The probability–quality trade-off of aligned models (Tan et al., "A Fundamental Trade-off in Aligned
Language Models and its Relation to Sampling Adaptors", EMNLP 2024).

An aligned model is, in theory, the prior tilted by a reward: p⁺(y) = p(y)·exp(r(y)/β)/Z. So for any corpus,

    mean log p(y) + mean r(y)/β = log Z + mean log p⁺(y),

and a corpus whose mean log p⁺ is within ε of −H(p⁺) (ε-typical) lies within ε of the line
mean log p + mean r/β = log Z − H(p⁺): across typical corpora, reward falls as prior likelihood rises
(slope −β), although across single strings the two may rise together.

This module holds the exact toy experiment (`toy`), the corpus identity and correlations that every
analysis shares (`corpus_means`, `spearman`, `pearson`), the summary of sampled corpora (`corpora_table`),
and the picture (`plot_tradeoff`). Sampling from real models is prefpipe.sampling's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from prefpipe.errors import InputError

# What the authors' notebook reports for the toy (src/experiments/toy_data_experiments/toy_experiment.ipynb
# of tanyjnaaman/probability-quality-paradox, and the paper's §4): entropies, typical corpora, correlations.
PAPER = {"entropy_aligned": 5.01, "entropy_prior": 6.87, "typical": 213, "string_spearman": 0.43,
         "string_pearson": 0.49, "corpus_spearman": -0.92, "corpus_pearson": -0.92}


@dataclass(frozen=True)
class ToyConfig:
    """The paper's toy: OUTCOMES outcomes, p⁺ ~ Dirichlet(ALPHA·1) (seed SEED), the prior
    p = softmax(p⁺^(1/SCALING) + U(−NOISE, NOISE)) and r = log(p⁺/p) (so β = 1, Z = 1); CORPORA corpora of
    DRAWS draws from p⁺ (corpus i drawn with seed i), the EPSILON-typical ones binned into BINS equal-width
    bins of mean log-prior and PER_BIN resampled from each bin (with replacement, seed SEED)."""

    outcomes: int = 1000
    alpha: float = 0.1
    scaling: float = 42.0
    noise: float = 0.42
    seed: int = 42
    corpora: int = 1000
    draws: int = 100_000
    epsilon: float = 0.001
    bins: int = 10
    per_bin: int = 100


@dataclass(frozen=True)
class Toy:
    """The toy's distributions, its corpora and what they show."""

    aligned: np.ndarray  # p⁺ over the outcomes
    prior: np.ndarray  # p
    reward: np.ndarray  # r = log p⁺ − log p
    means: np.ndarray  # per corpus: mean log p, mean r, mean log p⁺ (columns)
    typical: np.ndarray  # per corpus: ε-typical or not
    resampled: np.ndarray  # the typical corpora resampled per bin (indices into means)
    config: ToyConfig

    @property
    def entropy_aligned(self) -> float:
        return float(-(self.aligned * np.log(self.aligned)).sum())

    @property
    def entropy_prior(self) -> float:
        return float(-(self.prior * np.log(self.prior)).sum())

    def figures(self) -> dict[str, float]:
        """What the paper reports, measured here (its names are PAPER's)."""
        log_prior, log_reward = np.log(self.prior), self.reward
        corpus = self.means[self.resampled]
        return {"entropy_aligned": self.entropy_aligned, "entropy_prior": self.entropy_prior,
                "typical": int(self.typical.sum()),
                "string_spearman": spearman(log_prior, log_reward), "string_pearson": pearson(log_prior, log_reward),
                "corpus_spearman": spearman(corpus[:, 0], corpus[:, 1]),
                "corpus_pearson": pearson(corpus[:, 0], corpus[:, 1])}


def toy(config: ToyConfig = ToyConfig()) -> Toy:
    """The toy experiment, drawn as the authors' notebook draws it (numpy's legacy generator, seeded the
    same way, so the draws are the same), and summarised from counts: corpus i is the vector of how often
    each outcome was drawn (`draw_counts`), and its means are dot products (no per-draw Python)."""
    rng = np.random.RandomState(config.seed)
    aligned = rng.dirichlet([config.alpha] * config.outcomes)
    if not (aligned > 0).all():
        raise InputError("an outcome has probability 0 under Dirichlet(alpha): choose a larger alpha", field="alpha")
    logits = aligned ** (1 / config.scaling) + rng.uniform(-config.noise, config.noise, config.outcomes)
    prior = np.exp(logits - logits.max())
    prior /= prior.sum()
    reward = np.log(aligned) - np.log(prior)
    counts = np.stack([draw_counts(aligned, config.draws, i) for i in range(config.corpora)])  # seeded as the paper
    means = corpus_means(counts, np.log(prior), reward, np.log(aligned))
    entropy = float(-(aligned * np.log(aligned)).sum())
    typical = np.abs(means[:, 2] + entropy) < config.epsilon
    return Toy(aligned, prior, reward, means, typical, resample(means[:, 0], typical, config), config)


def draw_counts(p: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """How often each outcome occurs in DRAWS draws from P: the draws of numpy's legacy
    RandomState(SEED).choice(len(P), DRAWS, p=P), which takes for each u ~ U[0, 1) the outcome whose cdf
    interval [cdf(k−1), cdf(k)) holds it. Counted from the sorted u, a search per outcome rather than per
    draw (a tenth of the time)."""
    cdf = p.cumsum()
    cdf /= cdf[-1]  # as choice normalises it
    u = np.sort(np.random.RandomState(seed).random_sample(draws))
    return np.diff(np.searchsorted(u, cdf, side="left"), prepend=0).astype(np.float64)


def corpus_means(counts: np.ndarray, *values: np.ndarray) -> np.ndarray:
    """Per corpus (a row of COUNTS: how often each outcome occurs in it), the mean of each of VALUES (one
    value per outcome) over its strings: a column per VALUES."""
    return (counts @ np.column_stack(values)) / counts.sum(axis=1, keepdims=True)


def resample(mean_log_prior: np.ndarray, typical: np.ndarray, config: ToyConfig) -> np.ndarray:
    """The typical corpora in BINS equal-width bins of mean log-prior (pandas.cut's edges), then PER_BIN
    drawn with replacement from each non-empty bin, in bin order (as pandas' groupby().sample does with
    numpy's legacy generator seeded SEED): indices into MEAN_LOG_PRIOR."""
    chosen = np.flatnonzero(typical)
    if len(chosen) == 0:
        return chosen
    x = mean_log_prior[chosen]
    low, high = float(x.min()), float(x.max())
    edges = np.linspace(low, high, config.bins + 1)
    edges[0] -= (high - low) * 0.001 if high > low else 0.001 * abs(low) or 0.001
    bins = np.clip(np.searchsorted(edges, x, side="left") - 1, 0, config.bins - 1)  # (edge, next edge]
    rng = np.random.RandomState(config.seed)
    picked = []
    for b in np.unique(bins):
        members = chosen[bins == b]
        picked.append(members[rng.randint(0, len(members), config.per_bin)])
    return np.concatenate(picked)


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


def toy_tables(result: Toy) -> dict[str, pa.Table]:
    """The toy in the lake's shape: its outcomes as samples (one string each) and its resampled typical
    corpora, with the figures beside the paper's on every corpus row."""
    figures = result.figures()
    samples = pa.table({"kind": ["toy"] * len(result.prior), "outcome": np.arange(len(result.prior)),
                        "log_prior": np.log(result.prior), "reward": result.reward,
                        "log_aligned": np.log(result.aligned)})
    means = result.means[result.resampled]
    corpora = pa.table({"kind": ["toy"] * len(means), "corpus": result.resampled, "mean_log_prior": means[:, 0],
                        "mean_reward": means[:, 1], "mean_log_aligned": means[:, 2],
                        **{name: [value] * len(means) for name, value in figures.items()},
                        **{f"paper_{name}": [value] * len(means) for name, value in PAPER.items()}})
    return {"samples": samples, "corpora": corpora}


def plot_tradeoff(corpora: pa.Table, path: Path, title: str, samples: pa.Table | None = None) -> Path:
    """Mean reward against mean log-prior: a point per sampling setting, coloured by adaptor and labelled by
    τ, with the least-squares line; for the toy, its resampled corpora, and beside them its outcomes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = corpora.to_pylist()
    toy_run = rows and rows[0].get("kind") == "toy"
    figure, panels = plt.subplots(1, 2 if toy_run else 1, figsize=(10.5 if toy_run else 6.4, 4.4), dpi=120,
                                  squeeze=False)
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
        colours = {a: plt.get_cmap("tab10")(i) for i, a in enumerate(dict.fromkeys(r["adaptor"] for r in rows))}
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
    plt.close(figure)
    return path
