"""MiniLM reward model on the HH-RLHF helpful sample: prefpipe against a plain pairwise loop; prints JSON.

Data: data/public/hh-rlhf (2000 rows) ingested with splits 80/10/10 by prompt; held out = validation
+ test (about 400 pairs). Both sides: the packaged all-MiniLM-L6-v2, the same input text, 256 tokens
keeping the end of the dialogue, one epoch, seed 0, accuracy strict on the held-out pairs.
- baseline (the issue's reference loop): batches of 16 pairs, chosen and rejected tokenized and padded to
  the batch's longest (left truncation), fp32, AdamW lr 3e-5, one forward per response per pair.
  Its tokens/s is timed on its first --baseline-steps steps; --baseline-full trains it the whole epoch
  and measures its accuracy too (about 13 minutes here).
- prefpipe: `prefpipe.train.fit` (whole annotations, batches filled to --max-tokens with lengths
  bucketed, bf16 autocast where the CPU supports it) and `prefpipe.metrics.held_out_metrics`.
Real tokens: tokens that are not padding. Usage: python benchmarks/train_hh.py [--baseline-full]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HH = ROOT / "data" / "public" / "hh-rlhf" / "helpful-base-test-first2000.jsonl.gz"


def snapshot(work: Path) -> Path:
    from prefpipe import training_data
    from prefpipe.ingest import ingest_file
    from prefpipe.settings import Settings
    from prefpipe.warehouse import Warehouse

    settings = Settings.from_env(home=work, warehouse=work / "hh.duckdb", data_docs=False, splits=(0.8, 0.1, 0.1))
    with Warehouse.open(settings) as wh:
        ingest_file(wh, HH, settings, "hh-rlhf")
        (work / "run").mkdir()
        training_data.write_snapshot(wh.con, work / "run" / training_data.SNAPSHOT)
    return work / "run"


def baseline(run_dir: Path, steps: int | None) -> dict:
    """The plain pairwise loop: 16 pairs a batch, both sides forwarded, padded to the batch's longest."""
    import torch
    import torch.nn.functional as F

    from prefpipe.inputs import render_text
    from prefpipe.loading import load_reward_model, load_tokenizer
    from prefpipe.metrics import pair_metrics
    from prefpipe.model_files import default_base
    from prefpipe.training_data import SNAPSHOT, read_snapshot

    torch.manual_seed(0)
    tokenizer, model = load_tokenizer(default_base()), load_reward_model(default_base())
    tokenizer.truncation_side = "left"  # keep the end of the dialogue

    def texts(split):
        return [(render_text(tokenizer, u.prompt, u.texts[c]), render_text(tokenizer, u.prompt, u.texts[r]))
                for u in read_snapshot(run_dir / SNAPSHOT, split) for c, r, _, _ in u.pairs]

    def encode(batch):
        return tokenizer(batch, truncation=True, max_length=256, padding=True, return_tensors="pt")

    train = texts("train")
    random.Random(0).shuffle(train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5)
    model.train()
    tokens, began, done = 0, time.perf_counter(), 0
    for start in range(0, len(train), 16)[:steps]:
        pairs = train[start:start + 16]
        chosen, rejected = encode([c for c, _ in pairs]), encode([r for _, r in pairs])
        loss = -F.logsigmoid(model(**chosen).logits[:, 0] - model(**rejected).logits[:, 0]).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += int(chosen["attention_mask"].sum() + rejected["attention_mask"].sum())
        done += len(pairs)
    seconds = time.perf_counter() - began
    result = {"pairs_trained": done, "seconds": round(seconds, 1), "real_tokens_per_s": round(tokens / seconds)}
    if steps is None:
        model.eval()
        deltas = []
        with torch.inference_mode():
            for split in ("validation", "test"):
                for c, r in texts(split):
                    deltas.append((model(**encode([c])).logits[0, 0] - model(**encode([r])).logits[0, 0]).item())
        result["held_out"] = pair_metrics(deltas)
    return result


def prefpipe_run(run_dir: Path, lr: float, max_tokens: int, bf16: bool) -> dict:
    from prefpipe import metrics, train
    from prefpipe.config import TrainConfig

    TrainConfig(lr=lr, max_length=256, max_tokens=max_tokens, bf16=bf16, checkpoint_every=0).save(run_dir)
    figures = train.fit(run_dir, progress=False)
    results = metrics.held_out_metrics(run_dir)
    held = [results[s] for s in ("validation", "test")]
    pairs = sum(m["pairs"] for m in held)
    return {"pairs_trained": figures["comparisons"], "seconds": round(figures["seconds"], 1),
            "real_tokens_per_s": round(figures["tokens"] / figures["seconds"]),
            "padding_share": round(1 - figures["tokens"] / figures["padded_tokens"], 3), "bf16": figures["bf16"],
            "held_out": {"pairs": pairs, "accuracy": round(sum(m["accuracy"] * m["pairs"] for m in held) / pairs, 4),
                         "log_loss": round(sum(m["log_loss"] * m["pairs"] for m in held) / pairs, 4)},
            "identical_after_truncation": figures["identical_after_truncation"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-steps", type=int, default=25)
    parser.add_argument("--baseline-full", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--no-bf16", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = snapshot(Path(tmp))
        report = {"data": str(HH.relative_to(ROOT)), "reference": {"accuracy": 0.585, "real_tokens_per_s": 820}}
        report["prefpipe"] = prefpipe_run(run_dir, args.lr, args.max_tokens, not args.no_bf16)
        report["prefpipe"]["config"] = {"lr": args.lr, "max_tokens": args.max_tokens, "max_length": 256, "epochs": 1}
        if not args.skip_baseline:
            report["baseline"] = baseline(run_dir, None if args.baseline_full else args.baseline_steps)
            report["tokens_per_s_ratio"] = round(report["prefpipe"]["real_tokens_per_s"]
                                                 / report["baseline"]["real_tokens_per_s"], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
