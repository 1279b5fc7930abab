"""DPO policies scored by their implicit reward: checked against plain transformers, one text at a time."""

from __future__ import annotations

from datetime import date

import pyarrow.parquet as pq
import pytest
import torch
from helpers import LLMBAR, first_rows
from transformers import AutoModelForCausalLM

from prefpipe.dpo import ImplicitReward
from prefpipe.errors import InputError
from prefpipe.evalsets import read_evalset
from prefpipe.evaluation import evaluate_model
from prefpipe.inputs import prompt_and_response
from prefpipe.loading import load_tokenizer
from prefpipe.registry import active_models, add_model
from prefpipe.scoring import score_distinct
from prefpipe.synth import tiny_reward_model


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo")
    return (tiny_reward_model(root / "policy", "causal-lm", seed=1, positions=2048),
            tiny_reward_model(root / "reference", "causal-lm", seed=2, positions=2048))


def plain_logprob(folder, tokenizer, prompt, response) -> float:
    """Σ log p over the response's tokens, the textbook way: one unpadded text, full log-softmax."""
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    head, tail = prompt_and_response(tokenizer, prompt, response)
    prompt_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(tail, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logp = model(ids).logits[0].log_softmax(-1)
    return sum(logp[t - 1, ids[0, t]].item() for t in range(len(prompt_ids), ids.shape[1]))


def test_implicit_reward_equals_policy_minus_reference_log_probabilities_in_any_batch(pair):
    policy, reference = pair
    examples = read_evalset(LLMBAR)[:12]
    reward = ImplicitReward(policy, reference)
    scores = score_distinct(examples, reward)  # many texts per batch
    tokenizer = load_tokenizer(policy)
    for e, (chosen, rejected) in list(zip(examples, scores, strict=True))[:4]:
        for text, ours in ((e.chosen[0], chosen[0]), (e.rejected[0], rejected[0])):
            expected = (plain_logprob(policy, tokenizer, e.prompt, text)
                        - plain_logprob(reference, tokenizer, e.prompt, text))
            assert abs(expected - ours) <= 1e-4 * max(1.0, abs(expected))
    alone = score_distinct(examples, lambda items: reward(items, max_tokens=1))  # each text in its own batch
    assert torch.allclose(torch.tensor(alone), torch.tensor(scores), atol=1e-4)
    assert len({round(c[0] - r[0], 6) for c, r in scores}) > 1  # real, varied margins


def test_a_dpo_policy_is_registered_with_its_reference_and_lands_in_the_lake(pair, wh, tmp_path):
    policy, reference = pair
    add_model(wh, policy, "dpo", reference=reference)
    assert active_models(wh) == [("dpo", str(policy.resolve()), str(reference.resolve()), None)]
    assert wh.con.execute("SELECT kind FROM models").fetchall() == [("dpo",)]
    llmbar = first_rows(LLMBAR, 100, tmp_path / "llmbar.jsonl")
    folder = evaluate_model(policy, "dpo", llmbar, "llmbar", tmp_path / "results", run_id="r1",
                           run_date=date(2026, 11, 28), reference=reference)
    scores = pq.read_table(folder / "scores.parquet").to_pylist()
    assert len(scores) == 100 and {r["model_id"] for r in scores} == {"dpo"}
    # another reference is another model: its results are not taken for these
    assert evaluate_model(policy, "dpo", llmbar, "llmbar", tmp_path / "results", run_id="r2",
                         reference=policy) is not None

    reward_model = tiny_reward_model(tmp_path / "rm")
    with pytest.raises(InputError, match=r"rm/config.json: --reference: a DPO policy and its reference are causal "
                                         r"LMs; this folder holds BertForSequenceClassification"):
        add_model(wh, policy, "bad", reference=reward_model)
    with pytest.raises(InputError, match=r"no config\.json"):
        add_model(wh, tmp_path, "bad", reference=reference)
    with pytest.raises(InputError, match=r"policy/config.json: a causal LM, not a reward model: to score a DPO policy, give its --reference"):
        add_model(wh, policy, "bad")
