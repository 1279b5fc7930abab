"""The exact toy experiment of Tan et al. (2024, §4; prefpipe.tradeoff has the theory): a prior and an aligned
distribution over 1,000 outcomes, corpora drawn from the aligned one, the typical corpora resampled per bin,
and the figures the paper reports, measured the way the authors' notebook measures them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from prefpipe.errors import InputError
from prefpipe.tradeoff import corpus_means, pearson, spearman

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

    outcomes: int = 1000  # the authors' notebook's values, every one
    alpha: float = 0.1
    scaling: float = 42.0
    noise: float = 0.42
    seed: int = 42
    corpora: int = 10**3
    draws: int = 10**5
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
