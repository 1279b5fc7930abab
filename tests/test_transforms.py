"""Log-sigmoid-centred rewards, reference rewards, combinations and normalisation: closed forms."""

from __future__ import annotations

import math
import statistics

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from prefpipe.errors import InputError
from prefpipe.transforms import combine, log_sigmoid, lsc, normalisation, reference_reward, reference_rewards

finite = st.floats(-60, 60, allow_nan=False)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_lsc_at_the_reference_its_slope_and_its_tails():
    assert lsc(np.array([1.3]), np.array([1.3]))[0] == pytest.approx(math.log(0.5))
    d = np.linspace(-30, 30, 601)
    u = log_sigmoid(d)
    assert (u < 0).all() and (np.diff(u) > 0).all()  # negative and increasing
    h = 1e-5
    slope = (log_sigmoid(d + h) - log_sigmoid(d - h)) / (2 * h)
    assert np.allclose(slope, [sigmoid(-x) for x in d], atol=1e-6)  # du/dr = σ(r_ref − r)
    assert abs(log_sigmoid(np.array([-50.0]))[0] - (-50.0)) < 1e-20  # far below: u ≈ r − r_ref
    assert -1e-21 < log_sigmoid(np.array([50.0]))[0] < 0  # far above: u ≈ 0, still below it
    low, high = log_sigmoid(np.array([-1000.0, 40.0]))
    assert low == -1000.0 and high < 0  # no −inf; and not the 0 that log(σ(40)) rounds to
    assert math.log(1 / (1 + math.exp(-40.0))) == 0.0
    far = log_sigmoid(np.array([745.0, 1000.0, 1e300]))  # −e^−d: below the smallest double, rounded down
    assert (far < 0).all() and (far == -np.nextafter(0.0, 1.0)).all()


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.lists(st.tuples(finite, finite), min_size=1, max_size=6))
def test_the_sum_of_lsc_rewards_is_a_soft_and(pairs):
    rewards, references = np.array(pairs).T
    u = lsc(rewards, references)
    assert math.exp(u.sum()) == pytest.approx(math.prod(sigmoid(r - ref) for r, ref in pairs), rel=1e-9, abs=1e-300)
    assert u.sum() <= u.min() + 1e-12  # never better than its worst property


def test_reference_rewards_per_prompt_with_the_global_one_for_too_few():
    values = [0.2, 1.4, -0.3, 2.2, 0.9]
    assert reference_reward(np.array(values), 0.85) == pytest.approx(float(np.quantile(values, 0.85)))
    normal = reference_reward(np.array(values), 0.85, "normal")
    assert normal == pytest.approx(statistics.fmean(values) + 1.0364334 * statistics.stdev(values), abs=1e-6)
    prompt = np.array(["a"] * 5 + ["b"] * 2 + ["c"] * 4)
    reward = np.array([*values, 5.0, 6.0, 1.0, 2.0, 3.0, 4.0])
    is_reference = np.array([True] * 5 + [True, True] + [True, True, True, False])
    refs, global_ref, counts = reference_rewards(prompt[is_reference], reward[is_reference], 0.85, min_references=4)
    assert global_ref == pytest.approx(float(np.quantile(reward[is_reference], 0.85)))
    assert refs["a"] == pytest.approx(float(np.quantile(values, 0.85)))
    assert refs["b"] == refs["c"] == global_ref  # 2 and 3 references: fewer than 4
    assert counts == {"a": 5, "b": 2, "c": 3}
    for q in (0, 1, 1.5, -0.1):
        with pytest.raises(InputError, match="--quantile: must be between 0 and 1"):
            reference_reward(np.array(values), q)


def test_combinations_and_normalisation():
    r1, r2 = np.array([1.0, -2.0, 0.5]), np.array([0.0, 3.0, -1.0])
    ref1, ref2 = np.array([0.5, 0.5, 0.5]), np.array([1.0, 1.0, 1.0])
    assert np.allclose(combine("raw", [r1, r2], [ref1, ref2], [2.0, 1.0]), 2 * r1 + r2)
    assert np.allclose(combine("centered", [r1, r2], [ref1, ref2], [1.0, 1.0]), (r1 - ref1) + (r2 - ref2))
    assert np.allclose(combine("lsc", [r1, r2], [ref1, ref2], [1.0, 0.5]), lsc(r1, ref1) + 0.5 * lsc(r2, ref2))
    with pytest.raises(InputError, match="--transform: must be one of lsc, raw, centered"):
        combine("max", [r1], [ref1], [1.0])
    rewards = np.array([3.0, 5.0, 10.0])
    bias, scale = normalisation(rewards)
    assert (rewards + bias).mean() == pytest.approx(0) and scale == 1.0
    bias, scale = normalisation(rewards, scale=True)
    assert ((rewards + bias) * scale).mean() == pytest.approx(0) and ((rewards + bias) * scale).std() == pytest.approx(1)
