"""Generative judges (prefpipe.judges): rewardbench's strings and verdict rules, both orders, the logprob mode
against a hand computation, batch independence, planted judges, and one-line errors."""

from __future__ import annotations

import hashlib

import hypothesis
import hypothesis.strategies as st
import pytest
import torch

from prefpipe import judges
from prefpipe.errors import InputError
from prefpipe.judges import Judge, pair_credit, rating, verdict
from prefpipe.synth import tiny_judge, tiny_reward_model

WORDS = ["good", "bad", "the", "answer", "question", "about", "and", "of", "a", "very"]
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=30).map(" ".join)


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    return tiny_judge(tmp_path_factory.mktemp("judge") / "lm", seed=3, positions=1024)


@pytest.fixture(scope="module")
def judge(judge_dir):
    return Judge(judge_dir)


def test_the_strings_are_rewardbench_0_1_4s():
    """rewardbench cannot be installed beside this project (0.1.4, its latest release, pins transformers 4.51):
    its strings are pinned by hash, taken from rewardbench/generative.py (prompt_v2, MTBENCH_V2's
    prompt_template, ratings_prompt) and generative_v2.py (ratings_prompt_ties) of that release."""
    digests = {"c3fbb61119533727d0d82252b8b3201a9bbcfc7ca0d5eb1a0dfc85266d4a6c00": judges.PAIRWISE_SYSTEM,
               "22f93e573bf9343e52c3dd0a36b1a033a47a6dc0045ab3d40357da8d3c613d57": judges.PAIRWISE_USER,
               "dd94ed65b24c00d411e65e8a671611ed2cba7154e97ff457b96183112b99ee14": judges.RATING_USER,
               "86b62377fd01e9697fd87f04ef6d1163ee694a006b838d532d1866267d9722b4": judges.RATING_USER_TIES}
    for digest, text in digests.items():
        assert hashlib.sha256(text.encode()).hexdigest() == digest, text[:60]


@pytest.mark.parametrize(("text", "expected"), [
    ("Assistant A is clearer. [[A]]", "A"), ("[[B]]", "B"), ("A then B: [[A]] [[B]]", "A"),
    ("[[B]] ... on second thought [[A]]", "A"),  # upstream looks for [[A]] first, wherever it is
    ("[A]", None), ("[[C]]", None), ("[[a]]", None), ("", None), ("A", None), ("[[ A ]]", None)])
def test_a_verdict_is_read_as_rewardbench_reads_it(text, expected):
    assert verdict(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Clear and correct.\n\n9", 9), ("10", 10), ("It is fine: 7  \n", 7), ("7/10", 10),  # a trailing 10 wins
    ("Score: 8.", -1), ("11", -1), ("0", -1), ("", -1), ("rated 3 of 10 overall", -1)])
def test_a_rating_is_read_as_rewardbench_2_reads_it(text, expected):
    assert rating(text) == expected


def test_credit_needs_both_orders_and_a_missing_verdict_is_a_tie():
    assert pair_credit("A", "B") == 1.0 and pair_credit("B", "A") == 0.0
    for first, second in [("A", "A"), ("B", "B"), (None, "B"), ("A", None), (None, None), (None, "A")]:
        assert pair_credit(first, second) == 0.5


def letter_logprobs_by_hand(judge: Judge, ids: list[int]) -> tuple[float, float]:
    """log p(A), log p(B) after IDS and "[[", from the model's logits on exactly those tokens, alone."""
    full = torch.tensor([ids + judge.tokenizer("[[", add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        logp = judge.model(input_ids=full).logits[0, -1].double().log_softmax(-1)
    return logp[judge.letters[0]].item(), logp[judge.letters[1]].item()


def test_logprob_mode_runs_both_orders_and_equals_a_hand_computation(judge):
    pairs = [("what is good ?", "good good answer", "bad answer"), ("a question", "the answer", "very bad bad")]
    out = judge.judge(pairs)
    for (prompt, chosen, rejected), got in zip(pairs, out, strict=True):
        first = letter_logprobs_by_hand(judge, judge.prompt(prompt, chosen, rejected))  # chosen as A
        second = letter_logprobs_by_hand(judge, judge.prompt(prompt, rejected, chosen))  # chosen as B
        assert got.logprobs[0] == pytest.approx(first, abs=1e-5) and got.logprobs[1] == pytest.approx(second, abs=1e-5)
        assert got.score_gap == pytest.approx(((first[0] - first[1]) + (second[1] - second[0])) / 2, abs=1e-5)
        assert got.verdicts == tuple("A" if a > b else "B" for a, b in (first, second))
        assert got.credit == pair_credit(*got.verdicts) and not got.too_long


@hypothesis.settings(max_examples=8, deadline=None)
@hypothesis.given(st.lists(st.tuples(texts, texts, texts), min_size=1, max_size=6), st.sampled_from([1, 200, 5000]))
def test_a_judgment_does_not_depend_on_its_batch(judge, pairs, max_tokens):
    alone = [judge.judge([pair], max_tokens=1)[0] for pair in pairs]
    together = judge.judge(pairs, max_tokens=max_tokens)
    for a, b in zip(alone, together, strict=True):
        assert a.verdicts == b.verdicts and a.score_gap == pytest.approx(b.score_gap, abs=1e-5)


def force(judge: Judge, pick) -> torch.utils.hooks.RemovableHandle:
    """A planted judge: a forward hook that makes the LM say what PICK(prompt ids) returns ("A" or "B"), as
    "[[A]]" and the end when generating, and as the likelier letter after "[["."""
    ids = {name: judge.tokenizer.convert_tokens_to_ids(name) for name in ("[[", "A", "B", "]]")}
    eos = judge.tokenizer.eos_token_id
    prompts: dict[int, list[int]] = {}  # generation: each row's prompt, seen on its first step

    def hook(module, args, kwargs, output):
        tokens, mask = kwargs["input_ids"], kwargs.get("attention_mask")
        for row in range(tokens.shape[0]):
            length = int(mask[row].sum()) if mask is not None and mask.shape[1] == tokens.shape[1] else tokens.shape[1]
            seq = tokens[row, :length].tolist()
            if length > 1:
                prompts[row] = seq
            letter = ids[pick(prompts[row] if length == 1 else seq)]
            after = {ids["[["]: letter, ids["A"]: ids["]]"], ids["B"]: ids["]]"], ids["]]"]: eos}
            keep = kwargs.get("logits_to_keep")  # the positions whose logits the model returned
            column = (int(torch.searchsorted(keep, torch.tensor(length - 1))) if isinstance(keep, torch.Tensor)
                      else length - 1 - (tokens.shape[1] - output.logits.shape[1]))
            logits = output.logits[row, column]
            logits.fill_(-30.0)
            logits[after.get(seq[-1], ids["[["])] = 30.0
        return output

    return judge.model.register_forward_hook(hook, with_kwargs=True)


def rb_pairs(n: int) -> list[tuple[str, str, str]]:
    import random

    rng = random.Random(7)
    return [(f"question {i}", " ".join(rng.choices(WORDS, k=rng.randint(1, 12))),
             " ".join(rng.choices(WORDS, k=rng.randint(1, 12)))) for i in range(n)]


@pytest.mark.parametrize("scoring", ["logprob", "generate"])
def test_a_judge_that_always_says_a_scores_exactly_one_half(judge_dir, scoring):
    judge = Judge(judge_dir, scoring=scoring, max_new_tokens=6)
    handle = force(judge, lambda ids: "A")
    try:
        out = judge.judge(rb_pairs(12))
    finally:
        handle.remove()
    assert all(j.verdicts == ("A", "A") for j in out)
    assert sum(j.credit for j in out) / len(out) == 0.5
    if scoring == "generate":
        assert all(j.texts == ("[[A]]", "[[A]]") for j in out)


def test_a_judge_that_picks_the_longer_answer_scores_what_a_length_oracle_scores(judge_dir):
    judge = Judge(judge_dir)
    pairs = [*rb_pairs(40), ("equal", "good bad", "bad good")]
    longer = {}  # each prompt the judge sees (either order) -> the letter of its longer answer (A when equal)
    for prompt, chosen, rejected in pairs:
        for a, b in ((chosen, rejected), (rejected, chosen)):
            longer[tuple(judge.prompt(prompt, a, b))] = "A" if len(a) >= len(b) else "B"
    opening = len(judge.tokenizer("[[", add_special_tokens=False)["input_ids"])
    handle = force(judge, lambda ids: longer[tuple(ids[:-opening])])
    try:
        out = judge.judge(pairs)
    finally:
        handle.remove()
    oracle = [1.0 if len(c) > len(r) else 0.0 if len(c) < len(r) else 0.5 for _, c, r in pairs]
    assert [j.credit for j in out] == oracle and len(set(oracle)) == 3


def test_the_same_inputs_give_the_same_verdicts_twice_in_generate_mode(judge_dir):
    judge = Judge(judge_dir, scoring="generate", max_new_tokens=5)
    first, second = judge.judge(rb_pairs(3)), judge.judge(rb_pairs(3))
    assert first == second and all(None not in j.texts for j in first)


def test_answers_are_cut_to_fit_and_a_prompt_that_cannot_fit_is_a_counted_tie(tmp_path, judge):
    small = Judge(tiny_judge(tmp_path / "small", positions=300))
    long_answer = " ".join(["good"] * 400)
    [cut] = small.judge([("q", long_answer, "bad")])
    assert not cut.too_long and len(small.prompt("q", long_answer, "bad")) <= small.room()
    assert small.prompt("q", "good", "bad") == judge.prompt("q", "good", "bad")  # what fits is kept whole
    tiny = Judge(tiny_judge(tmp_path / "tiny", positions=32))  # the template alone is longer
    [tie] = tiny.judge([("q", "good", "bad")])
    assert tie.too_long and tie.credit == 0.5 and tie.logprobs is None


def test_bad_judges_fail_in_one_line(tmp_path, judge_dir):
    classifier = tiny_reward_model(tmp_path / "rm")
    no_template = tiny_reward_model(tmp_path / "lm", "causal-lm")
    cases = [((classifier,), {}, "judges are causal LMs; this folder holds"),
             ((no_template,), {}, "the judge's tokenizer has no chat template; the rewardbench template needs one"),
             ((judge_dir,), {"template_name": "mtbench"}, "unknown judge template 'mtbench'; known: rewardbench"),
             ((judge_dir,), {"scoring": "vote"}, "must be one of logprob, generate, got 'vote'"),
             ((judge_dir,), {"max_new_tokens": 0}, "must be at least 1, got 0")]
    for args, options, message in cases:
        with pytest.raises(InputError) as e:
            Judge(*args, **options)
        assert message in str(e.value) and "\n" not in str(e.value)


def test_a_judges_run_has_the_tables_of_a_scorers_with_its_credits_and_both_orders(judge_dir, tmp_path):
    from datetime import date

    from helpers import LLMBAR

    from prefpipe.evalsets import read_evalset
    from prefpipe.judges import judge_tables
    from prefpipe.lake import Run

    examples = read_evalset(LLMBAR)[:20]
    run = Run("r1", date(2026, 12, 6), "judge", "hash", "llmbar", "sethash", "v")
    judge = Judge(judge_dir)
    handle = force(judge, lambda ids: "A")
    try:
        scores, summary, judgments = judge_tables(run, examples, judge, "rewardbench", contaminated=[])
    finally:
        handle.remove()
    assert judgments.num_rows == 20 and set(judgments.column("credit").to_pylist()) == {0.5}
    assert set(judgments.column("verdict_chosen_a").to_pylist()) == set(judgments.column("verdict_chosen_b")
                                                                         .to_pylist()) == {"A"}
    assert judgments.column("example_id").to_pylist() == [e.example_id for e in examples]
    assert set(scores.column("credit").to_pylist()) == {0.5} and set(scores.column("score_gap").to_pylist()) == {0.0}
    subsets = {r["name"]: r["value"] for r in summary.to_pylist() if r["level"] == "subset"}
    assert subsets and set(subsets.values()) == {0.5}  # a tie is half, for a judge
    with pytest.raises(InputError, match="RewardBench 2 sets need its rating prompt"):
        judge_tables(run, examples, judge, "rewardbench2")
