"""The tilted policy and best-of-n: closed forms and properties, on random candidate sets with ties."""

from __future__ import annotations

import math

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from prefpipe import tilt as tilt_module
from prefpipe.config import MIN_BETA
from prefpipe.errors import InputError
from prefpipe.tilt import Candidates, best_of_n, tilt

BETAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
NS = (1, 2, 4, 8, 16, 32)


def random_candidates(seed: int, prompts: int = 40, ties: bool = True, uniform: bool = False) -> Candidates:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, prompts)
    prompt = np.repeat(np.arange(prompts), sizes)
    reward = rng.normal(0, 2, len(prompt))
    if ties:
        reward = np.round(reward, 0)  # many equal rewards within a prompt
    log_ref = None if uniform else rng.normal(0, 1.5, len(prompt))
    return Candidates.build(prompt, reward, log_ref)


candidate_sets = st.builds(random_candidates, st.integers(0, 10_000), st.integers(1, 30), st.booleans(), st.booleans())


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(candidate_sets, st.sampled_from(BETAS))
def test_tilt_identities(c, beta):
    t = tilt(c, beta)
    pi = t.probability
    assert np.allclose(np.add.reduceat(pi, c.starts), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # KL and H straight from π*, as their definitions say
        kl = np.add.reduceat(np.where(pi > 0, pi * (np.log(pi) - c.log_ref), 0.0), c.starts)
        entropy = -np.add.reduceat(np.where(pi > 0, pi * np.log(pi), 0.0), c.starts)
    assert np.allclose(t.kl, kl, atol=1e-7) and np.allclose(t.effective_candidates, np.exp(entropy), rtol=1e-6)
    assert np.allclose(kl, t.expected_reward / beta - t.log_z, atol=1e-7)  # KL = E[r]/β − log Z
    assert np.allclose(t.expected_reward, np.add.reduceat(pi * c.reward, c.starts))
    assert np.allclose(t.expected_reward - beta * kl, beta * t.log_z, atol=1e-7)
    # β·log(π*/π_ref) + β·log Z recovers r
    with np.errstate(divide="ignore"):
        recovered = beta * (np.log(t.probability) - c.log_ref) + beta * c.per_candidate(t.log_z)
    finite = t.probability > 1e-300
    assert np.allclose(recovered[finite], c.reward[finite], atol=1e-6 * max(1.0, beta))
    assert (t.effective_candidates <= c.counts + 1e-9).all() and (t.effective_candidates >= 1 - 1e-9).all()


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(candidate_sets, st.sampled_from(BETAS), st.integers(0, 1000))
def test_no_distribution_over_the_candidates_beats_the_tilt(c, beta, seed):
    t, rng = tilt(c, beta), np.random.default_rng(seed)
    optimum = beta * t.log_z  # max over q of E_q[r] − β·KL(q‖π_ref), per prompt
    for _ in range(5):
        q = rng.dirichlet(np.ones(len(c.reward)) * 0.5)
        q = q / c.per_candidate(np.add.reduceat(q, c.starts))  # a distribution per prompt
        kl = np.add.reduceat(np.where(q > 0, q * (np.log(np.where(q > 0, q, 1)) - c.log_ref), 0), c.starts)
        assert (np.add.reduceat(q * c.reward, c.starts) - beta * kl <= optimum + 1e-9).all()


def test_beta_limits_constant_reward_and_two_candidates():
    c = random_candidates(3, ties=True)
    assert np.allclose(tilt(c, 1e9).probability, np.exp(c.log_ref), atol=1e-8)  # β → ∞: π_ref
    top = c.reward == c.per_candidate(np.maximum.reduceat(c.reward, c.starts))
    cold = tilt(c, 1e-6).probability  # β → 0: the argmax (ties share it as π_ref does)
    assert np.allclose(cold[~top], 0.0) and np.allclose(np.add.reduceat(cold * top, c.starts), 1.0)
    flat = Candidates.build(c.prompt, np.full(len(c.prompt), 2.5), c.log_ref)
    assert np.allclose(tilt(flat, 0.1).probability, np.exp(flat.log_ref))  # a constant reward changes nothing
    assert np.allclose(tilt(flat, 0.1).kl, 0.0)
    p1, r1, r2, beta = 0.3, 1.7, 0.4, 0.25
    two = Candidates.build(np.array([0, 0]), np.array([r1, r2]), np.log([p1, 1 - p1]))
    [upper] = tilt(two, beta).probability[two.reward == r1]
    assert upper == pytest.approx(1 / (1 + math.exp(-((r1 - r2) / beta + math.log(p1 / (1 - p1))))))


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(candidate_sets, st.sampled_from(NS))
def test_best_of_n_distribution_kl_and_win_rate(c, n):
    b = best_of_n(c, n)
    assert np.allclose(np.add.reduceat(b.probability, c.starts), 1.0)
    assert (b.kl <= b.kl_bound + 1e-9).all()  # log n − (n−1)/n
    assert (b.win_rate <= n / (n + 1) + 1e-9).all()
    if n == 1:
        assert np.allclose(b.probability, np.exp(c.log_ref)) and np.allclose(b.kl, 0.0)
        assert np.allclose(b.win_rate, 0.5)


def test_best_of_n_on_equally_likely_distinct_outputs_is_close_to_the_bound():
    for m in (50, 200, 1000):
        c = Candidates.build(np.zeros(m, dtype=int), np.arange(m, dtype=float))
        for n in NS[1:]:
            b = best_of_n(c, n)
            assert 0 <= b.kl_bound - b.kl[0] < 2 * n * (n - 1) / m
            assert b.win_rate[0] == pytest.approx(n / (n + 1), abs=n / m)


def mean_tilt(c: Candidates, beta: float) -> tuple[float, float]:
    t = tilt(c, beta)
    return float(t.kl.mean()), float(t.expected_reward.mean())


def tilt_at(c: Candidates, *, kl: float | None = None, reward: float | None = None) -> tuple[float, float]:
    """The tilt (mean KL, mean reward) whose mean KL (or mean reward) is the one given: bisection on log β."""
    low, high = -12.0, 12.0
    for _ in range(200):
        middle = (low + high) / 2
        got_kl, got_reward = mean_tilt(c, math.exp(middle))
        too_far = got_kl > kl if kl is not None else got_reward > reward  # small β: far from π_ref
        low, high = (middle, high) if too_far else (low, middle)
    return mean_tilt(c, math.exp(high))


@pytest.mark.parametrize("seed", range(6))
def test_no_best_of_n_point_lies_above_the_tilt_frontier(seed):
    c = random_candidates(seed, prompts=25)
    for n in NS[1:]:
        b = best_of_n(c, n)
        kl, reward = float(b.kl.mean()), float(b.expected_reward.mean())
        assert tilt_at(c, kl=kl)[1] >= reward - 1e-6  # at the same KL, the tilt's reward is at least as high
        assert tilt_at(c, reward=reward)[0] <= kl + 1e-6  # at the same reward, its KL is never larger


def test_bad_beta_and_n_are_refused():
    c = random_candidates(0)
    for beta in (0, -1.0):
        with pytest.raises(InputError, match="--beta: must be above 0"):
            tilt(c, beta)
    for n in (0, -2, 1.5):
        with pytest.raises(InputError, match="--n: must be a whole number of at least 1"):
            best_of_n(c, n)
    with pytest.raises(InputError, match=r"--beta: β = 1e-320 is too small for these rewards: r/β overflows"):
        tilt(c, 1e-320)
    smallest = tilt(c, MIN_BETA)  # the smallest β a command accepts: every figure finite
    assert all(np.isfinite(x).all() for x in (smallest.kl, smallest.expected_reward, smallest.log_z))


def analyses(c: Candidates) -> np.ndarray:
    """Every per-prompt output of every β and n, rows in the order of the prompts' codes."""
    out = []
    for beta in BETAS:
        t = tilt(c, beta)
        out += [t.log_z, t.kl, t.expected_reward, t.effective_candidates]
    for n in NS:
        b = best_of_n(c, n)
        out += [b.kl, b.expected_reward, b.win_rate]
    return np.array(out)


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(st.integers(0, 10_000), st.integers(1, 30), st.integers(1, 8), st.booleans())
def test_results_do_not_depend_on_the_candidates_order(seed, prompts, width, uniform):
    """K candidates per prompt, together, take the fast paths (a row sort, matrix sums); the same candidates
    shuffled take the general ones (one sort, segment sums): the same numbers."""
    rng = np.random.default_rng(seed)
    prompt = np.repeat(np.arange(prompts), width)
    reward, log_ref = np.round(rng.normal(0, 2, len(prompt))), None if uniform else rng.normal(0, 1.5, len(prompt))
    grouped = Candidates.build(prompt, reward, log_ref)
    assert grouped.segments.width == width
    order = rng.permutation(len(prompt))
    shuffled = Candidates.build(prompt[order], reward[order], None if uniform else log_ref[order])
    assert np.allclose(analyses(grouped), analyses(shuffled), rtol=1e-9, atol=1e-9)
    extra = np.zeros(width + 1)  # one more prompt, with one more candidate: no width
    mixed = Candidates.build(np.r_[prompt, extra + prompts], np.r_[reward, extra], None if uniform else np.r_[log_ref, extra])
    assert mixed.segments.width == 0 and np.allclose(analyses(mixed)[:, :-1], analyses(grouped), rtol=1e-9, atol=1e-9)


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(candidate_sets)
def test_best_of_n_does_not_depend_on_padding_the_tie_groups(c):
    """Rows of tie groups padded to the longest (matrix sums) or left as they are (segment sums): the same."""
    padded, compact = (Candidates(c.prompt, c.reward, c.log_ref, c.starts) for _ in range(2))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tilt_module, "PADDING", np.inf)
        assert padded.ties.segments.width == max(np.diff(np.r_[padded.ties.segments.starts, len(padded.ties.f)]))
        patch.setattr(tilt_module, "PADDING", 0.0)
        assert len(compact.ties.f) == len(compact.ties.groups)  # no padding
    for n in NS:
        a, b = best_of_n(padded, n), best_of_n(compact, n)
        assert np.allclose(a.probability, b.probability, rtol=1e-12, atol=1e-15)
        for x, y in ((a.kl, b.kl), (a.expected_reward, b.expected_reward), (a.win_rate, b.win_rate)):
            assert np.allclose(x, y, rtol=1e-9, atol=1e-12)


def test_a_candidate_far_below_the_shift_bound_still_counts():
    """The shift max r/β + max log π_ref lies 1000 above the largest logit here: exp underflows, and the
    tilt falls back to the largest logit itself."""
    two = Candidates.build(np.array([0, 0, 1, 1]), np.array([1000.0, 0.0, 1.0, 2.0]), np.array([-2000.0, 0, 0, 0]))
    t = tilt(two, 1.0)
    assert np.isfinite(t.log_z).all() and t.log_z[0] == pytest.approx(0.0, abs=1e-12)
    assert t.expected_reward[0] == pytest.approx(0.0, abs=1e-12) and t.kl[0] == pytest.approx(0.0, abs=1e-12)
    assert t.log_z[1] == pytest.approx(math.log((math.exp(1) + math.exp(2)) / 2))
