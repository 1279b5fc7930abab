"""Sampling adaptors and settings of the probability–quality trade-off (prefpipe.tradeoff): what
`--adaptor` and `--temperature` accept, checked before anything runs. No torch here: the command line
reads it at start; prefpipe.sampling draws with it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from prefpipe.errors import InputError

# kind -> what its value is, and the range it must lie in
KINDS = {"ancestral": None, "top-k": ("k", 1, None), "nucleus": ("p", 0, 1), "typical": ("mass", 0, 1),
         "eta": ("epsilon", 0, 1)}
DEFAULT_ADAPTORS = ("ancestral", "top-k=30", "top-k=50", "nucleus=0.9", "nucleus=0.95", "typical=0.9", "eta=0.0009")
DEFAULT_TEMPERATURES = (0.5, 0.75, 1.0, 1.25, 1.5)


@dataclass(frozen=True)
class Adaptor:
    """A sampling adaptor: ancestral (none), top-k=K, nucleus=P, typical=MASS or eta=EPSILON."""

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> Adaptor:
        kind, _, value = text.strip().partition("=")
        if kind not in KINDS:
            raise InputError(f"must be one of {', '.join(KINDS)} (with =VALUE but for ancestral), got {text!r}",
                             field="--adaptor")
        if KINDS[kind] is None:
            if value:
                raise InputError(f"ancestral sampling takes no value, got {text!r}", field="--adaptor")
            return cls(kind)
        name, low, high = KINDS[kind]
        try:
            number = int(value) if kind == "top-k" else float(value)
        except ValueError:
            raise InputError(f"{kind} needs ={name}, a {'whole ' if kind == 'top-k' else ''}number, got {text!r}",
                             field="--adaptor") from None
        if not (number >= low if high is None else low < number <= high) or (kind == "eta" and number == 1):
            bounds = f"at least {low}" if high is None else f"in ({low}, {high}{')' if kind == 'eta' else ']'}"
            raise InputError(f"{kind}'s {name} must be {bounds}, got {value}", field="--adaptor")
        return cls(kind, number)

    @property
    def name(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value:g}"

    def warpers(self, temperature: float, device: str = "cpu") -> list:
        """Transformers' warpers for this adaptor at TEMPERATURE, in the order generate applies them:
        temperature first (none at τ = 1: no change), then the truncation (none for ancestral). Imported here:
        prefpipe.config, and so the command line, imports this module, and transformers takes 1.1 s."""
        from transformers import (
            EtaLogitsWarper,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
            TypicalLogitsWarper,
        )

        found: list = [] if temperature == 1.0 else [TemperatureLogitsWarper(temperature)]
        if self.kind == "top-k":
            found.append(TopKLogitsWarper(top_k=int(self.value)))
        elif self.kind == "nucleus" and self.value < 1.0:
            found.append(TopPLogitsWarper(top_p=self.value))
        elif self.kind == "typical" and self.value < 1.0:
            found.append(TypicalLogitsWarper(mass=self.value))
        elif self.kind == "eta":
            found.append(EtaLogitsWarper(epsilon=self.value, device=device))
        return found


@dataclass(frozen=True)
class Setting:
    """One sampling setting: an adaptor at a temperature (a corpus of the trade-off)."""

    adaptor: Adaptor
    temperature: float

    @property
    def name(self) -> str:
        return f"{self.adaptor.name} τ={self.temperature:g}"



MIN_TEMPERATURE = 1e-4  # logits / τ stay finite in float32 (|logit| < 1e4); below it sampling is greedy anyway


def check_temperature(temperature: float) -> float:
    if not (isinstance(temperature, int | float) and not isinstance(temperature, bool)
            and MIN_TEMPERATURE <= temperature < math.inf):
        raise InputError(f"every temperature must be a finite number of at least {MIN_TEMPERATURE:g}, got "
                         f"{temperature}", field="--temperature")
    return float(temperature)
