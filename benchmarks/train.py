"""prefpipe's listwise training against TRL's RewardTrainer, in one run; prints JSON.

Same tiny model (a 2-layer BERT built from a config, word-level tokenizer: prefpipe.synth), the same
synthetic ranked data (K uniform 4-9, ties, drops and edits as annotators make them; --annotations),
the same token ids (TRL gets prefpipe's inputs pre-tokenized), the same learning rate, warm-up and
schedule, and the same token budget per batch: prefpipe fills batches to --max-tokens padded tokens;
TRL gets the pairs per batch that fill the same budget at the mean pair width.
Three runs: TRL one epoch; prefpipe one epoch (the same comparisons); and prefpipe given TRL's total
token budget (TRL forwards both texts of every pair, prefpipe each distinct response once, so the same
tokens buy prefpipe several epochs). Held-out accuracy (strict) is measured the same way for all, on the
validation + test pairs. TRL is a benchmark-only dependency: pip install -e '.[bench]'.
Usage: python benchmarks/train.py [--annotations 600] [--max-tokens 4096] [--lr 3e-3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prepare(work: Path, annotations: int) -> tuple[Path, Path]:
    """The data snapshot and the tiny model."""
    from prefpipe import training_data
    from prefpipe.ingest import ingest_file
    from prefpipe.settings import Settings
    from prefpipe.synth import synthetic_batch, tiny_reward_model
    from prefpipe.warehouse import Warehouse

    settings = Settings.from_env(home=work, warehouse=work / "w.duckdb", data_docs=False, splits=(0.8, 0.1, 0.1))
    batch = synthetic_batch(work / "batch.jsonl", annotations, k=(4, 9), bad_lines=0)
    with Warehouse.open(settings) as wh:
        ingest_file(wh, batch, settings, "auto")
        training_data.write_snapshot(wh.con, work / training_data.SNAPSHOT)
    return work / training_data.SNAPSHOT, tiny_reward_model(work / "tiny", hidden=64)


def run_folder(work: Path, name: str, snapshot: Path, config: dict) -> Path:
    from prefpipe import training_data
    from prefpipe.config import TrainConfig

    run_dir = work / name
    run_dir.mkdir()
    shutil.copy(snapshot, run_dir / training_data.SNAPSHOT)
    TrainConfig(checkpoint_every=0, **config).save(run_dir)
    return run_dir


def held_out_accuracy(model, run_dir: Path) -> dict:
    from prefpipe.config import TrainConfig
    from prefpipe.inputs import builder_for, encode_annotations
    from prefpipe.loading import load_tokenizer
    from prefpipe.metrics import pair_deltas, pair_metrics, score_annotations
    from prefpipe.training_data import SNAPSHOT, read_snapshot

    config = TrainConfig.load(run_dir)
    tokenizer = load_tokenizer(config.base)  # the same tokenizer, for TRL's model too
    builder = builder_for(tokenizer, model, config.max_length)
    annotations = [u for u in read_snapshot(run_dir / SNAPSHOT) if u.split in ("validation", "test")]
    encoded, _ = encode_annotations(builder, annotations)
    scores = score_annotations(model, encoded, tokenizer.pad_token_id, "cpu")
    deltas = [delta for _, delta in pair_deltas(encoded, scores)]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in pair_metrics(deltas).items()}


def run_prefpipe(run_dir: Path) -> dict:
    from prefpipe import train
    from prefpipe.config import TrainConfig
    from prefpipe.loading import load_reward_model

    figures = train.fit(run_dir, progress=False)
    return {"epochs": TrainConfig.load(run_dir).epochs, "comparisons": figures["comparisons"],
            "real_tokens": figures["tokens"], "seconds": round(figures["seconds"], 2),
            "comparisons_per_s": round(figures["comparisons"] / figures["seconds"]),
            "padding_share": round(1 - figures["tokens"] / figures["padded_tokens"], 3),
            "held_out": held_out_accuracy(load_reward_model(run_dir), run_dir)}


def run_trl(run_dir: Path, work: Path, max_tokens: int) -> dict:
    import torch
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from prefpipe.config import TrainConfig
    from prefpipe.inputs import builder_for, encode_annotations
    from prefpipe.loading import load_reward_model, load_tokenizer
    from prefpipe.training_data import SNAPSHOT, read_snapshot

    config = TrainConfig.load(run_dir)
    tokenizer, model = load_tokenizer(config.base), load_reward_model(config.base)
    encoded, _ = encode_annotations(builder_for(tokenizer, model, config.max_length),
                                    read_snapshot(run_dir / SNAPSHOT, "train"))
    rows = [{"chosen_ids": e.inputs[c], "rejected_ids": e.inputs[r]} for e in encoded for c, r, _, _ in e.pairs]
    width = sum(max(len(r["chosen_ids"]), len(r["rejected_ids"])) for r in rows) / len(rows)
    per_batch = max(1, int(max_tokens // (2 * width)))
    args = RewardConfig(output_dir=str(work / "trl"), per_device_train_batch_size=per_batch,
                        learning_rate=config.lr, num_train_epochs=config.epochs,
                        warmup_steps=int(config.warmup * config.epochs * math.ceil(len(rows) / per_batch)),
                        lr_scheduler_type="linear", max_grad_norm=config.max_grad_norm, seed=config.seed,
                        weight_decay=config.weight_decay, max_length=None, use_cpu=True, report_to="none",
                        save_strategy="no", logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
                        disable_dropout=True)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    began = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its metrics; stdout is this report
        trainer.train()
    seconds = time.perf_counter() - began
    comparisons = len(rows) * config.epochs
    model.eval()
    with torch.inference_mode():
        held = held_out_accuracy(model, run_dir)
    tokens = sum(len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows) * config.epochs
    return {"epochs": config.epochs, "comparisons": comparisons, "real_tokens": tokens, "seconds": round(seconds, 2),
            "comparisons_per_s": round(comparisons / seconds), "pairs_per_batch": per_batch, "held_out": held}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", type=int, default=600)
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        snapshot, base = prepare(work, args.annotations)
        config = {"base": str(base), "lr": args.lr, "max_tokens": args.max_tokens}
        trl = run_trl(run_folder(work, "trl-data", snapshot, config | {"epochs": 1}), work, args.max_tokens)
        one = run_prefpipe(run_folder(work, "prefpipe-1", snapshot, config | {"epochs": 1}))
        epochs = max(1, trl["real_tokens"] // one["real_tokens"])
        same_tokens = run_prefpipe(run_folder(work, "prefpipe-n", snapshot, config | {"epochs": epochs}))
    report = {"annotations": args.annotations, "max_tokens": args.max_tokens, "lr": args.lr, "trl": trl,
              "prefpipe_same_comparisons": one, "prefpipe_same_tokens": same_tokens,
              "speedup_comparisons_per_s": round(one["comparisons_per_s"] / trl["comparisons_per_s"], 2),
              "speedup_same_tokens": round(same_tokens["comparisons_per_s"] / trl["comparisons_per_s"], 2),
              "seconds_to_trl_accuracy": {"trl": trl["seconds"], "prefpipe": next(
                  (r["seconds"] for r in (one, same_tokens)
                   if r["held_out"]["accuracy"] >= trl["held_out"]["accuracy"]), None)}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
