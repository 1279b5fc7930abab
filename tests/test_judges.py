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
from prefpipe.judges import Judge, JudgeSettings, pair_credit, rating, verdict
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


def plant(judge: Judge, choose) -> torch.utils.hooks.RemovableHandle:
    """A planted judge: a forward hook that makes the LM's next token CHOOSE(prompt ids, ids so far) at every
    position read (the logprob modes' and each generation step's)."""
    prompts: dict[int, list[int]] = {}  # generation: each row's prompt, seen on its first step

    def hook(module, args, kwargs, output):
        tokens, mask = kwargs["input_ids"], kwargs.get("attention_mask")
        for row in range(tokens.shape[0]):
            length = int(mask[row].sum()) if mask is not None and mask.shape[1] == tokens.shape[1] else tokens.shape[1]
            seq = tokens[row, :length].tolist()
            if length > 1:
                prompts[row] = seq
            keep = kwargs.get("logits_to_keep")  # the positions whose logits the model returned
            column = (int(torch.searchsorted(keep, torch.tensor(length - 1))) if isinstance(keep, torch.Tensor)
                      else length - 1 - (tokens.shape[1] - output.logits.shape[1]))
            logits = output.logits[row, column]
            logits.fill_(-30.0)
            logits[choose(prompts[row] if length == 1 else seq, seq)] = 30.0
        return output

    return judge.model.register_forward_hook(hook, with_kwargs=True)


def force(judge: Judge, pick) -> torch.utils.hooks.RemovableHandle:
    """A planted pairwise judge: it says what PICK(prompt ids) returns ("A" or "B"), as "[[A]]" and the end when
    generating, and as the likelier letter after "[["."""
    ids = {name: judge.tokenizer.convert_tokens_to_ids(name) for name in ("[[", "A", "B", "]]")}
    after = {ids["A"]: ids["]]"], ids["B"]: ids["]]"], ids["]]"]: judge.tokenizer.eos_token_id}
    return plant(judge, lambda prompt, seq: ids[pick(prompt)] if seq[-1] == ids["[["] else after.get(seq[-1],
                                                                                                        ids["[["]))


def force_rating(judge: Judge, rate) -> torch.utils.hooks.RemovableHandle:
    """A planted rating judge: it says RATE(prompt ids) (a digit 1-9, then the end), or "the" over and over when
    that is None (no rating)."""
    digits = set(judge.ratings.values())
    word, eos = judge.tokenizer.convert_tokens_to_ids("the"), judge.tokenizer.eos_token_id
    return plant(judge, lambda prompt, seq: eos if seq[-1] in digits else
                 word if (r := rate(prompt)) is None else judge.ratings[r])


def rb_pairs(n: int) -> list[tuple[str, str, str]]:
    import random

    rng = random.Random(7)
    return [(f"question {i}", " ".join(rng.choices(WORDS, k=rng.randint(1, 12))),
             " ".join(rng.choices(WORDS, k=rng.randint(1, 12)))) for i in range(n)]


@pytest.mark.parametrize("scoring", ["logprob", "generate"])
def test_a_judge_that_always_says_a_scores_exactly_one_half(judge_dir, scoring):
    judge = Judge(judge_dir, JudgeSettings(scoring=scoring, max_new_tokens=6))
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
    judge = Judge(judge_dir, JudgeSettings(scoring="generate", max_new_tokens=5))
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
    cases = [(lambda: Judge(classifier), "judges are causal LMs; this folder holds"),
             (lambda: Judge(no_template), "the judge's tokenizer has no chat template; the rewardbench template needs"),
             (lambda: JudgeSettings(template="mtbench"), "unknown judge template 'mtbench'; known: rewardbench"),
             (lambda: JudgeSettings(scoring="vote"), "must be one of logprob, generate, got 'vote'"),
             (lambda: JudgeSettings(max_new_tokens=0), "must be a whole number of at least 1, got 0")]
    for make, message in cases:
        with pytest.raises(InputError) as e:
            make()
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


def rb2_examples() -> list:
    from prefpipe.evalsets import Example

    answers = ["clear", "clear clear", "clear clear clear", "wrong", "very clear answer", "the answer", "wrong wrong"]
    rows = [Example(f"f{i}", "Focus", f"question {i}", (answers[i % 7],), tuple(answers[(i + k) % 7] for k in (1, 2, 3)))
            for i in range(6)]
    ties = [Example("ref:1", "Ties", "name a colour", ("red",), ("a", "b")),
            Example("tied:1", "Ties", "name a colour", ("red", "blue clear"), ("a",))]
    return [*rows, Example("none", "Focus", "honest honest", ("clear",), ("wrong", "wrong", "wrong")), *ties]


def test_rewardbench2_ratings_score_as_upstream_in_both_modes(judge_dir):
    """Each answer rated alone with the rating prompt (the Ties one in Ties); the ratings are the scores, so the
    credit is RewardBench 2's best-of-4 (ties at the top split; all four unreadable: 0.25)."""
    from datetime import date

    from prefpipe.judges import judge_tables
    from prefpipe.lake import Run
    from prefpipe.rewardbench import best_of_n_credit

    examples = rb2_examples()
    run = Run("r1", date(2026, 12, 6), "judge", "hash", "rb2", "sethash", "v", "judge")
    for scoring in ("generate", "logprob"):
        judge = Judge(judge_dir, JudgeSettings(scoring=scoring, max_new_tokens=4))
        prompts = {tuple(judge.rating_prompt(e.prompt, t, ties=e.subset == "Ties")) for e in examples
                   for t in e.chosen + e.rejected}
        seen = set()

        def rate(ids, judge=judge, seen=seen):
            seen.add(tuple(ids))
            text = judge.tokenizer.decode(ids)
            return None if "honest" in text else min(9, 1 + text.count("clear"))

        handle = force_rating(judge, rate)
        try:
            scores, summary, judgments = judge_tables(run, examples, judge, "rewardbench2")
        finally:
            handle.remove()
        rows = judgments.to_pylist()
        assert len(rows) == sum(len(e.chosen) + len(e.rejected) for e in examples)
        unrated = -1.0 if scoring == "generate" else 5.0  # logprob: no digit likelier than another, the mean of 1-9
        expected = {e.example_id: [unrated] * 4 if e.example_id == "none" else
                    [float(min(9, 1 + t.count("clear"))) for t in e.chosen + e.rejected] for e in examples}
        for row in scores.to_pylist():
            got = row["chosen_scores"] + row["rejected_scores"]
            want = expected[row["example_id"]]
            assert got == pytest.approx(want, abs=1e-9), row["example_id"]
            if row["subset"] != "Ties":
                k = len(row["chosen_scores"])
                assert row["credit"] == best_of_n_credit(want[:k], want[k:])
        assert {r["example_id"]: r["credit"] for r in scores.to_pylist()}["none"] == 0.25
        assert seen == prompts  # each answer alone, the Ties subset's with its own prompt
        if scoring == "generate":
            assert {r["rating"] for r in rows if r["example_id"] == "none"} == {-1}
            assert all(r["text"] is not None for r in rows)
        assert {r["level"] for r in summary.to_pylist()} >= {"subset", "score"}


def test_the_expected_rating_is_a_hand_computation_and_a_scorer_of_completions(judge):
    items = [("what is good ?", "good good answer"), ("a question", "bad")]
    got = judge(items)
    for (prompt, answer), value in zip(items, got, strict=True):
        ids = torch.tensor([judge.rating_prompt(prompt, answer)])
        with torch.inference_mode():
            logits = judge.model(input_ids=ids).logits[0, -1].double()
        ratings = sorted(judge.ratings)
        p = logits[[judge.ratings[k] for k in ratings]].softmax(-1)
        assert value == pytest.approx(float((p * torch.tensor(ratings, dtype=torch.float64)).sum()), abs=1e-5)
        assert 1 <= value <= 9
    assert judge(items[::-1]) == pytest.approx(got[::-1], abs=1e-6)  # its batch does not change a score


def write_rb2(path):
    import json

    path.write_text("".join(json.dumps({"id": e.example_id, "prompt": e.prompt, "chosen": list(e.chosen),
                                        "rejected": list(e.rejected), "subset": e.subset}) + "\n"
                            for e in rb2_examples()))
    return path


@pytest.mark.slow
def test_judges_and_classifiers_share_a_night_the_leaderboard_history_and_report(home, judge_dir, tmp_path):
    """End to end: a logprob judge, a generate judge and two classifiers (and a combination of a classifier and the
    logprob judge) on a RewardBench set and a RewardBench 2 set in one nightly; a rerun adds nothing; the logprob
    judge rewards candidates for `rewards score` and `analyse tilt`; bad judges fail in one line, writing nothing."""
    import json

    import pyarrow.parquet as pq
    from helpers import cli_ok, run_cli

    from flows.nightly import nightly_flow

    no_template = tiny_reward_model(tmp_path / "lm", "causal-lm")
    out = cli_ok("models", "add", str(judge_dir), "--name", "judge", "--judge")
    assert out.strip() == f"judge: registered ({judge_dir}, generative judge: rewardbench template, logprob), active"
    out = cli_ok("models", "add", str(judge_dir), "--name", "judge-gen", "--judge", "--judge-scoring", "generate",
                 "--max-new-tokens", "3")
    assert "generative judge: rewardbench template, generate, at most 3 new tokens" in out
    bad = [(("models", "add", str(judge_dir), "--name", "x", "--judge-scoring", "generate"),
            "--judge-scoring: applies to a generative judge only: add --judge"),
           (("models", "add", str(home.home.parent / "helpful"), "--name", "x", "--judge"),
            "judges are causal LMs; this folder holds"),
           (("models", "add", str(no_template), "--name", "x", "--judge"),
            "the judge's tokenizer has no chat template"),
           (("models", "add", str(judge_dir), "--name", "x", "--judge", "--judge-template", "mtbench"),
            "--judge-template: unknown judge template 'mtbench'; known: rewardbench"),
           (("models", "add", str(judge_dir), "--name", "x", "--judge", "--reference", str(judge_dir)),
            "--judge: a judge has no reference model"),
           (("models", "add", str(judge_dir), "--name", "x"), "to score it as a generative judge, --judge"),
           (("combos", "add", "c", "--model", "helpful", "--model", "judge-gen"),
            "judge-gen: --model: a judge that scores by generation gives no reward of one completion"),
           (("models", "normalise", "judge", "--to", "edits"), "judge: a judge has no score head to normalise")]
    for args, message in bad:
        done = run_cli(*args)
        assert done.returncode == 1 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, (
            args, done.stderr)
    cli_ok("combos", "add", "rm-and-judge", "--model", "helpful", "--model", "judge", "--min-references", "2")
    done = run_cli("models", "add", str(judge_dir), "--name", "judge", "--judge", "--judge-scoring", "generate",
                   "--replace")  # the combination needs its reward of one completion
    assert done.returncode == 1 and done.stderr.strip() == (
        "prefpipe: error: judge: --judge-scoring: the combination(s) rm-and-judge use this model: a judge that "
        "scores by generation gives them no reward of one completion")
    cli_ok("evalset", "add", str(write_rb2(tmp_path / "rb2.jsonl")), "--name", "rb2")
    listed = cli_ok("sql", "SELECT model_id, kind FROM models ORDER BY model_id", "--format", "csv")
    assert listed.split() == ["model_id,kind", "harmless,classifier", "helpful,classifier", "judge,judge",
                              "judge-gen,judge"]

    first = nightly_flow(home)
    kinds = {(r["model_id"], r["evalset"]): r["kind"] for r in first["leaderboard"]}
    assert kinds == {(m, s): k for m, k in (("helpful", "classifier"), ("harmless", "classifier"), ("judge", "judge"),
                                            ("judge-gen", "judge"), ("rm-and-judge", "combination"))
                     for s in ("small", "rb2")}
    for model, scoring in (("judge", "logprob"), ("judge-gen", "generate")):
        [pairwise] = home.results.glob(f"evalset=small/model={model}/*/*/judgments.parquet")
        rows = pq.read_table(pairwise).to_pylist()
        assert len(rows) == 20 and all(r["logp_a_chosen_a"] is not None for r in rows if not r["too_long"])
        assert all((r["text_chosen_a"] is not None) == (scoring == "generate") for r in rows)
        [rated] = home.results.glob(f"evalset=rb2/model={model}/*/*/judgments.parquet")
        assert pq.read_table(rated).num_rows == sum(len(e.chosen) + len(e.rejected) for e in rb2_examples())
    history = json.loads(cli_ok("sql", "SELECT DISTINCT model_id, model_kind FROM history ORDER BY 1", "--format",
                                "json"))
    assert {r["model_id"]: r["model_kind"] for r in history}["judge-gen"] == "judge"
    index = (home.report / "index.html").read_text()
    assert '<a href="models/judge.html">judge</a>' in index and ">combination<" in index and ">judge<" in index
    assert "<dt>kind</dt><dd>judge</dd>" in (home.report / "models" / "judge-gen.html").read_text()
    second = nightly_flow(home)
    assert all(v.startswith("skipped") for v in second["units"].values()) and len(second["units"]) == 10

    assert "candidates of" in cli_ok("rewards", "score", "--from-split", "test", "--model", "judge")
    rewards = json.loads(cli_ok("sql", "SELECT min(reward) AS lo, max(reward) AS hi, count(*) AS n FROM rewards",
                                "--format", "json"))[0]
    assert rewards["n"] > 0 and 1 <= rewards["lo"] <= rewards["hi"] <= 9  # expected ratings
    assert cli_ok("analyse", "tilt", "--model", "judge").strip().endswith("frontier.png")
    done = run_cli("rewards", "score", "--from-split", "test", "--model", "judge-gen")
    assert done.returncode == 1 and "judge-gen: --model: a judge that scores by generation" in done.stderr
