"""Pooling and the saved folder of the reward model, on tiny models built from a config."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, GPT2Config

from prefpipe.loading import load_reward_model
from prefpipe.model import rewards

PAD = 0


def tiny(kind: str, path):
    torch.manual_seed(0)
    config = (GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=2, n_head=2, pad_token_id=PAD)
              if kind == "decoder" else
              BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=32, pad_token_id=PAD))
    config.num_labels = 1
    AutoModelForSequenceClassification.from_config(config).save_pretrained(path)
    return load_reward_model(path).eval()


def padded(rows: list[list[int]], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids, mask = [], []
    for row in rows:
        pad = [PAD] * (width - len(row))
        ids.append(pad + row if side == "left" else row + pad)
        mask.append([0] * len(pad) + [1] * len(row) if side == "left" else [1] * len(row) + [0] * len(pad))
    return torch.tensor(ids), torch.tensor(mask)


@pytest.mark.parametrize("kind", ["decoder", "encoder"])
def test_pooling_ignores_padding_on_either_side(kind, tmp_path):
    model = tiny(kind, tmp_path)
    rows = [[5, 6, 7, 8, 9], [5, 11], [12, 13, 14]]
    with torch.inference_mode():
        alone = torch.stack([rewards(model, *padded([row], "right"))[0] for row in rows])
        sides = ["right", "left"] if kind == "decoder" else ["right"]  # encoders are right-padded
        for side in sides:
            assert torch.allclose(rewards(model, *padded(rows, side)), alone, atol=1e-5), side


@pytest.mark.parametrize("kind", ["decoder", "encoder"])
def test_plain_transformers_reads_the_same_rewards(kind, tmp_path):
    model = tiny(kind, tmp_path / "a")
    model.save_pretrained(tmp_path / "b")
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "b").eval()  # no custom code
    ids, mask = padded([[5, 6, 7, 8, 9], [5, 11, 3, 4, 2]], "right")
    with torch.inference_mode():
        assert torch.allclose(plain(input_ids=ids, attention_mask=mask).logits[:, 0], rewards(model, ids, mask),
                              atol=1e-5)
