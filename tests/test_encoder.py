"""The fast scoring forward of BERT reward models: the model's own scores on each whole text, in any batch."""

from __future__ import annotations

import pytest
import torch
from helpers import LLMBAR
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2ForSequenceClassification

from prefpipe import encoder
from prefpipe.evalsets import read_evalset
from prefpipe.inputs import InputBuilder
from prefpipe.loading import load_reward_model, load_tokenizer
from prefpipe.model import length_batches, pad, score
from prefpipe.model_files import default_base


def whole(model, inputs: list[list[int]]) -> list[float]:
    """transformers' own forward on each input alone: no padding, no batch."""
    with torch.inference_mode():
        return [model(input_ids=torch.tensor([ids])).logits[0, 0].item() for ids in inputs]


def seeded(make, seed: int = 0):
    """MAKE() with torch's random state seeded, and the caller's state as it was after."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return make()


def tiny_bert() -> BertForSequenceClassification:
    config = BertConfig(vocab_size=60, hidden_size=48, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=96, max_position_embeddings=64, pad_token_id=0, num_labels=1)
    return seeded(lambda: BertForSequenceClassification(config).eval())


@pytest.fixture(scope="module")
def tiny():
    return tiny_bert()


@settings(max_examples=40, deadline=None)
@given(inputs=st.lists(st.lists(st.integers(1, 59), min_size=1, max_size=40), min_size=1, max_size=12),
       budget=st.integers(1, 200), onednn=st.booleans())
def test_any_batch_scores_each_input_as_the_model_does_on_its_whole_text(tiny, inputs, budget, onednn):
    linear = encoder._onednn_linear(tiny) if onednn and encoder.onednn_agrees() else encoder._torch_linear
    ours = [0.0] * len(inputs)
    with torch.inference_mode():
        for batch in length_batches(list(map(len, inputs)), budget):
            values = encoder._rewards(tiny, linear, *pad([inputs[i] for i in batch], 0))
            for i, value in zip(batch, values.tolist(), strict=True):
                ours[i] = value
    assert ours == pytest.approx(whole(tiny, inputs), abs=1e-4)


def test_minilm_on_llmbar_takes_onednn_and_scores_as_transformers_with_the_weights_of_the_moment():
    model = seeded(lambda: load_reward_model(default_base()).eval())  # a new scalar head, drawn the same each run
    examples = read_evalset(LLMBAR)[:12]
    inputs = InputBuilder(load_tokenizer(default_base()), 512).build(
        [(e.prompt, t) for e in examples for t in e.chosen + e.rejected])
    assert encoder.fast_forward(model, "cpu") is not None
    if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        assert encoder.onednn_agrees()  # the probe agreed: the fast GEMM is the one used
    for _ in range(2):  # the second time after a weight changed: nothing is cached from the first
        scores = score(model, inputs, 0, max_tokens=1024)
        assert scores == pytest.approx(whole(model, inputs), abs=1e-4)
        assert max(scores) - min(scores) > 1e-3  # not a constant
        with torch.no_grad():
            model.bert.encoder.layer[-1].intermediate.dense.weight.mul_(3.0)


def test_other_models_devices_and_modes_keep_their_own_forward(tiny):
    config = GPT2Config(n_embd=16, n_layer=1, n_head=2, num_labels=1, pad_token_id=0)
    decoder = seeded(lambda: GPT2ForSequenceClassification(config).eval())
    assert encoder.fast_forward(decoder, "cpu") is None
    assert encoder.fast_forward(tiny, "meta") is None
    assert encoder.fast_forward(tiny_bert().train(), "cpu") is None
    assert encoder.fast_forward(tiny_bert().to(torch.bfloat16), "cpu") is None
    relu = tiny_bert()
    relu.config.hidden_act = "relu"
    assert encoder.fast_forward(relu, "cpu") is None
