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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from prefpipe.batches import Batch, collate, token_batches
from prefpipe.config import TrainConfig
from prefpipe.errors import InputError, PrefpipeError
from prefpipe.files import follow_umask
from prefpipe.inputs import builder_for, encode_annotations
from prefpipe.loading import load_reward_model, load_tokenizer
from prefpipe.losses import pairwise_loss, plackett_luce_loss
from prefpipe.model import RewardModel
from prefpipe.training_data import SNAPSHOT, read_snapshot, snapshot_record

CHECKPOINT = "checkpoint.pt"
FIGURES = "train_figures.json"


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


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def batch_loss(config: TrainConfig, rewards: torch.Tensor, batch: Batch) -> torch.Tensor:
    if config.loss == "plackett-luce":
        return plackett_luce_loss(rewards, batch.rankings)
    return pairwise_loss(rewards, batch.pairs, margin_scale=config.margin_scale if config.loss == "bt-margin" else 0.0,
                         center_coefficient=config.center_coefficient)


@dataclass
class Training:
    """Everything a run holds while it trains: what `fit` sets up, the step loop uses, and the end saves."""

    run_dir: Path
    config: TrainConfig
    world: World
    tokenizer: object
    model: torch.nn.Module  # the Hugging Face model, saved at the end
    module: RewardModel  # its rewards; `trained` is the same under DistributedDataParallel
    trained: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    encoded: list
    epochs: list[list[list[int]]]  # per epoch, batches of annotation indices
    schedule: list[tuple[int, int]]  # per optimizer step: (epoch, step within the epoch)
    fingerprint: dict  # what a checkpoint must match to be resumed
    snapshot: dict
    max_length: int
    identical: int  # pairs left out: both inputs the same after truncation
    bf16: bool


def fit(run_dir: Path | str, *, resume: bool = False, progress: bool = True,
        report: Callable[[str], None] | None = None, on_step: Callable[[int], None] | None = None) -> dict:
    """Train the model of RUN_DIR (config and snapshot written before) and save it there.

    resume: continue from RUN_DIR/checkpoint.pt (the same config and data). report: called with a line
    about every 10% of the steps. on_step: called after each optimizer step (tests stop a run there).
    Returns the run's figures: steps, comparisons, real and padded tokens, seconds.
    """
    run = set_up(Path(run_dir))
    start = _load_checkpoint(run) if resume else 0
    totals = train_steps(run, start, progress=progress, report=report, on_step=on_step)
    return finish(run, totals, start)


def set_up(run_dir: Path) -> Training:
    """The model, the encoded training annotations, their batches per epoch, the optimizer and its schedule."""
    config = TrainConfig.load(run_dir)
    world = World.from_env(config.device)
    torch.manual_seed(config.seed)
    tokenizer, model = load_tokenizer(config.base), load_reward_model(config.base)
    if not config.dropout:  # a reward is a point estimate; dropout also slows attention on CPU (no fused kernel)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    annotations = read_snapshot(run_dir / SNAPSHOT)
    builder = builder_for(tokenizer, model, config.max_length)
    encoded, identical = encode_annotations(builder, [u for u in annotations if u.split == "train"])
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
    snapshot = snapshot_record(run_dir / SNAPSHOT, annotations)
    fingerprint = {"config": asdict(config), "data": snapshot["hash"], "world": world.size}
    return Training(run_dir, config, world, tokenizer, model, module, trained, optimizer, scheduler, encoded, epochs,
                    schedule, fingerprint, snapshot, builder.max_length, identical, bf16)


def train_steps(run: Training, start: int, *, progress: bool, report: Callable[[str], None] | None,
                on_step: Callable[[int], None] | None) -> dict:
    """The optimizer steps from START to the end, with a checkpoint every `checkpoint_every` steps."""
    config, world = run.config, run.world
    totals = {"steps": 0, "comparisons": 0, "tokens": 0, "padded_tokens": 0, "seconds": 0.0}
    bar = _progress_bar(len(run.schedule), start, progress and world.rank == 0)
    began, loss_avg = time.perf_counter(), None
    run.trained.train()
    for step in range(start, len(run.schedule)):
        batches = step_batches(run, step)
        for a, batch in enumerate(batches):
            loss = _forward_backward(run, batch, step, last_round=a == len(batches) - 1)
            totals["comparisons"] += len(batch.pairs.chosen) * world.size
            totals["tokens"] += batch.tokens * world.size
            totals["padded_tokens"] += batch.input_ids.numel() * world.size
            loss_avg = loss if loss_avg is None else 0.95 * loss_avg + 0.05 * loss
        torch.nn.utils.clip_grad_norm_(run.module.parameters(), config.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        totals["steps"] += 1
        totals["seconds"] = time.perf_counter() - began
        if world.rank == 0:
            rates = {"loss": f"{loss_avg:.3f}", "cmp/s": f"{totals['comparisons'] / totals['seconds']:.0f}",
                     "tok/s": f"{totals['tokens'] / totals['seconds']:.0f}"}
            bar.set_postfix(rates, refresh=False)
            bar.update()
            if report and (step + 1) % max(1, len(run.schedule) // 10) == 0:
                report(f"step {step + 1}/{len(run.schedule)}: " + ", ".join(f"{k} {v}" for k, v in rates.items()))
            if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and step + 1 < len(run.schedule):
                _save_checkpoint(run, step + 1)
        if on_step:
            on_step(step + 1)
    bar.close()
    return totals


def step_batches(run: Training, step: int) -> list[Batch]:
    """This process's batches of optimizer step STEP, one per accumulation round.

    A step of an epoch takes processes × accumulate of the epoch's batches: round a of process r takes batch
    step·processes·accumulate + a·processes + r, so the processes of one round take neighbouring batches and
    the rounds follow each other. At the end of an epoch the index wraps around to its first batches, so that
    every process has a batch in every round (and all of them call the all-reduce together)."""
    epoch, s = run.schedule[step]
    batches, world, accumulate = run.epochs[epoch], run.world, run.config.accumulate
    picked = [batches[(s * world.size * accumulate + a * world.size + world.rank) % len(batches)]
              for a in range(accumulate)]
    return [collate([run.encoded[i] for i in batch], run.tokenizer.pad_token_id).to(world.device) for batch in picked]


def _forward_backward(run: Training, batch: Batch, step: int, last_round: bool) -> float:
    """One accumulation round: the gradient of BATCH's loss; the processes synchronise on the step's last round."""
    autocast = torch.autocast(run.world.device.type, dtype=torch.bfloat16) if run.bf16 else nullcontext()
    sync = run.world.size == 1 or last_round
    with (nullcontext() if sync else run.trained.no_sync()), autocast:
        loss = batch_loss(run.config, run.trained(batch.input_ids, batch.attention_mask).float(), batch)
    if not torch.isfinite(loss):
        raise PrefpipeError(f"{run.run_dir}: the loss became {loss.item()} at step {step + 1}; "
                            "try a lower --lr or --no-bf16")
    (loss / run.config.accumulate).backward()
    return loss.item()


_UNTIL_EXIT: list[Training] = []


def finish(run: Training, totals: dict, start: int) -> dict:
    """Save the trained model as a standard Hugging Face folder, and the run's figures."""
    world, run_dir = run.world, run.run_dir
    if world.rank == 0:
        run.model.config.prefpipe = {"loss": run.config.loss, "base": run.config.base, "max_length": run.max_length,
                                     "input_format": "chat_template" if run.tokenizer.chat_template else "transcript",
                                     "data_snapshot": run.snapshot}
        run.model.save_pretrained(run_dir)
        run.tokenizer.save_pretrained(run_dir)
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    if world.size > 1:
        dist.barrier()
        dist.destroy_process_group()
        # The run (its DDP model and gloo state) stays referenced until main() leaves by os._exit: DDP's destructor
        # can block for good once the other rank is gone, so it must never run.
        _UNTIL_EXIT.append(run)
    figures = totals | {"identical_after_truncation": run.identical, "bf16": run.bf16, "processes": world.size,
                        "total_steps": len(run.schedule), "resumed_at": start}
    if world.rank == 0:
        (run_dir / FIGURES).write_text(json.dumps(figures, indent=2) + "\n")
        follow_umask(run_dir)
    return figures


def _progress_bar(total: int, start: int, enabled: bool):
    # disable=None: shown on a terminal only; logs get a line every 10% (`report`)
    return tqdm(total=total, initial=start, unit="step", desc="train", disable=None if enabled else True,
                mininterval=1.0, dynamic_ncols=True)


def _save_checkpoint(run: Training, step: int) -> None:
    state = {"step": step, "model": run.module.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "scheduler": run.scheduler.state_dict(), "rng": torch.get_rng_state(), "fingerprint": run.fingerprint}
    temporary = run.run_dir / f".{CHECKPOINT}.tmp"
    torch.save(state, temporary)
    temporary.replace(run.run_dir / CHECKPOINT)  # a crash while saving keeps the previous checkpoint


def _load_checkpoint(run: Training) -> int:
    """Restore the state of RUN's checkpoint; the step it was made after."""
    path = run.run_dir / CHECKPOINT
    if not path.is_file():
        raise InputError("no checkpoint to resume from (it is written every --checkpoint-every steps)", file=path)
    try:  # weights_only: tensors and plain values; a pickle that would run code is refused, never run
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise InputError(f"not a checkpoint prefpipe wrote (refused without running it): "
                         f"{(str(e).splitlines() or [type(e).__name__])[0]}", file=path) from None
    if not isinstance(state, dict) or not isinstance(state.get("fingerprint"), dict):
        raise InputError("not a checkpoint prefpipe wrote (no fingerprint)", file=path)
    if state["fingerprint"] != run.fingerprint:
        changed = [k for k in run.fingerprint if state["fingerprint"].get(k) != run.fingerprint[k]]
        raise InputError(f"the checkpoint was made with another {' and '.join(changed)}; "
                         "resume with the same settings and processes", file=path)
    run.module.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
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
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun, the work is saved and the process group destroyed: leave without the interpreter's
        # teardown, whose C++ destructors (gloo) can block for good once the other rank is gone
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
