"""A generative judge's two scorings against a plain per-example loop, in one run; prints JSON.

Model: a GPT-2-shaped tiny causal LM (GPT-2's 50257-token embedding and 1024 positions; --hidden 64, --layers 4)
with a chat template and a word-level tokenizer (prefpipe.synth.tiny_judge). Data: the LLMBar set in
RewardBench's format (data/public/evalsets; the first --examples pairs). Every pair is judged in both orders with
the same prompts (prefpipe.judges: rewardbench's MT-Bench pairwise template, answers cut to fit).
- loop: each prompt alone, one forward pass over its whole sequence, log p(A) and log p(B) read from the last
  position's logits (what a script that calls the model per example does);
- logprob: `Judge.judge`: prompts sorted by length and batched to a token budget, the vocabulary projection of the
  read positions only;
- generate: greedy decoding of --new-tokens tokens per prompt, each alone (on the first --generate examples).
Usage: python benchmarks/judge.py [--examples 200] [--generate 20] [--new-tokens 32] [--repeats 3]
       [--hidden 64] [--layers 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LLMBAR = ROOT / "data" / "public" / "evalsets" / "llmbar-rewardbench.jsonl"


def loop(judge, pairs) -> list[tuple[float, float]]:
    """The per-example baseline: every prompt alone, the whole sequence's logits."""
    import torch

    opening = judge.tokenizer("[[", add_special_tokens=False)["input_ids"]
    out = []
    with torch.inference_mode():
        for prompt, chosen, rejected in pairs:
            for a, b in ((chosen, rejected), (rejected, chosen)):
                ids = judge.prompt(prompt, a, b)
                logp = judge.model(input_ids=torch.tensor([ids + opening])).logits[0, -1].log_softmax(-1)
                out.append((logp[judge.letters[0]].item(), logp[judge.letters[1]].item()))
    return out


def timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--generate", type=int, default=20, help="examples judged in generate mode")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    import torch

    from prefpipe.evalsets import read_evalset
    from prefpipe.judges import Judge, JudgeSettings
    from prefpipe.synth import tiny_judge

    folder = tiny_judge(Path(tempfile.mkdtemp(prefix="prefpipe-judge-bench-")) / "judge", hidden=args.hidden,
                        layers=args.layers, positions=1024, vocab_size=50257, seed=0)  # GPT-2's vocabulary, context
    pairs = [(e.prompt, e.chosen[0], e.rejected[0]) for e in read_evalset(LLMBAR)[:args.examples]]
    judge = Judge(folder)
    generator = Judge(folder, JudgeSettings(scoring="generate", max_new_tokens=args.new_tokens))
    judge.judge(pairs[:4]), loop(judge, pairs[:4])  # warm up
    times: dict[str, list[float]] = {"loop": [], "logprob": [], "generate": []}
    for _ in range(args.repeats):
        seconds, baseline = timed(lambda: loop(judge, pairs))
        times["loop"].append(seconds)
        seconds, ours = timed(lambda: judge.judge(pairs))
        times["logprob"].append(seconds)
        seconds, _ = timed(lambda: generator.judge(pairs[:args.generate]))
        times["generate"].append(seconds)
    got = [lp for j in ours for lp in j.logprobs]  # the same numbers, or the comparison means nothing
    difference = max(abs(x - y) for a, b in zip(got, baseline, strict=True) for x, y in zip(a, b, strict=True))
    rate = {"loop": args.examples, "logprob": args.examples, "generate": args.generate}
    per_s = {name: rate[name] / statistics.median(v) for name, v in times.items()}
    print(json.dumps({"examples": args.examples, "generate_examples": args.generate, "new_tokens": args.new_tokens,
                      "threads": torch.get_num_threads(), "examples_per_s": per_s,
                      "logprob_vs_loop": per_s["logprob"] / per_s["loop"],
                      "generate_vs_logprob": per_s["generate"] / per_s["logprob"],
                      "max_logprob_difference": difference,
                      "median_s": {name: statistics.median(v) for name, v in times.items()}}, indent=1))


if __name__ == "__main__":
    main()
