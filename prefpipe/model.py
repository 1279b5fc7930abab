"""The reward model: any Hugging Face backbone with a scalar head, read and written as a standard
`AutoModelForSequenceClassification` folder (no custom code), so TRL and RewardBench load it as is.

Pooling: encoders (BERT-like) read the first token, as their sequence-classification heads do;
decoders (GPT/Llama-like) read the last token that the attention mask keeps, whatever the padding side.
"""

from __future__ import annotations

from functools import partial

import torch
from transformers import PreTrainedModel

from prefpipe.encoder import fast_forward

# Padded tokens per inference batch. Measured on MiniLM (2 CPU cores, LLMBar): 2048 scored 1.6x faster than
# 16384, whose activations no longer fit in cache; a GPU wants more (pass max_tokens).
SCORE_TOKENS = 2048


def max_positions(model: PreTrainedModel) -> int | None:
    """The longest input the model's position embeddings allow (None: no limit known)."""
    return getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)


def is_decoder(model: PreTrainedModel) -> bool:
    return hasattr(model, "score")  # decoder heads (GPT-2, Llama, ...) are `score`; encoders' `classifier`


def rewards(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One reward per row, shape [B]."""
    if not is_decoder(model):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]
    # Decoders: positions counted from the mask, so left padding and a pad token equal to EOS both work.
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions)
    last = (torch.arange(input_ids.shape[1], device=input_ids.device) * attention_mask).argmax(-1)
    pooled = hidden.last_hidden_state[torch.arange(input_ids.shape[0], device=input_ids.device), last]
    return model.score(pooled)[:, 0]


class RewardModel(torch.nn.Module):
    """`rewards` as a module, so that DistributedDataParallel sees every forward (decoders call submodules)."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return rewards(self.model, input_ids, attention_mask)


def score(model: PreTrainedModel, inputs: list[list[int]], pad_id: int, *, max_tokens: int = SCORE_TOKENS,
          device: torch.device | str = "cpu") -> list[float]:
    """The reward of every input (token ids), in input order.

    Inputs are scored in batches sorted by length, each padded only to its longest, under inference
    mode; padding is masked and positions come from the mask, so a score does not depend on its batch.
    BERT reward models on CPU take `prefpipe.encoder`'s faster forward.
    """
    scores = [0.0] * len(inputs)
    model.eval()
    forward = fast_forward(model, device) or partial(rewards, model)
    with torch.inference_mode():
        for batch in length_batches([len(s) for s in inputs], max_tokens):
            ids, mask = pad([inputs[i] for i in batch], pad_id)
            values = forward(ids.to(device), mask.to(device)).float().tolist()
            for i, value in zip(batch, values, strict=True):
                scores[i] = value
    return scores


def length_batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Indices sorted by length, cut into batches of at most MAX_TOKENS padded tokens (a longer one alone)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches, start = [], 0
    while start < len(order):
        end = start + 1  # sorted by length: the last of a batch is its widest
        while end < len(order) and (end - start + 1) * lengths[order[end]] <= max_tokens:
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask
