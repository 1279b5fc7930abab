"""The reward-tilt analysis (6 β) and best-of-n (6 n) over 1,000,000 candidate rows (100,000 prompts × 10,
rewards rounded to 0.1, so that many tie), vectorised (prefpipe.tilt_tables.tilt_tables: numpy segment
reductions, Arrow tables), side by side with a plain Python loop over prompts on a 50,000-row sample of the
same data, its rate scaled up. Each side runs in a fresh process (its peak memory is its own), alternating,
`--repeats` times; the loop's results are checked against the vectorised ones on its sample. Prints JSON.
Usage: python benchmarks/analysis.py [--prompts 100000] [--per-prompt 10] [--sample 50000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BETAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
NS = (1, 2, 4, 8, 16, 32)


def data(prompts: int, per_prompt: int, seed: int = 0):
    """Prompt ids (strings), rewards and reference log-probabilities: a prompt's candidates together, in no
    order of reward, as a rewards run holds them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    prompt = np.repeat(np.arange(prompts), per_prompt)
    reward = np.round(rng.normal(0, 1, prompts * per_prompt), 1)  # many ties
    log_ref = rng.normal(-20, 5, prompts * per_prompt)  # sequence log-probabilities of a reference LM
    return np.char.add("p-", prompt.astype(str)).astype(object), reward, log_ref


def vectorised(prompt, reward, log_ref) -> dict:
    from prefpipe.config import TiltConfig
    from prefpipe.tilt_tables import tilt_tables

    per_prompt, frontier = tilt_tables(prompt, reward, log_ref, TiltConfig(BETAS, NS), "lm")
    return {"rows_out": per_prompt.num_rows, "frontier": frontier.to_pylist()}


def prepared(kind: str, prompt, reward, log_ref) -> tuple:
    """Each side's input as it would hold it: Arrow strings and numpy arrays, or Python lists."""
    import pyarrow as pa

    if kind == "vectorised":  # prompt ids as Parquet gives them (read_dictionary): a dictionary-encoded column
        from prefpipe.tilt_tables import tilt_tables  # noqa: F401 - imported before the clock starts

        return pa.chunked_array([pa.array(prompt.tolist(), pa.string()).dictionary_encode()]), reward, log_ref
    return prompt.tolist(), reward.tolist(), log_ref.tolist()


def loop(prompt, reward, log_ref) -> dict:
    """The same numbers, prompt by prompt and candidate by candidate, in plain Python: per prompt and β, log Z,
    KL, E[r], E_ref[r] and exp(H); per prompt and n, KL, E[r] and the win rate; then the means."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for p, r, lr in zip(prompt, reward, log_ref, strict=True):
        groups.setdefault(p, []).append((r, lr))
    rows = []
    for name, items in groups.items():
        top = max(lr for _, lr in items)
        norm = top + math.log(sum(math.exp(lr - top) for _, lr in items))
        ref = [(r, lr - norm) for r, lr in items]
        ref_reward = sum(r * math.exp(lr) for r, lr in ref)
        for beta in BETAS:
            logits = [lr + r / beta for r, lr in ref]
            m = max(logits)
            log_z = m + math.log(sum(math.exp(x - m) for x in logits))
            kl = expected = entropy = 0.0
            for (r, lr), x in zip(ref, logits, strict=True):
                q = math.exp(x - log_z)
                if q > 0:
                    kl += q * (x - log_z - lr)
                    entropy -= q * (x - log_z)
                expected += q * r
            rows.append(("tilt", name, beta, None, log_z, kl, expected, ref_reward, math.exp(entropy), None))
        mass: dict[float, float] = {}
        for r, lr in ref:
            mass[r] = mass.get(r, 0.0) + math.exp(lr)
        values = sorted(mass)
        for n in NS:
            below = kl = expected = win = 0.0
            for v in values:
                f = min(below + mass[v], 1.0)
                q = f**n - below**n
                if q > 0:
                    kl += q * math.log(q / mass[v])
                expected += q * v
                win += q * (below + mass[v] / 2)
                below = f
            rows.append(("best_of_n", name, None, n, None, kl, expected, ref_reward, None, win))
    means = {}
    for kind, key in [("tilt", b) for b in BETAS] + [("bon", n) for n in NS]:
        chosen = [r for r in rows if (r[2] == key if kind == "tilt" else r[3] == key)]
        means[f"{kind} {key}"] = [round(sum(r[5] for r in chosen) / len(chosen), 9),
                                  round(sum(r[6] for r in chosen) / len(chosen), 9)]
    return means


def child(kind: str, prompts: int, per_prompt: int, sample: int) -> None:
    prompt, reward, log_ref = data(prompts, per_prompt)
    if kind == "loop":  # whole prompts: the first SAMPLE rows
        prompt, reward, log_ref = prompt[:sample], reward[:sample], log_ref[:sample]
    rows = len(prompt)
    prompt, reward, log_ref = prepared(kind, prompt, reward, log_ref)
    started = time.perf_counter()
    got = (vectorised if kind == "vectorised" else loop)(prompt, reward, log_ref)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_gb": round(peak, 3),
                      "result": got if kind == "loop" else None}))


def run_child(kind: str, args) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", kind, "--prompts", str(args.prompts),
                           "--per-prompt", str(args.per_prompt), "--sample", str(args.sample)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(args) -> float:
    """The loop's means against the vectorised ones on the loop's sample: the largest difference."""
    prompt, reward, log_ref = data(args.prompts, args.per_prompt)
    n = args.sample
    fast = {f"{'tilt' if r['kind'] == 'tilt' else 'bon'} {r['beta'] if r['kind'] == 'tilt' else r['n']}":
            [r["kl"], r["expected_reward"]] for r in vectorised(prompt[:n], reward[:n], log_ref[:n])["frontier"]}
    slow = loop(*prepared("loop", prompt[:n], reward[:n], log_ref[:n]))
    return max(abs(a - b) for key in slow for a, b in zip(slow[key], fast[key], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--per-prompt", type=int, default=10)
    parser.add_argument("--sample", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.prompts, args.per_prompt, args.sample)
        return
    runs = {"vectorised": [], "loop": []}
    for _ in range(args.repeats):
        for kind in runs:
            runs[kind].append(run_child(kind, args))
    report = {"rows": args.prompts * args.per_prompt, "prompts": args.prompts, "betas": BETAS, "ns": NS}
    for kind, found in runs.items():
        seconds = [r["seconds"] for r in found]
        report[kind] = {"rows_timed": found[0]["rows"], "median_s": round(statistics.median(seconds), 3),
                        "rows_per_s": round(found[0]["rows"] / statistics.median(seconds)),
                        "runs_s": [round(s, 3) for s in seconds],
                        "peak_rss_gb": max(r["peak_rss_gb"] for r in found)}
    report["loop"]["scaled_to_all_rows_s"] = round(report["rows"] / report["loop"]["rows_per_s"], 1)
    report["speedup_rows_per_s"] = round(report["vectorised"]["rows_per_s"] / report["loop"]["rows_per_s"], 1)
    report["largest_difference_loop_vs_vectorised"] = check(args)
    report["goals"] = {"speedup_at_least_50": report["speedup_rows_per_s"] >= 50,
                       "peak_memory_under_2gb": report["vectorised"]["peak_rss_gb"] < 2}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
