"""A faster scoring forward for BERT reward models (the packaged MiniLM and every reward model trained from it),
on CPU in fp32: the arithmetic of transformers' `BertForSequenceClassification` in eval mode, read from the
model's own modules at each call (so a model being trained is never scored with stale weights), with two changes
that move a score only by float rounding:

- The last layer computes the first token alone: the pooler reads nothing else, and that token's output needs its
  own query against every key and value. The last layer's keys and values are still made for every token; its
  query, attention output and feed-forward for one. (MiniLM: 14% of the linear FLOPs.)
- Linear layers run on oneDNN, the GELU fused into the feed-forward's first one: `torch.ops.mkldnn._linear_pointwise`,
  the op that Inductor's CPU fusion emits (torch/_inductor/fx_passes/mkldnn_fusion.py), over weights reordered into
  oneDNN's layout once per scoring call (`_reorder_linear_weight`: 4% faster than the plain layout). torch's own fp32
  GEMM is MKL's, which on this AMD EPYC ran MiniLM's shapes at 0.65-0.8 of oneDNN's speed (`benchmarks/score.py`).
  The ops are private to torch: `onednn_agrees` checks them against `F.linear` once, and `F.linear` is used where
  they are absent or disagree.

Other models, other devices and other dtypes keep the model's own forward (`fast_forward` returns None).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
import torch.nn.functional as F
from transformers import BertForSequenceClassification

Linear = Callable[[torch.Tensor, torch.nn.Linear, bool], torch.Tensor]  # x, layer, gelu


def fast_forward(model, device: torch.device | str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """Rewards [B] of right-padded (input_ids, attention_mask) by the fast path, with MODEL's weights as they are
    now (call it again after they change), or None where it does not apply."""
    config = model.config
    if not (isinstance(model, BertForSequenceClassification) and torch.device(device).type == "cpu"
            and model.dtype == torch.float32 and not model.training and config.hidden_act == "gelu"
            and not config.is_decoder and config.num_labels == 1 and model.bert.pooler is not None):
        return None
    linear = _onednn_linear(model) if onednn_agrees() else _torch_linear
    return lambda input_ids, attention_mask: _rewards(model, linear, input_ids, attention_mask)


def _rewards(model: BertForSequenceClassification, linear: Linear, input_ids: torch.Tensor,
             attention_mask: torch.Tensor) -> torch.Tensor:
    bert, (rows, width) = model.bert, input_ids.shape
    embeddings = bert.embeddings  # absolute positions from 0 and token type 0, as when the model is called plainly
    x = embeddings.LayerNorm(embeddings.word_embeddings(input_ids) + embeddings.token_type_embeddings.weight[0]
                             + embeddings.position_embeddings.weight[:width])
    keep = attention_mask.bool()[:, None, None, :]
    layers = bert.encoder.layer
    for index, layer in enumerate(layers):
        attention = layer.attention.self
        split = (rows, -1, attention.num_attention_heads, attention.attention_head_size)
        key, value = (linear(x, part, False).view(split).transpose(1, 2) for part in (attention.key, attention.value))
        if index == len(layers) - 1:
            x = x[:, :1]  # the first token: its query, and everything after attention, alone
        query = linear(x, attention.query, False).view(split).transpose(1, 2)
        context = F.scaled_dot_product_attention(query, key, value, attn_mask=keep, scale=attention.scaling)
        context = context.transpose(1, 2).reshape(rows, -1, attention.all_head_size)
        output = layer.attention.output
        x = output.LayerNorm(linear(context, output.dense, False) + x)
        x = layer.output.LayerNorm(linear(linear(x, layer.intermediate.dense, True), layer.output.dense, False) + x)
    pooled = torch.tanh(F.linear(x[:, 0], bert.pooler.dense.weight, bert.pooler.dense.bias))
    return F.linear(pooled, model.classifier.weight, model.classifier.bias)[:, 0]


def _torch_linear(x: torch.Tensor, layer: torch.nn.Linear, gelu: bool) -> torch.Tensor:
    y = F.linear(x, layer.weight, layer.bias)
    return F.gelu(y) if gelu else y


def _onednn_linear(model: torch.nn.Module) -> Linear:
    """oneDNN's linear over MODEL's linear layers, their weights as they are now, each reordered once."""
    packed = {layer: torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach())
              for layer in model.modules() if isinstance(layer, torch.nn.Linear)}

    def linear(x: torch.Tensor, layer: torch.nn.Linear, gelu: bool) -> torch.Tensor:
        # attr "gelu" with algorithm "none" is the exact (erf) GELU of BERT's "gelu"
        return torch.ops.mkldnn._linear_pointwise(x, packed[layer], layer.bias, "gelu" if gelu else "none", [],
                                                  "none" if gelu else "")
    return linear


@cache
def onednn_agrees() -> bool:
    """Whether torch has oneDNN's linear ops and they agree with `F.linear` (and the fused GELU with `F.gelu`) on a
    probe of MiniLM's shapes."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")):
        return False
    generator = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(384, 96)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(96, 384, generator=generator))
        layer.bias.copy_(torch.randn(96, generator=generator))
    x = torch.randn(3, 5, 384, generator=generator)
    try:
        with torch.inference_mode():
            onednn = _onednn_linear(layer)
            return all(torch.allclose(onednn(x, layer, gelu), _torch_linear(x, layer, gelu), rtol=1e-4, atol=1e-4)
                       for gelu in (False, True))
    except RuntimeError:
        return False
