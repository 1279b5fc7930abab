"""Normalised models: plain transformers reads mean 0 (std 1) on the reference set; no comparison changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import LLMBAR, first_rows
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from prefpipe.errors import InputError
from prefpipe.evalsets import read_evalset
from prefpipe.inputs import render_text
from prefpipe.normalise import normalise_model, reference_items
from prefpipe.registry import add_model, model_record, register_evalset, register_normalised
from prefpipe.synth import synthetic_batch, tiny_reward_model


def plain_rewards(folder, items) -> np.ndarray:
    """Rewards as any tool reads them: plain transformers on each whole text, one at a time."""
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.inference_mode():
        return np.array([model.eval()(**tokenizer(render_text(tokenizer, p, t), return_tensors="pt")).logits[0, 0].item()
                         for p, t in items])


@pytest.mark.parametrize("kind", ["encoder", "decoder"])  # a head with a bias; GPT-2's, without (ln_f takes it)
def test_a_normalised_copy_reads_mean_zero_and_keeps_every_comparison(tmp_path, wh, settings, ingest, kind):
    import json

    batch = synthetic_batch(tmp_path / "b.jsonl", 120, bad_lines=0)
    ingest(*[json.loads(line) for line in batch.read_text().splitlines()])
    register_evalset(wh, settings.home, first_rows(LLMBAR, 30, tmp_path / "small.jsonl"), "small")
    source = tiny_reward_model(tmp_path / kind, kind, seed=4, positions=2048)  # every LLMBar text fits
    add_model(wh, source, "rm")
    for to, scale in (("edits", False), ("evalset:small", True), ("split:test", False)):
        items = reference_items(wh, to)
        target = settings.models / f"rm-{to.replace(':', '-')}"
        record = normalise_model(source, target, items, scale, to)
        got = plain_rewards(target, items)
        # float32 rewards: 1e-5 of the original reward's unit (the scale, 1/std, multiplies its rounding)
        assert abs(got.mean()) < 1e-5 * record["scale"], (to, got.mean(), record["scale"])
        if scale:
            assert record["scale"] > 1 and got.std() == pytest.approx(1.0, abs=1e-5 * record["scale"])
        assert record["size"] == len(items) > 0 and record["reference"] == to
        register_normalised(wh, "rm", target.name, target, record)
        assert json.loads(model_record(wh, target.name)["hyperparameters"])["normalised_from"] == "rm"
    examples = read_evalset(tmp_path / "small.jsonl")
    pairs = [(e.prompt, t) for e in examples for t in (e.chosen[0], e.rejected[0])]
    before, after = plain_rewards(source, pairs), plain_rewards(settings.models / "rm-evalset-small", pairs)
    assert ((before[0::2] > before[1::2]) == (after[0::2] > after[1::2])).all()  # the same accuracy, pair by pair
    with pytest.raises(InputError, match=r"--to: must be edits, evalset:NAME, split:NAME"):
        reference_items(wh, "split:nope")
    with pytest.raises(InputError, match=r"nope: --to: no such evaluation set"):
        reference_items(wh, "evalset:nope")
