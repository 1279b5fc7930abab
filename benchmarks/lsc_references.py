"""How much a global r_ref costs an LSC combination on a pairwise set, beside per-prompt references.

A simulation in the shape of a nightly pairwise set: PROMPTS prompts with two completions each, and SAMPLES
reference responses per prompt (as `--references samples` draws them from π_ref). Two reward models rate
each response by its two true qualities; model `a` adds a per-prompt offset (a prompt it likes in general,
as reward models do), which the Bradley-Terry loss cannot see. The truth is the combination of the
offset-free rewards with per-prompt references. Prints JSON: the share of pairs whose order each variant
keeps (pair-order agreement with the truth), for references from the samples (per prompt) and for one
global quantile over all of them (what prefpipe did silently before 0.6 on every pairwise set).
Usage: python benchmarks/lsc_references.py [--prompts 2000] [--samples 8] [--offset 1.0] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefpipe.config import Combination
from prefpipe.transforms import combination


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--offset", type=float, default=1.0, help="std of model a's per-prompt offset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    per_prompt = 2 + args.samples  # two completions, then the references
    prompts = np.repeat(np.array([f"p{i}" for i in range(args.prompts)], dtype=object), per_prompt)
    quality = rng.normal(size=(2, len(prompts)))  # the two properties each model rates
    offset = np.repeat(rng.normal(scale=args.offset, size=args.prompts), per_prompt)
    is_pair = np.tile(np.r_[True, True, np.zeros(args.samples, bool)], args.prompts)

    def scores(references: str, a: np.ndarray) -> np.ndarray:
        # references from outside the pairs, given as `warehouse` ones: `samples` would draw them from an LM first
        combo = Combination("c", ("a", "b"), references="warehouse" if references == "samples" else "global")
        rewards = {"a": a[is_pair], "b": quality[1][is_pair]}
        outside = {m: (prompts[~is_pair], r[~is_pair]) for m, r in (("a", a), ("b", quality[1]))}
        return combination(combo, prompts[is_pair], rewards, outside=outside)[0]

    def order(s: np.ndarray) -> np.ndarray:
        return s[0::2] > s[1::2]

    truth = order(scores("samples", quality[0]))
    found = {}
    for references in ("samples", "global"):
        kept = order(scores(references, quality[0] + offset)) == truth
        found[references] = {"pair_order_agreement": round(float(kept.mean()), 4), "pairs": int(kept.size)}
    print(json.dumps({"prompts": args.prompts, "samples": args.samples, "offset_std": args.offset,
                      "references": found}, indent=1))


if __name__ == "__main__":
    main()
