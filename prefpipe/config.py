"""The configuration of each job, one dataclass each (as TRL keeps a trainer's): every hyperparameter and
its default live here once; the options of the command are generated from the fields and their help."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from prefpipe.errors import InputError
from prefpipe.model_files import default_base, model_config

LOSSES = ("bt", "bt-margin", "plackett-luce")
CONFIG = "train_config.json"


def option(default: object, help_text: str):
    """A field of a config dataclass with its help: `prefpipe train`'s options are generated from them."""
    return field(default=default, metadata={"help": help_text})


@dataclass
class TrainConfig:
    """Every hyperparameter of a training run; the options of `prefpipe train` are generated from it."""

    base: str = option("", "A local model folder [default: the packaged all-MiniLM-L6-v2]")
    loss: str = option("bt", "bt | bt-margin | plackett-luce")
    epochs: int = option(1, "Passes over the training split.")
    lr: float = option(3e-5, "Peak learning rate (linear warm-up and decay).")
    max_tokens: int = option(8192, "Padded tokens per batch on each process (whole annotations).")
    max_length: int = option(512, "Tokens per input, at most the model's positions; the prompt is cut from the left.")
    accumulate: int = option(1, "Batches per process per optimizer step.")
    warmup: float = option(0.1, "Share of the steps with a rising learning rate, then linear decay.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    margin_scale: float = option(1.0, "bt-margin: -log σ(Δ - scale × rank gap).")
    center_coefficient: float = option(0.0, "Reward centring (TRL's center_rewards_coefficient): coef × mean "
                                            "(r_c + r_r)².")
    max_grad_norm: float = option(1.0, "Gradient clipping norm.")
    seed: int = option(0, "Seed of the weights' head, the shuffles and the batches.")
    checkpoint_every: int = option(200, "Steps between checkpoints (0: none).")
    bf16: bool = option(False, "bf16 autocast where the device supports it.")
    dropout: bool = option(False, "Keep the backbone's dropout (off by default, as in TRL's reward trainer).")
    device: str = option("auto", "auto (cuda when present, else cpu) | cpu | cuda | cuda:N")

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
