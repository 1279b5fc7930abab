"""Sampling from an aligned causal LM under sampling adaptors, for the probability–quality trade-off
(prefpipe.tradeoff).

An adaptor reshapes each next-token distribution before a token is drawn: the temperature τ (logits / τ),
then at most one truncation: top-k, nucleus (top-p), locally typical, or η. Every setting is stated to
transformers' `generate` explicitly: the GenerationConfig turns every built-in adaptor off (`top_k=0`: its
default of 50 would silently truncate every "ancestral" sample) and the model folder's own
generation_config.json is not read; the setting's warpers, transformers' own classes, are passed as the
logits processors, between two recorders that keep each drawn token's log-probability before the warping
(log p⁺, the aligned model's) and after it (the distribution it was drawn from).

Generation is batched with the KV cache: prompts sorted by length, left-padded, each repeated once per
sample, a batch seeded from (seed, setting, batch), so a run is reproducible (one batch at a time per process:
the seed is global to torch). EOS ends a sample.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from prefpipe.adaptors import Adaptor, Setting
from prefpipe.dpo import check_pair, sequence_logprobs
from prefpipe.errors import InputError
from prefpipe.files import folder_hash
from prefpipe.inputs import InputBuilder, prompt_and_response
from prefpipe.loading import load_tokenizer, loaded_lm, loaded_tokenizer, quiet_transformers
from prefpipe.model_files import model_config
from prefpipe.scoring import score_items

SAMPLE_TOKENS = 8192  # rows × (prompt + new tokens) per generate call on CPU
# generate draws from torch's global generator, which each batch seeds: one sampling at a time per process
# (threads of a Dask worker, a thread pool), or samples would depend on how the threads interleave
SAMPLING = threading.Lock()


def generation_config(max_new_tokens: int, eos_id: int, pad_id: int) -> GenerationConfig:
    """Sampling with every built-in adaptor off, each stated (the setting's warpers come as processors)."""
    return GenerationConfig(do_sample=True, num_beams=1, temperature=1.0, top_k=0, top_p=1.0, typical_p=1.0,
                            min_p=None, top_h=None, epsilon_cutoff=0.0, eta_cutoff=0.0, repetition_penalty=1.0,
                            no_repeat_ngram_size=0, renormalize_logits=False, max_new_tokens=max_new_tokens,
                            min_new_tokens=0, eos_token_id=eos_id, pad_token_id=pad_id, use_cache=True)


class Recorder(LogitsProcessor):
    """Keeps, at each step, the log-probability that the scores it sees give the token then drawn: that
    token is known at the next step (the last column of input_ids) or, for the last step, from the output.
    It holds the step's scores and their log-normaliser, not a log-softmax of the whole vocabulary."""

    def __init__(self) -> None:
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None
        self.drawn: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.previous is not None:
            self.drawn.append(self._logprob(input_ids[:, -1:]))
        self.previous = (scores, torch.logsumexp(scores.float(), dim=-1))  # warpers return new tensors
        return scores

    def finish(self, sequences: torch.LongTensor) -> torch.Tensor:
        """(rows, steps): each step's drawn token's log-probability."""
        return torch.stack([*self.drawn, self._logprob(sequences[:, -1:])], dim=1)

    def _logprob(self, tokens: torch.Tensor) -> torch.Tensor:
        scores, normaliser = self.previous
        return scores.gather(1, tokens).squeeze(1).float() - normaliser


@dataclass(frozen=True)
class Sample:
    prompt: int  # index into the prompts
    index: int  # which of the prompt's samples
    tokens: list[int]  # the response's tokens (EOS included when it ended the sample)
    ended: bool  # EOS ended it (else max_new_tokens did)
    log_aligned: float  # Σ log p⁺ over the response's tokens
    log_aligned_warped: float  # Σ log of the warped distribution each token was drawn from


def prompt_inputs(tokenizer, prompts: list, max_length: int) -> list[list[int]]:
    """Each prompt's token ids as the model reads it before its response (as reward models and DPO read
    it: prefpipe.inputs), keeping its end when longer than MAX_LENGTH."""
    builder = InputBuilder(tokenizer, max_length)
    texts = [prompt_and_response(tokenizer, p, "")[0] for p in prompts]
    with quiet_transformers():
        ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]  # cut below, knowingly
    room = max_length - len(builder.prefix)
    return [builder.prefix + t[max(0, len(t) - room):] for t in ids]


def sample(model, prompt_ids: list[list[int]], setting: Setting, samples: int, *, max_new_tokens: int, seed: int,
           eos_id: int, pad_id: int, device: torch.device | str = "cpu", max_tokens: int = SAMPLE_TOKENS
           ) -> list[Sample]:
    """SAMPLES responses to each prompt from MODEL under SETTING, in batches of prompts sorted by length."""
    config = generation_config(max_new_tokens, eos_id, pad_id)
    model.generation_config = config  # not the folder's: nothing unstated
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    found: list[Sample] = []
    for number, batch in enumerate(_batches(order, prompt_ids, samples, max_new_tokens, max_tokens)):
        rows = [(i, j) for i in batch for j in range(samples)]
        ids, mask = left_pad([prompt_ids[i] for i, _ in rows], pad_id)
        raw, warped = Recorder(), Recorder()
        processors = LogitsProcessorList([raw, *setting.adaptor.warpers(setting.temperature, device), warped])
        with SAMPLING, torch.inference_mode(), quiet_transformers():
            torch.manual_seed(zlib.crc32(f"{seed}/{setting.name}/{number}".encode()))
            sequences = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                       generation_config=config, logits_processor=processors)
        new = sequences[:, ids.shape[1]:].cpu()
        plain, shaped = raw.finish(sequences).cpu(), warped.finish(sequences).cpu()
        for row, (i, j) in enumerate(rows):
            stops = (new[row] == eos_id).nonzero()
            length = int(stops[0]) + 1 if len(stops) else new.shape[1]
            found.append(Sample(i, j, new[row, :length].tolist(), bool(len(stops)),
                                float(plain[row, :length].sum()), float(shaped[row, :length].sum())))
    return sorted(found, key=lambda s: (s.prompt, s.index))


def _batches(order: list[int], prompt_ids: list[list[int]], samples: int, max_new_tokens: int,
             max_tokens: int) -> list[list[int]]:
    """ORDER (prompts sorted by length) cut into batches of at most MAX_TOKENS generated-and-read tokens."""
    batches, current = [], []
    for i in order:
        width = len(prompt_ids[i]) + max_new_tokens  # sorted: the newest is the widest
        if current and (len(current) + 1) * samples * width > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    return batches + ([current] if current else [])


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows padded on the left (generation continues every row at the right edge), with their mask."""
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq):] = 1
    return ids, mask


def resolve_device(device: str) -> str:
    """auto: CUDA when present, else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"must be auto, cpu or cuda[:N], got {device!r}", field="--device")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("CUDA is not available on this machine", field="--device")
    return device


# -- the trade-off's samples of a pair of local causal LMs -----------------------------------------------

def check_models(aligned: Path | str, prior: Path | str, max_new_tokens: int) -> int:
    """The aligned model and the prior are causal LMs with one tokenizer, which has an EOS token; returns
    how many prompt tokens fit beside MAX_NEW_TOKENS in both."""
    check_pair(aligned, prior, ("--aligned", "--prior"), "the aligned model and the prior")
    if load_tokenizer(aligned).eos_token_id is None:
        raise InputError("its tokenizer has no EOS token: samples could not end", file=aligned, field="--aligned")
    limit = min((n for n in (_positions(model_config(path)) for path in (aligned, prior)) if n), default=1 << 30)
    if limit - max_new_tokens < 1:
        raise InputError(f"leaves no room for a prompt: the models read at most {limit} tokens",
                         field="--max-new-tokens")
    return limit - max_new_tokens


def sample_table(aligned: str, prompts: list[tuple[str, str | list[dict]]], setting: Setting, *, samples: int,
                 max_new_tokens: int, seed: int, room: int, device: str = "cpu") -> pa.Table:
    """SAMPLES responses to every prompt from the ALIGNED model under SETTING: a row per sample with its
    tokens, text and log p⁺ (plain and warped)."""
    model, tokenizer = loaded_lm(aligned, device), loaded_tokenizer(aligned)
    prompt_ids = prompt_inputs(tokenizer, [p for _, p in prompts], room)
    found = sample(model, prompt_ids, setting, samples, max_new_tokens=max_new_tokens, seed=seed,
                   eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id, device=device)
    texts = tokenizer.batch_decode([s.tokens[:-1] if s.ended else s.tokens for s in found], skip_special_tokens=True)
    rows = len(found)
    return pa.table({
        "kind": ["model"] * rows, "setting": [setting.name] * rows, "adaptor": [setting.adaptor.kind] * rows,
        "adaptor_value": pa.array([setting.adaptor.value] * rows, pa.float64()),
        "temperature": [setting.temperature] * rows,
        "prompt_id": [prompts[s.prompt][0] for s in found], "prompt": [json.dumps(prompts[s.prompt][1]) for s in found],
        "sample": [s.index for s in found], "response": texts,
        "token_ids": pa.array([s.tokens for s in found], pa.list_(pa.int32())),
        "tokens": [len(s.tokens) for s in found], "ended": [s.ended for s in found],
        "log_aligned": [s.log_aligned for s in found], "log_aligned_warped": [s.log_aligned_warped for s in found],
        "seed": [seed] * rows})


def score_samples(samples: pa.Table, aligned: str, prior: str, room: int, reward, reward_source: str,
                  device: str = "cpu") -> pa.Table:
    """SAMPLES with log p(y|x) under the PRIOR (over the response's tokens only) and the reward: REWARD's
    (a scorer of (prompt, response text) items), or with REWARD None the implicit one, log p⁺ − log p."""
    model, tokenizer = loaded_lm(prior, device), loaded_tokenizer(aligned)
    prompts = {pid: json.loads(p) for pid, p in zip(samples["prompt_id"].to_pylist(), samples["prompt"].to_pylist(),
                                                    strict=True)}
    prompt_ids = dict(zip(prompts, prompt_inputs(tokenizer, list(prompts.values()), room), strict=True))
    inputs = [(prompt_ids[pid] + tokens, len(prompt_ids[pid]))
              for pid, tokens in zip(samples["prompt_id"].to_pylist(), samples["token_ids"].to_pylist(), strict=True)]
    log_prior = sequence_logprobs(model, inputs, tokenizer.pad_token_id, device=device)
    if reward is None:
        values = [a - p for a, p in zip(samples["log_aligned"].to_pylist(), log_prior, strict=True)]
    else:
        values = score_items([(prompts[pid], text) for pid, text in zip(
            samples["prompt_id"].to_pylist(), samples["response"].to_pylist(), strict=True)], reward)
    return (samples.append_column("log_prior", pa.array(log_prior, pa.float64()))
            .append_column("reward", pa.array(values, pa.float64()))
            .append_column("reward_source", pa.array([reward_source] * samples.num_rows, pa.string())))


def _positions(config: dict) -> int | None:
    return config.get("max_position_embeddings") or config.get("n_positions")


REFERENCE_SETTING = Setting(Adaptor.parse("ancestral"), 1.0)  # π_ref itself: no adaptor, τ = 1


def reference_samples(reference_lm: str, prompts: dict[str, str | list[dict]], samples: int, *, seed: int,
                      cache: Path, max_new_tokens: int = 128, device: str = "cpu") -> list[tuple[str, str]]:
    """SAMPLES responses of the REFERENCE_LM (π_ref, ancestral at τ = 1) to each of PROMPTS ({key: prompt}), as
    (key, text): a combination's references (`--references samples`). Each prompt is sampled alone, seeded from
    SEED and its text, so its samples do not depend on the other prompts; they are kept in CACHE (a folder per
    model state) and read back on the next run."""
    folder = Path(cache) / folder_hash(reference_lm)[:16]
    folder.mkdir(parents=True, exist_ok=True)
    found = []
    for key, prompt in prompts.items():
        text = json.dumps(prompt, sort_keys=True)
        digest = hashlib.sha256(f"{text}\n{samples}\n{seed}\n{max_new_tokens}".encode()).hexdigest()[:24]
        path = folder / f"{digest}.json"
        if path.is_file():
            texts = json.loads(path.read_text())
        else:
            model, tokenizer = loaded_lm(reference_lm, device), loaded_tokenizer(reference_lm)
            room = (_positions(model_config(reference_lm)) or 1 << 30) - max_new_tokens
            if room < 1:
                raise InputError(f"reads at most {room + max_new_tokens} tokens: no room for a prompt beside "
                                 f"{max_new_tokens} new ones", file=reference_lm, field="--reference-lm")
            drawn = sample(model, prompt_inputs(tokenizer, [prompt], room), REFERENCE_SETTING, samples,
                           max_new_tokens=max_new_tokens, seed=zlib.crc32(f"{seed}/{text}".encode()),
                           eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id, device=device)
            texts = tokenizer.batch_decode([s.tokens[:-1] if s.ended else s.tokens for s in drawn],
                                           skip_special_tokens=True)
            staged = path.with_suffix(f".{os.getpid()}.tmp")
            staged.write_text(json.dumps(texts))
            staged.replace(path)  # whole or not at all, also with two runs at once
        found += [(key, t) for t in texts]
    return found
