"""prefpipe's scoring against a RewardBench-style loop on the same model and data, in one run; prints JSON.

Model: the packaged all-MiniLM-L6-v2 with a scalar head. Data: the LLMBar set in RewardBench's format
(data/public/evalsets; the first --examples pairs). Both score the same input texts (prefpipe's
render_text) with at most 512 tokens, under torch.inference_mode(), one process.
- baseline (as RewardBench's run_rm.py does it): batches of 8 pairs in file order; chosen and rejected
  each tokenized and forwarded per pair, padded to the batch's longest; no sorting, no deduplication.
- prefpipe: `score_examples`: every distinct text once, sorted by length, batches filled to a token budget.
Also: this machine's fp32 matrix-multiply rate (torch's `a @ b`, MKL's GEMM), and prefpipe's model FLOP/s as a share
of it (forward FLOPs per token ≈ 2 × non-embedding parameters + attention 4 × layers × length × hidden: the model's
nominal FLOPs, whatever the forward skips). For an honest second look: oneDNN's rate on the same 2048² multiply
(prefpipe's encoder runs its linear layers on oneDNN) and the FLOPs prefpipe's forward executes as a share of it
(it skips the last layer's work for every token but the first: `prefpipe.encoder`).
Usage: python benchmarks/score.py [--examples 200] [--repeats 3]
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
LLMBAR = ROOT / "data" / "public" / "evalsets" / "llmbar-rewardbench.jsonl"


def matmul_gflops(size: int = 2048, repeats: int = 10, onednn: bool = False) -> float:
    """torch's fp32 matrix multiply (MKL's GEMM on CPU), or oneDNN's linear op that prefpipe's encoder uses."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    multiply = (lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")) if onednn else (lambda: a @ b)
    multiply()  # warm up
    began = time.perf_counter()
    for _ in range(repeats):
        multiply()
    return 2 * size**3 * repeats / (time.perf_counter() - began) / 1e9


def executed_flops(config, lengths: list[int]) -> float:
    """The FLOPs prefpipe's encoder runs (linear layers and attention; not the embeddings, norms and GELU): every
    layer for every token, except the last layer's query, attention output and feed-forward, run for the first
    token alone."""
    hidden, middle, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    full = 2 * (4 * hidden * hidden + 2 * hidden * middle)
    total = 0.0
    for n in lengths:
        total += n * ((layers - 1) * (full + 4 * n * hidden) + 2 * 2 * hidden * hidden)  # last layer: keys, values
        total += 2 * (2 * hidden * hidden + 2 * hidden * middle) + 4 * n * hidden + 2 * hidden * hidden + 2 * hidden
    return total


def baseline(model, tokenizer, examples) -> float:
    import torch

    from prefpipe.inputs import render_text

    began = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(examples), 8):
            batch = examples[start:start + 8]
            for side in ("chosen", "rejected"):
                texts = [render_text(tokenizer, e.prompt, getattr(e, side)[0]) for e in batch]
                inputs = tokenizer(texts, truncation=True, max_length=512, padding=True, return_tensors="pt")
                model(**inputs)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from prefpipe.evalsets import read_evalset
    from prefpipe.inputs import InputBuilder
    from prefpipe.loading import load_reward_model, load_tokenizer
    from prefpipe.model_files import default_base
    from prefpipe.scoring import score_examples

    examples = read_evalset(LLMBAR)[: args.examples]
    tokenizer, model = load_tokenizer(default_base()), load_reward_model(default_base()).eval()
    inputs = InputBuilder(tokenizer, 512).build([(e.prompt, t) for e in examples for t in e.chosen + e.rejected])
    tokens = sum(map(len, inputs))
    times = {"baseline": [], "prefpipe": []}
    for _ in range(args.repeats):  # alternating, so that a noisy neighbour hits both
        times["baseline"].append(baseline(model, tokenizer, examples))
        began = time.perf_counter()
        score_examples(model, tokenizer, examples, max_length=512)
        times["prefpipe"].append(time.perf_counter() - began)
    median = {k: statistics.median(v) for k, v in times.items()}
    config = model.config
    embeddings = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    non_embedding = sum(p.numel() for p in model.parameters()) - embeddings
    mean_length = tokens / len(inputs)
    flops_per_token = 2 * non_embedding + 4 * config.num_hidden_layers * mean_length * config.hidden_size
    rate = statistics.median(matmul_gflops() for _ in range(3))
    onednn_rate = statistics.median(matmul_gflops(onednn=True) for _ in range(3))
    prefpipe_tokens_per_s = tokens / median["prefpipe"]
    distinct = [len(s) for s in dict.fromkeys(map(tuple, inputs))]  # prefpipe scores each distinct input once
    executed_gflops = executed_flops(config, distinct) / median["prefpipe"] / 1e9
    print(json.dumps({
        "examples": len(examples), "texts": len(inputs), "real_tokens": tokens, "repeats": args.repeats,
        "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "pairs_per_s": {k: round(len(examples) / v, 2) for k, v in median.items()},
        "speedup": round(median["baseline"] / median["prefpipe"], 2),
        "speedup_each_repeat": [round(b / p, 2) for b, p in zip(times["baseline"], times["prefpipe"], strict=True)],
        "prefpipe_real_tokens_per_s": round(prefpipe_tokens_per_s),
        "matmul_fp32_gflops": round(rate, 1),
        "prefpipe_model_gflops": round(prefpipe_tokens_per_s * flops_per_token / 1e9, 1),
        "share_of_matmul_rate": round(prefpipe_tokens_per_s * flops_per_token / 1e9 / rate, 3),
        "onednn_matmul_fp32_gflops": round(onednn_rate, 1),
        "distinct_texts": len(distinct),
        "prefpipe_executed_gflops": round(executed_gflops, 1),
        "executed_share_of_onednn_rate": round(executed_gflops / onednn_rate, 3)}, indent=2))


if __name__ == "__main__":
    main()
