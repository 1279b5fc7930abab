"""Log-sigmoid-centred rewards, reference rewards, combinations and normalisation: closed forms."""

from __future__ import annotations

import math
import statistics

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from prefpipe.config import Combination
from prefpipe.errors import InputError
from prefpipe.transforms import (
    combination,
    combine,
    log_sigmoid,
    lsc,
    normalisation,
    reference_reward,
    reference_rewards,
)

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


def test_reference_rewards_per_prompt_and_what_too_few_references_get():
    values = [0.2, 1.4, -0.3, 2.2, 0.9]
    assert reference_reward(np.array(values), 0.85) == pytest.approx(float(np.quantile(values, 0.85)))
    normal = reference_reward(np.array(values), 0.85, "normal")
    assert normal == pytest.approx(statistics.fmean(values) + 1.0364334 * statistics.stdev(values), abs=1e-6)
    prompt = np.array(["a"] * 5 + ["b"] * 2 + ["c"] * 4)
    reward = np.array([*values, 5.0, 6.0, 1.0, 2.0, 3.0, 4.0])
    is_reference = np.array([True] * 5 + [True, True] + [True, True, True, False])
    refs, global_ref, counts, sources = reference_rewards(prompt[is_reference], reward[is_reference], 0.85,
                                                          min_references=4)
    assert global_ref == pytest.approx(float(np.quantile(reward[is_reference], 0.85)))
    assert refs["a"] == pytest.approx(float(np.quantile(values, 0.85)))
    assert refs["b"] == refs["c"] == global_ref  # 2 and 3 references: fewer than 4, and labelled so
    assert sources == {"a": "candidates", "b": "global", "c": "global"}
    assert counts == {"a": 5, "b": 2, "c": 3}
    with pytest.raises(InputError, match=r"prompt b: 2 reference responses, fewer than --min-references 4"):
        reference_rewards(prompt[is_reference], reward[is_reference], 0.85, min_references=4, too_few="error")
    everyone = reference_rewards(prompt, reward, 0.85, source="global")  # asked for: one r_ref for all
    assert set(everyone[0].values()) == {everyone[1]} and set(everyone[3].values()) == {"global"}
    for q in (0, 1, 1.5, -0.1):
        with pytest.raises(InputError, match="--quantile: must be between 0 and 1"):
            reference_reward(np.array(values), q)


def test_the_pi_ref_weighted_quantile_by_hand():
    # rewards 1, 2, 3, 4 with π_ref 0.1, 0.5, 0.3, 0.1 (given as log-probabilities, renormalised over the prompt):
    # the cumulative weights 0.1, 0.6, 0.9, 1.0 first reach 0.85 at reward 3, and 0.5 at reward 2
    rewards, p = np.array([4.0, 1.0, 3.0, 2.0]), np.array([0.1, 0.1, 0.3, 0.5])
    logprob = np.log(p) - 7.0  # any common offset: a sequence's log-probability is far below 0
    refs, _, _, sources = reference_rewards(np.array(["x"] * 4), rewards, 0.85, logprob=logprob)
    assert refs["x"] == 3.0 and sources["x"] == "candidates (π_ref-weighted)"
    assert reference_reward(rewards, 0.5, weights=p) == 2.0
    assert reference_reward(rewards, 0.6, weights=p) == 2.0  # exactly reached: no rounding past it
    assert reference_reward(rewards, 0.61, weights=p) == 3.0
    mean = 0.1 * 4 + 0.1 * 1 + 0.3 * 3 + 0.5 * 2
    std = math.sqrt(0.1 * (4 - mean) ** 2 + 0.1 * (1 - mean) ** 2 + 0.3 * (3 - mean) ** 2 + 0.5 * (2 - mean) ** 2)
    assert reference_reward(rewards, 0.85, "normal", p) == pytest.approx(mean + 1.0364334 * std, abs=1e-6)
    assert reference_rewards(np.array(["x"] * 4), rewards, 0.85, logprob=np.array([-1.0, np.nan, -2.0, -3.0])
                             )[0]["x"] == pytest.approx(float(np.quantile(rewards, 0.85)))  # one unknown: unweighted


prompt_rewards = st.lists(st.lists(finite, min_size=4, max_size=6), min_size=2, max_size=8)


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(prompt_rewards, st.data())
def test_a_per_prompt_lsc_combination_ignores_any_per_prompt_offset_of_one_model(groups, data):
    prompts = np.array([i for i, g in enumerate(groups) for _ in g], dtype=object)
    first = np.array([r for g in groups for r in g])
    second = np.array(data.draw(st.lists(finite, min_size=len(first), max_size=len(first))))
    offsets = data.draw(st.lists(st.floats(-30, 30, allow_nan=False), min_size=len(groups), max_size=len(groups)))
    shifted = first + np.array(offsets)[prompts.astype(int)]
    combo = Combination("c", ("a", "b"), quantiles=(0.85, 0.6))
    before = combination(combo, prompts, {"a": first, "b": second})[0]
    after = combination(combo, prompts, {"a": shifted, "b": second})[0]
    assert np.allclose(before, after, rtol=1e-9, atol=1e-9)


def test_a_global_r_ref_lets_a_per_prompt_offset_into_the_combination():
    prompts = np.array(["p"] * 4 + ["q"] * 4, dtype=object)
    first, second = np.array([0.0, 1.0, 2.0, 3.0] * 2), np.zeros(8)
    shifted = first + np.array([0.0] * 4 + [5.0] * 4)  # model a rates every answer to q 5 higher
    for references, moved in (("prompt", False), ("global", True)):
        combo = Combination("c", ("a", "b"), references=references)
        before = combination(combo, prompts, {"a": first, "b": second})[0]
        after = combination(combo, prompts, {"a": shifted, "b": second})[0]
        assert (not np.allclose(before, after)) is moved, references


def test_each_model_has_its_own_quantile_and_its_rows_say_where_r_ref_came_from():
    prompts = np.array(["p"] * 5 + ["q"] * 2, dtype=object)
    a, b = np.arange(7.0), np.arange(7.0) * 2
    combo = Combination("c", ("a", "b"), quantiles=(0.5, 0.9))
    _, rows = combination(combo, prompts, {"a": a, "b": b})
    by = {(r["prompt"], r["model_id"]): r for r in rows}
    assert by["p", "a"]["r_ref"] == pytest.approx(np.quantile(a[:5], 0.5))
    assert by["p", "b"]["r_ref"] == pytest.approx(np.quantile(b[:5], 0.9))
    assert (by["p", "a"]["quantile"], by["p", "b"]["quantile"]) == (0.5, 0.9)
    assert by["q", "a"]["r_ref_source"] == "global" and by["p", "a"]["r_ref_source"] == "candidates"
    with pytest.raises(InputError, match="prompt q: 2 reference responses"):
        combination(Combination("c", ("a", "b"), too_few="error"), prompts, {"a": a, "b": b})


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
