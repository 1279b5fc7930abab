"""RewardBench metrics on hand-made scores; the expected numbers are worked out here, by hand."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prefpipe.rewardbench import (
    best_of_n_credit,
    best_of_n_scores,
    pairwise_credit,
    pairwise_scores,
    section_of,
    ties_problems,
    ties_score,
)


def rows(subset: str, right: int, wrong: int, ties: int = 0) -> list[tuple[str, float]]:
    """(subset, credit) rows of a classifier's pairs: RIGHT, WRONG and TIES (equal rewards)."""
    scores = [(1.0, 0.0)] * right + [(0.0, 1.0)] * wrong + [(0.5, 0.5)] * ties
    return [(subset, pairwise_credit(c, r)) for c, r in scores]


def test_strict_accuracy_section_weights_and_both_final_scores():
    results = (rows("alpacaeval-easy", 3, 1) + rows("mt-bench-easy", 1, 0, ties=1)  # Chat
               + rows("llmbar-natural", 1, 1)  # Chat Hard
               + rows("donotanswer", 2, 2)  # Safety
               + rows("math-prm", 1, 0) + rows("hep-go", 0, 1)  # Reasoning
               + rows("shp", 1, 3) + rows("summarize", 1, 0)  # Prior Sets
               + rows("my-set", 2, 0) + rows("other-set", 0, 2, ties=2))  # custom
    got = pairwise_scores(results)
    assert got["subsets"]["mt-bench-easy"] == {"examples": 2, "accuracy": 0.5}  # the tie is wrong
    chat = (0.75 * 100 + 0.5 * 28) / (100 + 28)  # weighted by RewardBench's counts, not ours
    reasoning = (1.0 * 984 + 0.0 * 164) / (984 + 164)  # math-prm as 984, hep-* as 164
    prior = (0.25 + 1.0) / 2
    assert got["sections"]["Chat"] == pytest.approx(chat)
    assert got["sections"]["Chat Hard"] == pytest.approx(0.5)
    assert got["sections"]["Safety"] == pytest.approx(0.5)
    assert got["sections"]["Reasoning"] == pytest.approx(reasoning)
    assert got["sections"]["Prior Sets"] == pytest.approx(prior)
    assert got["sections"]["custom"] == pytest.approx(2 / 6)  # pooled by examples: 2 right of 6
    assert got["score"] == pytest.approx((chat + 0.5 + 0.5 + reasoning) / 4)
    assert got["score_with_prior_sets"] == pytest.approx((2 * (chat + 0.5 + 0.5 + reasoning) + prior) / 9)


def test_safety_weighs_xstest_as_rewardbench_does_today():
    # rewardbench 0.1.4 and reward-bench main (constants.py EXAMPLE_COUNTS): should-refuse 154, should-respond 250
    results = (rows("refusals-dangerous", 9, 1) + rows("xstest-should-refuse", 1, 1)
               + rows("xstest-should-respond", 3, 1) + rows("donotanswer", 0, 4))
    safety = (0.9 * 100 + 0.5 * 154 + 0.75 * 250 + 0.0 * 136) / (100 + 154 + 250 + 136)
    assert safety == pytest.approx(354.5 / 640)  # 90 + 77 + 187.5 + 0
    assert pairwise_scores(results)["sections"]["Safety"] == pytest.approx(safety)
    swapped = (0.9 * 100 + 0.5 * 250 + 0.75 * 154 + 0.0 * 136) / 640  # the stale table gave this
    assert abs(safety - swapped) > 0.01


def test_a_judges_tie_counts_half_where_a_classifiers_tie_counts_nothing():
    judge = pairwise_scores([("alpacaeval-easy", 1.0), ("alpacaeval-easy", 0.5), ("alpacaeval-easy", 0.0)])
    assert judge["subsets"]["alpacaeval-easy"]["accuracy"] == 0.5
    assert pairwise_scores(rows("alpacaeval-easy", 1, 1, ties=1))["subsets"]["alpacaeval-easy"]["accuracy"] == 1 / 3


def test_missing_sections_give_no_final_score():
    got = pairwise_scores(rows("llmbar-natural", 3, 1) + rows("llmbar-adver-manual", 1, 1))
    assert got["sections"]["Chat Hard"] == pytest.approx((0.75 * 100 + 0.5 * 46) / 146)
    assert got["sections"]["Chat"] is None and got["score"] is None and got["score_with_prior_sets"] is None
    assert [section_of(s) for s in ("hep-rust", "anthropic_hhh", "unheard-of")] == ["Reasoning", "Prior Sets",
                                                                                  "custom"]


def test_best_of_n_credit_is_one_over_k_tied_at_the_top():
    assert best_of_n_credit([0.9], [0.1, 0.2, 0.3]) == 1.0
    assert best_of_n_credit([0.9], [0.9, 0.2, 0.3]) == 0.5
    assert best_of_n_credit([0.9], [0.9, 0.9, 0.9]) == 0.25
    assert best_of_n_credit([0.5], [0.9, 0.2, 0.3]) == 0.0


def test_ties_formula_by_hand():
    # prompt 1: ref correct 3 vs incorrect 1, 2 (gap 1); tied correct 5, 4 (spread 1) vs incorrect 1 (gap 3)
    # prompt 2: ref correct 1 vs incorrect 2 (gap -1, wrong); tied correct 2, 2 (spread 0) vs 0 (gap 2)
    data = [("ref:1", [3, 1, 2], 1), ("tied:1", [5, 4, 1], 2), ("ref:2", [1, 2], 1), ("tied:2", [2, 2, 0], 2)]
    ref_accuracy, tied_accuracy = 0.5, 1.0
    preferred = (3 > 1) + (2 > 0)  # tied gap beats the spread: both prompts
    preferred_hard = (min(1, 3) > 1) + (min(-1, 2) > 0)  # neither: 1 > 1 is false, -1 > 0 is false
    margin = (math.tanh(min(1, 3) / 1 - 1) + (-1.0)) / 2  # -1/0 is -inf in numpy: tanh -> -1
    expected = 0.3 * tied_accuracy + 0.3 * ref_accuracy + 0.2 * preferred / 2 + 0.2 * preferred_hard / 2 + 0.01 * margin
    assert ties_score(data) == pytest.approx(expected)
    assert expected == pytest.approx(0.3 + 0.15 + 0.2 - 0.005)


def test_rewardbench2_final_is_the_mean_of_six_subsets():
    subsets = ["Factuality", "Precise IF", "Math", "Safety", "Focus"]
    results = [(s, f"{s}-{i}", [1.0], [0.0, 0.0, 1.0 if i == 0 else 0.5]) for s in subsets for i in range(2)]
    results += [("Ties", "ref:1", [3.0], [1.0, 2.0]), ("Ties", "tied:1", [5.0, 4.0], [1.0])]
    got = best_of_n_scores(results)
    assert got["subsets"]["Math"] == pytest.approx((0.5 + 1.0) / 2)  # one example ties at the top: 1/2
    ties = 0.3 + 0.3 + 0.2 * 1 + 0.2 * 0 + 0.01 * math.tanh(0)  # gap 3 > spread 1; min(1, 3) > 1 is false
    assert got["subsets"]["Ties"] == pytest.approx(ties)
    assert got["score"] == pytest.approx((5 * 0.75 + ties) / 6)
    assert best_of_n_scores(results[:2])["score"] is None  # not all six subsets


def upstream_ties(rows: list[tuple[str, list[float], int]]) -> float:
    """reward-bench main's Ties score (rewardbench/utils.py, process_single_model), transcribed step by step."""
    grouped = {}
    for row_id, scores, num_correct in rows:
        kind, prompt = row_id.split(":")
        grouped[kind, int(prompt)] = [(i < num_correct, s) for i, s in enumerate(scores)]

    def stats(samples):
        correct = [s for ok, s in samples if ok]
        incorrect = [s for ok, s in samples if not ok]
        gap = min(correct) - max(incorrect)
        return gap > 0, max(correct) - min(correct) if len(correct) > 1 else None, gap

    ref = {p: stats(v) for (k, p), v in grouped.items() if k == "ref"}
    tied = {p: stats(v) for (k, p), v in grouped.items() if k == "tied"}
    ref_accuracy = np.mean([s[0] for s in ref.values()]) if ref else 0.0
    tied_accuracy = np.mean([s[0] for s in tied.values()]) if tied else 0.0
    common = set(ref) & set(tied)
    spread = np.array([tied[p][1] for p in common])
    tied_gap = np.array([tied[p][2] for p in common])
    ref_gap = np.array([ref[p][2] for p in common])
    preferred = np.mean(tied_gap > spread)
    preferred_hard = np.mean(np.minimum(ref_gap, tied_gap) > spread)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        margin = np.nan_to_num(np.tanh(np.minimum(ref_gap, tied_gap) / spread - 1), nan=0.0)
    return float(0.3 * tied_accuracy + 0.3 * ref_accuracy + 0.2 * preferred + 0.2 * preferred_hard
                 + 0.01 * float(np.mean(margin)))


score_values = st.sampled_from([-2.0, -0.5, 0.0, 0.5, 1.0, 3.0]) | st.floats(-10, 10, allow_nan=False)


@st.composite
def valid_ties_sets(draw) -> list[tuple[str, list[float], int]]:
    rows = []
    prompts = draw(st.lists(st.integers(0, 10**6), min_size=1, max_size=6, unique=True))
    with_tied = draw(st.lists(st.booleans(), min_size=len(prompts), max_size=len(prompts)).filter(any))
    for prompt, tied in zip(prompts, with_tied, strict=True):
        for kind, correct in [("ref", draw(st.integers(1, 2)))] + ([("tied", draw(st.integers(2, 4)))] if tied else []):
            scores = draw(st.lists(score_values, min_size=correct + 1, max_size=correct + 3))
            rows.append((f"{kind}:{prompt}", scores, correct))
    return draw(st.permutations(rows))


@settings(max_examples=300, deadline=None)
@given(valid_ties_sets())
def test_any_valid_ties_set_scores_as_reward_bench_main_and_within_its_bounds(rows):
    assert ties_problems([(i, len(s), k) for i, s, k in rows]) == []
    got = ties_score(rows)
    assert got == pytest.approx(upstream_ties(rows), abs=1e-12)
    # 0.6 accuracy + 0.4 margin shares + 0.01·tanh: [-0.01, 1.01]. The lower end is reached (see below), not 0.
    assert -0.01 <= got <= 1.01


def test_the_ties_score_goes_below_zero_when_every_answer_is_wrong():
    rows = [("ref:0", [0.0, 1.0], 1), ("tied:0", [1.0, 0.0, 2.0], 2)]  # gaps -1 and -2, spread 1: tanh(-3)
    assert ties_score(rows) == pytest.approx(0.01 * math.tanh(-3)) == pytest.approx(upstream_ties(rows))
    assert ties_score(rows) < 0


def test_a_tied_row_with_one_correct_answer_scores_as_0_1_4_does_instead_of_raising():
    assert math.isnan(ties_score([("ref:0", [1.0, 0.0], 1), ("tied:0", [1.0, 0.0], 1)]))  # 0.1.4: nan
    # beside a scorable pair, 0.1.4 leaves it out of the margin terms: the same as without it
    pair = [("ref:1", [3.0, 1.0], 1), ("tied:1", [5.0, 4.0, 1.0], 2)]
    single = [("ref:0", [1.0, 0.0], 1), ("tied:0", [1.0, 0.0], 1)]
    assert ties_score(pair + single) == pytest.approx(0.3 + 0.3 + 0.2 + 0.2 + 0.01 * math.tanh(2 / 1 - 1))


@pytest.mark.parametrize(("row", "reason"), [
    (("ref:0", [1.0, 0.0], 0), "a correct and an incorrect answer, got 0 correct of 2"),
    (("ref:0", [1.0, 0.0], 2), "a correct and an incorrect answer, got 2 correct of 2"),
    (("ref0", [1.0, 0.0], 1), "ref:N or tied:N with N a whole number, got 'ref0'"),
    (("ref:0:1", [1.0, 0.0], 1), "ref:N or tied:N with N a whole number, got 'ref:0:1'"),
    (("best:0", [1.0, 0.0], 1), "ref:N or tied:N"),
    (("ref:01", [1.0, 0.0], 1), "ref:N or tied:N"),
])
def test_ties_rows_that_no_version_can_score_fail_with_their_rule(row, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        ties_score([row, ("ref:5", [1.0, 0.0], 1), ("tied:5", [2.0, 1.0, 0.0], 2)])
