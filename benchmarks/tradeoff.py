"""The probability–quality trade-off's sampling and scoring on a tiny GPT-2-shaped model (4 layers, 256
hidden, 4 heads, GPT-2's 50,257-token vocabulary, random weights: an aligned model and a prior), side by side:

- batched: prefpipe.sampling.sample (prompts sorted by length, left-padded, many prompts × samples per
  generate call, KV cache) then the prior's log-probabilities of every sample (prefpipe.dpo.sequence_logprobs,
  length-sorted batches);
- per_prompt_loop: a generate call per prompt, its samples as num_return_sequences, the same otherwise;
- loop: a generate call per prompt and sample, as the paper's published sampling script runs by default (a
  text-generation pipeline over each prompt's K copies at batch size 1; tanyjnaaman/probability-quality-paradox,
  src/experiments/language_model_experiments/sample_from_model.py), KV cache on, with the same GenerationConfig
  and the same logits processors (the recorders and the setting's warpers); then the prior's log-probability of
  each sample, one forward pass each.

Both draw and score the same number of prompts × samples under each setting; the rate is sampled tokens
(EOS included) per second of sampling plus scoring, over all settings and per setting, from the median of
--repeats alternating runs. Then the
toy's run time (1,000 corpora × 100,000 draws, prefpipe.tradeoff.toy), the median of --toy-repeats. Prints JSON.
Usage: python benchmarks/tradeoff.py [--vocab 50257] [--prompts 16] [--samples 4] [--max-new-tokens 48] [--repeats 3]
                                     [--toy-repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SETTINGS = (("ancestral", 1.0), ("nucleus=0.9", 0.75), ("top-k=50", 1.25))


def models(vocab: int, seed: int = 0):
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    config = GPT2Config(n_layer=4, n_embd=256, n_head=4, n_positions=512, vocab_size=vocab, bos_token_id=vocab - 1,
                        eos_token_id=vocab - 1)
    built = []
    for offset in (0, 1):
        torch.manual_seed(seed + offset)
        built.append(AutoModelForCausalLM.from_config(config).eval())
    return built  # aligned, prior


def prompts(count: int, vocab: int, seed: int = 0) -> list[list[int]]:
    import random

    rng = random.Random(seed)
    return [[rng.randrange(vocab - 1) for _ in range(rng.randint(16, 96))] for _ in range(count)]


def batched(aligned, prior, prompt_ids, setting, samples: int, max_new_tokens: int) -> int:
    from prefpipe.dpo import sequence_logprobs
    from prefpipe.sampling import sample

    device = aligned.device
    found = sample(aligned, prompt_ids, setting, samples, max_new_tokens=max_new_tokens, seed=0, eos_id=eos(aligned),
                   pad_id=eos(aligned), device=device)
    sequence_logprobs(prior, [(prompt_ids[s.prompt] + s.tokens, len(prompt_ids[s.prompt])) for s in found],
                      eos(aligned), device=device)
    return sum(len(s.tokens) for s in found)


def loop(aligned, prior, prompt_ids, setting, samples: int, max_new_tokens: int, per_prompt: bool = False) -> int:
    """A generate call per prompt and sample (PER_PROMPT: per prompt, its samples as num_return_sequences),
    then a forward pass of the prior per sample."""
    import torch
    from transformers import LogitsProcessorList

    from prefpipe.sampling import Recorder, generation_config

    end, device = eos(aligned), aligned.device
    config = generation_config(max_new_tokens, end, end)
    config.num_return_sequences = samples if per_prompt else 1
    aligned.generation_config = config
    tokens = 0
    torch.manual_seed(0)
    for ids in prompt_ids:
        for _ in range(1 if per_prompt else samples):
            raw, warped = Recorder(), Recorder()
            processors = LogitsProcessorList([raw, *setting.adaptor.warpers(setting.temperature, device), warped])
            with torch.inference_mode():
                out = aligned.generate(input_ids=torch.tensor([ids], device=device),
                                       attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                                       generation_config=config, logits_processor=processors)
                raw.finish(out), warped.finish(out)
                for row in out:
                    new = row[len(ids):].tolist()
                    new = new[:new.index(end) + 1] if end in new else new
                    tokens += len(new)
                    full = torch.tensor([ids + new], device=device)
                    logp = prior(full).logits[0, :-1].float().log_softmax(-1)
                    logp[len(ids) - 1:].gather(-1, full[0, len(ids):, None]).sum()
    return tokens


def per_prompt_loop(aligned, prior, prompt_ids, setting, samples: int, max_new_tokens: int) -> int:
    return loop(aligned, prior, prompt_ids, setting, samples, max_new_tokens, per_prompt=True)


def eos(model) -> int:
    return model.config.vocab_size - 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", type=int, default=50257, help="vocabulary size (GPT-2's: 50257)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--toy-repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu | cuda (both sides run there)")
    args = parser.parse_args()
    import torch

    from prefpipe.adaptors import Adaptor, Setting
    from prefpipe.tradeoff_toy import toy

    aligned, prior = (m.to(args.device) for m in models(args.vocab))
    prompt_ids = prompts(args.prompts, args.vocab)
    settings = [Setting(Adaptor.parse(a), t) for a, t in SETTINGS]
    sides = {"batched": batched, "loop": loop, "per_prompt_loop": per_prompt_loop}
    seconds = {(name, s.name): [] for name in sides for s in settings}
    tokens: dict[tuple[str, str], int] = {}
    for _ in range(args.repeats):
        for name, run in sides.items():
            for setting in settings:
                started = time.perf_counter()
                tokens[name, setting.name] = run(aligned, prior, prompt_ids, setting, args.samples,
                                                 args.max_new_tokens)
                seconds[name, setting.name].append(time.perf_counter() - started)
    toy_seconds, result = [], None
    for _ in range(args.toy_repeats):
        started = time.perf_counter()
        result = toy()
        toy_seconds.append(time.perf_counter() - started)

    def rate(name: str, setting: str | None = None) -> float:  # the median run's tokens per second
        chosen = [s.name for s in settings] if setting is None else [setting]
        runs = [sum(seconds[name, c][r] for c in chosen) for r in range(args.repeats)]
        return sum(tokens[name, c] for c in chosen) / statistics.median(runs)

    print(json.dumps({
        "model": f"GPT-2 shape, 4 layers, 256 hidden, 4 heads, vocabulary {args.vocab}, random weights",
        "device": args.device,
        "prompts": args.prompts, "samples": args.samples, "max_new_tokens": args.max_new_tokens,
        "torch_threads": torch.get_num_threads(),
        "sampled_tokens": sum(tokens["batched", s.name] for s in settings),
        "tokens_per_s": {name: round(rate(name)) for name in sides},
        "speedup": round(rate("batched") / rate("loop"), 2),
        "speedup_over_per_prompt_loop": round(rate("batched") / rate("per_prompt_loop"), 2),
        "per_setting": {s.name: {**{name: round(rate(name, s.name)) for name in sides},
                                 "speedup": round(rate("batched", s.name) / rate("loop", s.name), 2)}
                        for s in settings},
        "toy": result and {"corpora": result.config.corpora, "draws": result.config.draws,
                           "seconds": {"median": round(statistics.median(toy_seconds), 2),
                                       "runs": [round(s, 2) for s in toy_seconds]},
                           "typical": int(result.typical.sum())},
    }, indent=2))


if __name__ == "__main__":
    main()
