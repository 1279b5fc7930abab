"""Where scoring's time goes (issue 26: "profile first"): prefpipe's scoring of LLMBar with the packaged MiniLM
under torch's profiler, in one run; prints JSON.

- inputs: rendering and tokenising the texts (prefpipe.inputs.InputBuilder), timed alone;
- padding: padded tokens over real tokens in the batches that `score` makes (sorted by length, SCORE_TOKENS);
- the forward passes, profiled: self CPU time per operator, grouped (linear layers, attention, layer norm,
  activation, embedding, other), and the time outside any operator (Python per batch, the padding itself);
- the linear layers' own FLOP/s (2 x tokens x in x out per layer, as `prefpipe.encoder` runs them: its last layer
  for the first token but keys and values) against this machine's fp32 matrix-multiply rate at 2048 x 2048
  (benchmarks/score.py's: torch's, and oneDNN's), to tell the GEMMs' shapes from everything around them.
Usage: python benchmarks/score_profile.py [--examples 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
LLMBAR = ROOT / "data" / "public" / "evalsets" / "llmbar-rewardbench.jsonl"
GROUPS = {"linear": ("addmm", "linear", "aten::mm", "matmul"),
          "attention": ("scaled_dot_product", "attention", "bmm", "softmax", "baddbmm"),
          "layer_norm": ("layer_norm",), "activation": ("gelu", "tanh", "relu"),
          "embedding": ("embedding", "index_select")}


def group_of(name: str) -> str:
    return next((group for group, keys in GROUPS.items() if any(k in name for k in keys)), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200)
    args = parser.parse_args()

    import torch
    from score import matmul_gflops
    from torch.profiler import ProfilerActivity, profile

    from prefpipe.evalsets import read_evalset
    from prefpipe.inputs import InputBuilder
    from prefpipe.loading import load_reward_model, load_tokenizer
    from prefpipe.model import SCORE_TOKENS, length_batches, score
    from prefpipe.model_files import default_base

    examples = read_evalset(LLMBAR)[: args.examples]
    tokenizer, model = load_tokenizer(default_base()), load_reward_model(default_base()).eval()
    config = model.config
    items = list(dict.fromkeys((json.dumps(e.prompt), t) for e in examples for t in e.chosen + e.rejected))
    began = time.perf_counter()
    inputs = InputBuilder(tokenizer, 512).build([(json.loads(p), t) for p, t in items])
    build_s = time.perf_counter() - began
    lengths = [len(s) for s in inputs]
    batches = length_batches(lengths, SCORE_TOKENS)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    score(model, inputs, tokenizer.pad_token_id)  # warm up
    walls = []
    for _ in range(3):
        began = time.perf_counter()
        score(model, inputs, tokenizer.pad_token_id)
        walls.append(time.perf_counter() - began)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        began = time.perf_counter()
        score(model, inputs, tokenizer.pad_token_id)
        profiled_s = time.perf_counter() - began
    self_us: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        self_us[group_of(event.key)] += event.self_cpu_time_total
    op_s = sum(self_us.values()) / 1e6
    def params(module) -> int:
        return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, torch.nn.Linear))

    # every position, pads included, goes through the linear layers, but for the last layer's (prefpipe.encoder):
    # there, keys and values for every position, the rest for the first token of each row
    layer, keys_values = params(model.bert.encoder.layer[0]), 2 * config.hidden_size ** 2
    linear_flops = 2 * (padded * ((config.num_hidden_layers - 1) * layer + keys_values)
                        + len(inputs) * (layer - keys_values + params(model) - config.num_hidden_layers * layer))
    rate = statistics.median(matmul_gflops() for _ in range(3))
    onednn_rate = statistics.median(matmul_gflops(onednn=True) for _ in range(3))
    shares = {k: round(v / 1e6 / profiled_s, 3) for k, v in sorted(self_us.items(), key=lambda kv: -kv[1])}
    print(json.dumps({
        "examples": len(examples), "texts": len(inputs), "batches": len(batches), "threads": torch.get_num_threads(),
        "real_tokens": sum(lengths), "padded_tokens": padded, "padding_share": round(1 - sum(lengths) / padded, 3),
        "build_inputs_s": round(build_s, 3), "score_s_median": round(statistics.median(walls), 3),
        "profiled_s": round(profiled_s, 3), "share_of_profiled_time": shares,
        "outside_operators_share": round(1 - op_s / profiled_s, 3),
        "linear_gflops": round(linear_flops / (self_us["linear"] / 1e6) / 1e9, 1),
        "matmul_fp32_gflops": round(rate, 1), "onednn_matmul_fp32_gflops": round(onednn_rate, 1),
        "hidden": config.hidden_size, "layers": config.num_hidden_layers,
        "top_operators": [(e.key, round(e.self_cpu_time_total / 1e6, 3)) for e in
                          sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]]}, indent=2))


if __name__ == "__main__":
    main()
