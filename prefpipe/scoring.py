"""Scoring: a reward model or a DPO policy as a scorer of (prompt, response) items, every distinct item scored
once, in batches sorted by length; a score does not depend on the batch it was in."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from prefpipe.dpo import ImplicitReward
from prefpipe.evalsets import Example, Scores
from prefpipe.inputs import builder_for
from prefpipe.judges import Judge
from prefpipe.loading import load_reward_model, load_tokenizer
from prefpipe.model import SCORE_TOKENS, score
from prefpipe.model_files import is_causal_lm, model_config

Scorer = Callable[[list[tuple[str | list[dict], str]]], list[float]]  # rewards of (prompt, response) items


def scorer(model_dir: Path, reference: Path | None, device: str = "cpu") -> Scorer:
    """Rewards of (prompt, response) items: a reward model's, a DPO policy's implicit reward, or a generative
    judge's expected rating in logprob mode (a causal LM without a reference: the registry records no other,
    and `registry.model_folders` refuses a judge that scores by generation)."""
    if reference is not None:
        return ImplicitReward(model_dir, reference, device)
    if is_causal_lm(model_config(model_dir)):
        return Judge(model_dir, device=device)
    return reward_scorer(load_reward_model(model_dir).to(device), load_tokenizer(model_dir), device=device)


def reward_scorer(model, tokenizer, *, max_length: int = 2048, max_tokens: int | None = None,
                  device: str = "cpu") -> Scorer:
    """A reward model as a scorer of (prompt, response) items, inputs cut to the model's positions."""
    builder = builder_for(tokenizer, model, max_length)
    return lambda items: score(model, builder.build(items), tokenizer.pad_token_id,
                               max_tokens=max_tokens or SCORE_TOKENS, device=device)


def score_examples(model, tokenizer, examples: list[Example], **options) -> Scores:
    """(chosen scores, rejected scores) per example from a reward model."""
    return score_distinct(examples, reward_scorer(model, tokenizer, **options))


def score_distinct(examples: list[Example], scorer: Scorer) -> Scores:
    """(chosen scores, rejected scores) per example, with SCORER called once on every distinct
    (prompt, text): a reward model, or the implicit reward of a DPO policy (`prefpipe.dpo`)."""
    values = iter(score_items([(e.prompt, t) for e in examples for t in e.chosen + e.rejected], scorer))
    return [([next(values) for _ in e.chosen], [next(values) for _ in e.rejected]) for e in examples]


def score_items(items: list[tuple[str | list[dict], str]], scorer: Scorer) -> list[float]:
    """SCORER's value of every (prompt, response) item, each distinct one scored once."""
    keys: dict[tuple[str, str], int] = {}
    for prompt, text in items:
        keys.setdefault((json.dumps(prompt), text), len(keys))
    values = scorer([(json.loads(p), t) for p, t in keys])
    return [values[keys[json.dumps(prompt), text]] for prompt, text in items]
