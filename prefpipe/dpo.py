"""DPO-trained policies as reward models, through their implicit reward (Rafailov et al., 2023):

    r(x, y) = Σ_t log π(y_t | x, y_<t) − Σ_t log π_ref(y_t | x, y_<t)      over the response's tokens

β is left out: it scales every reward alike and changes no comparison. The policy and the reference
are causal LMs from local folders and share the policy's tokenizer. The input is the same prompt and
response text that reward models read (`prefpipe.inputs.prompt_and_response`), the prompt's tokens then
the response's, with EOS after the response when there is no chat template (as TRL's DPO trainer
writes its completions).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from transformers import PreTrainedModel

from prefpipe.errors import InputError
from prefpipe.inputs import InputBuilder
from prefpipe.loading import load_causal_lm, load_tokenizer
from prefpipe.model import SCORE_TOKENS, length_batches, max_positions, pad
from prefpipe.model_files import is_causal_lm, model_config


def check_causal_lm(path: Path | str, field: str, role: str = "a DPO policy and its reference") -> dict:
    """The config of PATH, or a clear error unless it is a local causal-LM folder (ROLE are causal LMs)."""
    config = model_config(path, field)
    if not is_causal_lm(config):
        raise InputError(f"{role} are causal LMs; this folder holds "
                         f"{', '.join(config.get('architectures') or []) or 'no architecture'}",
                         file=Path(path) / "config.json", field=field)
    return config


def check_pair(policy: Path | str, reference: Path | str, fields: tuple[str, str] = ("PATH (policy)", "--reference"),
               role: str = "a DPO policy and its reference") -> None:
    """Both folders are causal LMs with one vocabulary: the same embedding size and, when the second has a
    tokenizer of its own, the same tokens with the same ids (the first's tokenizer reads for both)."""
    configs = [check_causal_lm(path, field, role) for path, field in zip((policy, reference), fields, strict=True)]
    sizes = [c.get("vocab_size") for c in configs]
    if sizes[0] != sizes[1]:
        raise InputError(f"must share the tokenizer of {policy} ({fields[0]}): vocabularies of {sizes[0]} and "
                         f"{sizes[1]} tokens", file=reference, field=fields[1])
    try:
        theirs = load_tokenizer(reference).get_vocab()
    except (OSError, ValueError, TypeError):
        return  # no tokenizer of its own: it reads the first's
    ours = load_tokenizer(policy).get_vocab()
    if ours != theirs:
        differ = len(set(ours.items()) ^ set(theirs.items()))
        raise InputError(f"must share the tokenizer of {policy} ({fields[0]}): {differ} (token, id) entries differ, "
                         f"of {len(ours)} and {len(theirs)}", file=reference, field=fields[1])


def response_inputs(tokenizer, items: list[tuple[str | list[dict], str]], max_length: int
                    ) -> list[tuple[list[int], int]]:
    """(token ids, where the response starts) of every (prompt, response); too long: the prompt is cut
    from the left first, as for reward models."""
    eos = [] if getattr(tokenizer, "chat_template", None) or tokenizer.eos_token_id is None else [
        tokenizer.eos_token_id]
    builder = InputBuilder(tokenizer, max_length - len(eos))
    return [(ids + eos, start) for ids, start in builder.build_with_start(items)]


def sequence_logprobs(model: PreTrainedModel, inputs: list[tuple[list[int], int]], pad_id: int, *,
                      max_tokens: int = SCORE_TOKENS, device: torch.device | str = "cpu") -> list[float]:
    """Σ log p(token | everything before it) over each input's tokens from its start, in input order.

    Batches are sorted by length and right-padded: with causal attention a padded position is never
    attended to by a real one, so a sum does not depend on its batch."""
    sums = [0.0] * len(inputs)
    trims = "logits_to_keep" in inspect.signature(model.forward).parameters
    with torch.inference_mode():
        for batch in length_batches([len(ids) for ids, _ in inputs], max_tokens):
            rows = [inputs[i] for i in batch]
            ids, mask = (t.to(device) for t in pad([r[0] for r in rows], pad_id))
            first = min(max(r[1], 1) for r in rows)  # the first target position any row sums from
            # the vocabulary projection of the positions that predict a summed token only (not the prompts')
            keep = {"logits_to_keep": ids.shape[1] - first + 1} if trims else {}
            logits = model(input_ids=ids, attention_mask=mask, **keep).logits[:, :-1].float()
            start = ids.shape[1] - logits.shape[1]  # the first target of the kept logits
            targets = ids[:, start:]
            token_logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
            positions = torch.arange(start, ids.shape[1], device=ids.device)  # the position of each target
            begins = torch.tensor([max(r[1], 1) for r in rows], device=ids.device)
            summed = (positions >= begins[:, None]) & mask[:, start:].bool()
            for i, value in zip(batch, (token_logp * summed).sum(-1).tolist(), strict=True):
                sums[i] = value
    return sums


class ImplicitReward:
    """The implicit reward of a DPO policy against its reference, as a scorer of (prompt, response) items."""

    def __init__(self, policy: Path | str, reference: Path | str, device: str = "cpu") -> None:
        check_pair(policy, reference)
        self.tokenizer = load_tokenizer(policy)
        self.policy, self.reference = load_causal_lm(policy).to(device), load_causal_lm(reference).to(device)
        self.device = device

    def __call__(self, items: list[tuple[str | list[dict], str]], *, max_length: int = 2048,
                 max_tokens: int = SCORE_TOKENS) -> list[float]:
        limit = min(max_length, *(max_positions(m) or max_length for m in (self.policy, self.reference)))
        inputs = response_inputs(self.tokenizer, items, limit)
        pad_id = self.tokenizer.pad_token_id
        policy = sequence_logprobs(self.policy, inputs, pad_id, max_tokens=max_tokens, device=self.device)
        reference = sequence_logprobs(self.reference, inputs, pad_id, max_tokens=max_tokens, device=self.device)
        return [p - r for p, r in zip(policy, reference, strict=True)]


class SequenceLogprob:
    """Σ log π(y|x) over the response's tokens under a local causal LM (π_ref of the analyses), as a scorer
    of (prompt, response) items, with the LM's own tokenizer."""

    def __init__(self, path: Path | str, device: str = "cpu", field: str = "--reference-lm") -> None:
        vocabulary = check_causal_lm(path, field, "π_ref's language models").get("vocab_size")
        self.tokenizer = load_tokenizer(path)
        if vocabulary is not None and len(self.tokenizer) > vocabulary:
            raise InputError(f"its tokenizer does not fit the model: {len(self.tokenizer)} tokens for an embedding "
                             f"of {vocabulary}", file=path, field=field)
        self.model, self.device = load_causal_lm(path).to(device), device

    def __call__(self, items: list[tuple[str | list[dict], str]], *, max_length: int = 2048,
                 max_tokens: int = SCORE_TOKENS) -> list[float]:
        inputs = response_inputs(self.tokenizer, items, min(max_length, max_positions(self.model) or max_length))
        return sequence_logprobs(self.model, inputs, self.tokenizer.pad_token_id, max_tokens=max_tokens,
                                 device=self.device)
