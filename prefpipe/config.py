"""Configs: the hyperparameters of each job, one dataclass each (as TRL keeps a trainer's): training, the tilt
and trade-off analyses, a combination of rewards. Every hyperparameter and its default live here once; the
options of the command are generated from the fields and their help. Where things live and how jobs run
(paths, limits, schedules): prefpipe.settings."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from prefpipe.adaptors import DEFAULT_ADAPTORS, DEFAULT_TEMPERATURES, Adaptor, Setting, check_temperature
from prefpipe.errors import InputError
from prefpipe.model_files import default_base, model_config
from prefpipe.names import check_name

LOSSES = ("bt", "bt-margin", "plackett-luce")
CONFIG = "train_config.json"


def option(default: object, help_text: str):
    """A field of a config dataclass with its help: `prefpipe train`'s options are generated from them."""
    return field(default=default, metadata={"help": help_text})


@dataclass
class TrainConfig:
    """Every hyperparameter of a training run; the options of `prefpipe train` are generated from it."""

    base: str = option("", "A local model folder (default: the packaged all-MiniLM-L6-v2)")
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


MIN_BETA = 1e-9  # below it r/β overflows or the KL (a difference of two such terms) loses its digits
MAX_N = 10**12  # best-of-n's n: an exact int64 and float64 (Fⁿ is taken as exp(n·log F))


@dataclass
class TiltConfig:
    """The reward-tilt analysis: the β of the tilted policies and the n of best-of-n (`prefpipe analyse tilt`)."""

    betas: tuple[float, ...] = option((0.01, 0.03, 0.1, 0.3, 1.0, 3.0), "β of the tilted policies π_ref·exp(r/β)")
    ns: tuple[int, ...] = option((1, 2, 4, 8, 16, 32), "n of best-of-n")

    def __post_init__(self) -> None:
        self.betas, self.ns = tuple(self.betas), tuple(self.ns)
        if not self.betas or any(not (isinstance(b, int | float) and MIN_BETA <= b < math.inf) for b in self.betas):
            raise InputError(f"every β must be a finite number of at least {MIN_BETA:g} (r/β must stay finite), "
                             f"got {', '.join(map(str, self.betas)) or 'none'}", field="--beta")
        if not self.ns or any(not (isinstance(n, int) and 1 <= n <= MAX_N) for n in self.ns):
            given = ", ".join(map(str, self.ns)) or "none"
            raise InputError(f"every n must be a whole number from 1 to {MAX_N:.0e}, got {given}", field="--n")


@dataclass
class TradeoffConfig:
    """The probability–quality trade-off (`prefpipe analyse tradeoff`): the sampling settings (every adaptor
    at every temperature) and how much to sample."""

    adaptors: tuple[str, ...] = option(DEFAULT_ADAPTORS, "Sampling adaptors: ancestral, top-k=K, nucleus=P, "
                                       "typical=MASS, eta=EPSILON.")
    temperatures: tuple[float, ...] = option(DEFAULT_TEMPERATURES, "Temperatures τ, each with every adaptor.")
    prompts: int = option(50, "How many prompts (the first N of the source, in its order).")
    samples: int = option(8, "Samples per prompt and setting.")
    max_new_tokens: int = option(128, "At most this many new tokens per sample (EOS ends one sooner).")
    seed: int = option(0, "Seed of the sampling (recorded with every sample).")
    device: str = option("auto", "auto (CUDA when present) | cpu | cuda")

    def __post_init__(self) -> None:
        self.adaptors, self.temperatures = tuple(self.adaptors), tuple(self.temperatures)
        if not self.adaptors:
            raise InputError("give at least one adaptor", field="--adaptor")
        if not self.temperatures:
            raise InputError("give at least one temperature", field="--temperature")
        self.temperatures = tuple(check_temperature(t) for t in self.temperatures)
        for given, field_name in (([Adaptor.parse(a).name for a in self.adaptors], "--adaptor"),
                                  (self.temperatures, "--temperature")):
            if len(set(given)) != len(given):
                shown = ", ".join(f"{g:g}" if isinstance(g, float) else g for g in given)
                raise InputError(f"each one once, got {shown}", field=field_name)
        for name, low in (("prompts", 1), ("samples", 1), ("max_new_tokens", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"must be a whole number of at least {low}, got {value!r}",
                                 field="--" + name.replace("_", "-"))

    @property
    def settings(self) -> list[Setting]:
        """Every adaptor at every temperature, adaptor by adaptor."""
        return [Setting(Adaptor.parse(a), t) for a in self.adaptors for t in self.temperatures]


REFERENCES = ("prompt", "candidates", "warehouse", "samples", "global")
TRANSFORMS = ("lsc", "raw", "centered")  # prefpipe.transforms
METHODS = ("empirical", "normal")
TOO_FEW = ("global", "error")
# Wang et al. 2024 ("Transforming and Combining Rewards for Aligning Large Language Models", arXiv:2402.00742,
# §3) take r_ref(x) as a quantile of the rewards of the reference policy's samples on x. 0.85 is prefpipe's
# default since 0.4: the paper's own value could not be read here (no copy of its text was reachable), so
# it is stated as ours, not as theirs
LSC_QUANTILE = 0.85


@dataclass
class Combination:
    """A registered combination of reward models (`prefpipe combos add`): Σ wᵢ·uᵢ with uᵢ the LSC, raw or
    centred reward of model i (prefpipe.transforms), r_ref per prompt and model from the prompt's references."""

    name: str
    models: tuple[str, ...]
    weights: tuple[float, ...] = ()  # default: 1 each
    transform: str = option("lsc", "lsc (log σ(r − r_ref)) | raw (r) | centered (r − r_ref)")
    references: str = option("prompt", "A prompt's reference responses: prompt (its candidates or completions, "
                                       "π_ref-weighted when their ref_logprob is known) | candidates (those "
                                       "marked reference) | warehouse (the warehouse's responses to it) | samples "
                                       "(--samples drawn from --reference-lm) | global (every prompt's candidates "
                                       "at once: one r_ref for all)")
    quantiles: tuple[float, ...] = ()  # r_ref of model i is the quantiles[i]-quantile; default LSC_QUANTILE each
    method: str = option("empirical", "empirical | normal (mean + Φ⁻¹(q)·std)")
    min_references: int = option(4, "A prompt needs this many references for an r_ref of its own.")
    too_few: str = option("global", "A prompt with fewer references: global (the quantile over every prompt's "
                                    "references, labelled global) | error (the run fails, naming the prompt)")
    reference_lm: str | None = option(None, "A local causal LM (π_ref) to sample references from (--references "
                                            "samples, the default with it).")
    samples: int = option(8, "References sampled per prompt from --reference-lm.")
    seed: int = option(0, "Seed of the reference samples (each prompt's own, from this seed and the prompt).")

    def __post_init__(self) -> None:
        check_name(self.name)
        self.models = tuple(self.models)
        self.weights = tuple(float(w) for w in self.weights) or (1.0,) * len(self.models)
        self.quantiles = tuple(float(q) for q in self.quantiles) or (LSC_QUANTILE,)
        if len(self.quantiles) == 1:
            self.quantiles *= len(self.models)
        if self.reference_lm is not None and self.references == "prompt":
            self.references = "samples"
        if not self.models:
            raise InputError("a combination needs at least one --model", field="--model")
        for model in self.models:
            check_name(model, "--model")
        if len(set(self.models)) != len(self.models):
            raise InputError(f"each model once, got {', '.join(self.models)}", field="--model")
        for values, flag in ((self.weights, "--weight"), (self.quantiles, "--quantile")):
            if len(values) != len(self.models):
                raise InputError(f"one per model: {len(self.models)} models, {len(values)} values", field=flag)
        if not all(math.isfinite(w) for w in self.weights) or not any(self.weights):
            raise InputError(f"must be finite numbers, not all 0, got {', '.join(map(str, self.weights))}",
                             field="--weight")
        checks = {"transform": (self.transform in TRANSFORMS, f"must be one of {', '.join(TRANSFORMS)}"),
                  "references": (self.references in REFERENCES, f"must be one of {', '.join(REFERENCES)}"),
                  "method": (self.method in METHODS, f"must be one of {', '.join(METHODS)}"),
                  "min_references": (self.min_references >= 1, "must be at least 1"),
                  "too_few": (self.too_few in TOO_FEW, f"must be one of {', '.join(TOO_FEW)}"),
                  "samples": (self.samples >= 1, "must be at least 1"),
                  "seed": (self.seed >= 0, "must be at least 0")}
        for name, (ok, reason) in checks.items():
            if not ok:
                raise InputError(f"{reason}, got {getattr(self, name)!r}", field="--" + name.replace("_", "-"))
        if (self.references == "samples") != (self.reference_lm is not None):
            raise InputError("--references samples and --reference-lm go together", field="--reference-lm")
        for q in self.quantiles:
            check_quantile(q)

    @classmethod
    def from_row(cls, row: dict) -> Combination:
        """A combination from its row of the combos table (or its Parquet copy); one registered before 0.6 has
        its one quantile for every model, and the defaults of the fields added since."""
        names = {f.name for f in fields(cls)} - {"quantiles"}
        quantiles = row.get("quantiles") or [row["quantile"]] * len(row["models"])
        return cls(quantiles=tuple(quantiles), **{k: v for k, v in row.items() if k in names and v is not None})

    @property
    def and_of_properties(self) -> bool:
        """Σ uᵢ is the log-probability that every property is good (the paper's soft AND) only with weights 1."""
        return self.transform != "lsc" or all(w == 1 for w in self.weights)

    def definition(self) -> str:
        """What the combination computes, in one line (the leaderboard's and the report's)."""
        symbol = {"lsc": "u", "raw": "r", "centered": "r−r_ref"}[self.transform]
        terms = " + ".join(f"{w:g}·{symbol}({m})" for w, m in zip(self.weights, self.models, strict=True))
        if self.transform == "raw":
            return terms
        source = {"prompt": "its candidates (π_ref-weighted when known)", "candidates": "its marked candidates",
                  "warehouse": "the warehouse's responses to it",
                  "samples": f"{self.samples} samples of {self.reference_lm} (seed {self.seed})",
                  "global": "every prompt's candidates at once (global)"}[self.references]
        fewer = ("" if self.references == "global" else
                 f"; fewer than {self.min_references}: " + ("the global quantile" if self.too_few == "global"
                                                             else "an error"))
        quantiles = ", ".join(f"{q:g}" for q in self.quantiles)
        return f"{terms}; r_ref per prompt: the {quantiles} quantile of {source}{fewer}"

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def check_quantile(q: float) -> float:
    if not 0 < q < 1:
        raise InputError(f"must be between 0 and 1 (both excluded), got {q}", field="--quantile")
    return q
