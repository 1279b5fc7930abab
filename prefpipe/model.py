"""The reward model: any Hugging Face backbone with a scalar head, read and written as a standard
`AutoModelForSequenceClassification` folder (no custom code), so TRL and RewardBench load it as is.

Pooling: encoders (BERT-like) read the first token, as their sequence-classification heads do;
decoders (GPT/Llama-like) read the last token that the attention mask keeps, whatever the padding side.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel


def load_reward_model(path: str | Path) -> PreTrainedModel:
    """A reward model (num_labels = 1) from a local folder; never from a hub."""
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, local_files_only=True)
    if model.config.pad_token_id is None and model.config.eos_token_id is not None:
        model.config.pad_token_id = model.config.eos_token_id
    return model


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
