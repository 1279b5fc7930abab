"""The probability–quality trade-off: the corpus identity on an exact synthetic tilt, the toy's statistics
against pandas, the sampling adaptors as generate receives them, and the log-probabilities a sample records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from prefpipe.tradeoff import corpus_means, pearson, spearman
from prefpipe.tradeoff_toy import ToyConfig, draw_counts, resample, toy

OUTCOMES, BETA = 40, 0.7


def tilt(seed: int = 0):
    """An exact tilt over a finite set: prior p, reward r, p⁺ = p·exp(r/β)/Z."""
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.ones(OUTCOMES))
    reward = rng.normal(0, 2, OUTCOMES)
    weights = prior * np.exp(reward / BETA)
    return prior, reward, weights / weights.sum(), np.log(weights.sum())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=OUTCOMES, max_size=OUTCOMES).filter(any), st.integers(0, 3))
def test_the_corpus_identity_holds_for_any_corpus(counts, seed):
    prior, reward, aligned, log_z = tilt(seed)
    log_prior, mean_reward, log_aligned = corpus_means(np.array([counts], dtype=float), np.log(prior), reward,
                                                       np.log(aligned))[0]
    assert log_prior + mean_reward / BETA == pytest.approx(log_z + log_aligned, abs=1e-9)


def test_typical_corpora_lie_within_epsilon_of_the_line_and_reward_falls_with_prior_likelihood():
    prior, reward, aligned, log_z = tilt()
    entropy = float(-(aligned * np.log(aligned)).sum())
    rng = np.random.default_rng(1)
    counts = rng.multinomial(400, aligned, size=4000).astype(float)
    means = corpus_means(counts, np.log(prior), reward, np.log(aligned))
    epsilon = 0.01
    typical = np.abs(means[:, 2] + entropy) < epsilon
    assert typical.sum() >= 50  # enough to see the line
    distance = np.abs(means[typical, 0] + means[typical, 1] / BETA - (log_z - entropy))
    assert (distance < epsilon).all()
    assert not (np.abs(means[:, 0] + means[:, 1] / BETA - (log_z - entropy)) < epsilon).all()  # atypical ones stray
    assert spearman(means[typical, 0], means[typical, 1]) < -0.9  # corpus level: the trade-off
    assert pearson(means[typical, 0], means[typical, 1]) < -0.9


def test_the_toy_shows_the_trade_off_at_corpus_level_and_not_at_string_level():
    result = toy(ToyConfig(corpora=200, draws=20_000, epsilon=0.005))  # the paper's distributions, fewer corpora
    figures = result.figures()
    assert figures["entropy_aligned"] == pytest.approx(5.01, abs=0.005)  # p⁺ and p are the paper's exactly
    assert figures["entropy_prior"] == pytest.approx(6.87, abs=0.005)
    assert figures["string_spearman"] > 0.3 and figures["string_pearson"] > 0.3
    assert figures["corpus_spearman"] < -0.5 and figures["corpus_pearson"] < -0.5
    assert np.abs(result.means[result.typical, 2] + result.entropy_aligned).max() < 0.005
    assert len(result.resampled) % 100 == 0 and set(result.resampled) <= set(np.flatnonzero(result.typical))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5000), st.integers(2, 300), st.floats(0.05, 5))
def test_drawn_counts_are_numpys_choice_draws(seed, draws, outcomes, alpha):
    p = np.random.RandomState(seed % 1000).dirichlet([alpha] * outcomes)
    expected = np.bincount(np.random.RandomState(seed).choice(outcomes, draws, p=p), minlength=outcomes)
    assert draw_counts(p, draws, seed).tolist() == expected.tolist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-50_000, 0).map(lambda i: i / 1000), min_size=2, max_size=80), st.integers(1, 12),
       st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_resampling_equals_pandas_cut_then_groupby_sample(values, bins, per_bin, seed):
    x = np.array(values)
    config = ToyConfig(bins=bins, per_bin=per_bin, seed=seed)
    ours = resample(x, np.ones(len(x), dtype=bool), config)
    frame = pd.DataFrame({"x": x, "bin": pd.cut(x, bins=bins)})
    theirs = frame.groupby("bin", observed=True).sample(n=per_bin, replace=True, random_state=seed).index
    assert ours.tolist() == theirs.tolist()


@pytest.mark.filterwarnings("ignore:An input array is constant")
@settings(max_examples=60, deadline=None)
@example([(0, 0.0), (0, 0.0), (1, 2.225073858507e-311)])  # subnormal deviations: no underflow to "constant"
@given(st.lists(st.tuples(st.integers(-5, 5), st.floats(-1e6, 1e6, allow_nan=False)), min_size=3, max_size=50))
def test_correlations_equal_pandas_with_ties(pairs):
    x, y = np.array([p[0] for p in pairs], dtype=float), np.array([p[1] for p in pairs])
    frame = pd.DataFrame({"x": x, "y": y})
    for ours, method in ((spearman(x, y), "spearman"), (pearson(x, y), "pearson")):
        theirs = frame["x"].corr(frame["y"], method=method)
        assert (np.isnan(ours) and np.isnan(theirs)) or ours == pytest.approx(theirs, abs=1e-9)


# -- sampling from a tiny causal LM --------------------------------------------------------------------
