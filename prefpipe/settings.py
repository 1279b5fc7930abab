"""Settings: where prefpipe keeps things and how its jobs run (paths, limits, schedules, dedup), each default
once, overridable by PREFPIPE_* environment variables and flags. A job's hyperparameters are prefpipe.config's."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from prefpipe.dedup import Params
from prefpipe.errors import InputError
from prefpipe.store import Bucket, Location, check_bucket, location

SPLITS = ("train", "validation", "test")  # by a stable hash of the prompt, in the shares of Settings.splits
HELD_OUT = SPLITS[1:]  # what a trained model is evaluated on
DEDUP_ENV = {"dedup_ngram": int, "dedup_permutations": int, "dedup_bands": int, "dedup_threshold": float}
SECONDS_ENV = {"lock_timeout_s": "PREFPIPE_LOCK_TIMEOUT", "prefect_start_timeout_s": "PREFPIPE_PREFECT_START_TIMEOUT",
               "prefect_idle_s": "PREFPIPE_PREFECT_IDLE"}
TASK_RUNNERS = ("threads", "dask")  # in this process | a Dask cluster (prefect-dask)


@dataclass(frozen=True)
class Settings:
    home: Path = Path("data")
    lake: Location = Path("data")  # where results, rewards, analyses, table copies live (the home; or s3://...)
    warehouse: Path = Path("data/warehouse.duckdb")
    results: Location = Path("data/results")
    models: Path = Path("data/models")  # trained models, one folder each
    tables: Location = Path("data/tables")  # Parquet copies of the warehouse tables, for `prefpipe sql`
    rewards: Location = Path("data/rewards")  # candidates scored by reward models, one run folder each
    analysis: Location = Path("data/analysis")  # analysis=tilt/..., one run folder each
    report: Path = Path("data/report")  # the morning report (a static site), replaced whole by each nightly run
    max_responses: int = 9
    max_chars: int = 50_000
    max_quarantined_share: float = 0.5  # a batch above this share fails as a whole
    splits: tuple[float, float, float] = (0.90, 0.05, 0.05)  # train / validation / test
    lock_timeout_s: float = 30.0  # how long a second writer waits for the warehouse
    memory_limit: str = "2.5GB"  # DuckDB's buffer pool; larger batches spill to disk beside the warehouse
    data_docs: bool = True
    regression_threshold: float = 0.02  # a nightly drop larger than this (accuracy, section, score) fails the run
    nightly_cron: str = "0 2 * * *"  # when `prefpipe serve` runs the nightly evaluation (also in prefect.yaml)
    nightly_timezone: str = "UTC"
    prefect_port: int = 4200  # of the local Prefect server that `prefpipe serve` starts when none is configured
    # the home's shared Prefect server (prefpipe/prefect_server.py): how long a command waits for it to answer
    # (Prefect's own ephemeral server waits 20 s, too short on a busy machine), and how long it stays up unused
    prefect_start_timeout_s: float = 300.0
    prefect_idle_s: float = 60.0
    task_runner: str = TASK_RUNNERS[0]  # of the nightly units and the trade-off's settings
    demo_annotations: int = 400  # `prefpipe demo`: synthetic annotations, and epochs of its model
    demo_epochs: int = 2
    # near-duplicate prompts (prefpipe.dedup): word n-grams, MinHash permutations, LSH bands, Jaccard threshold
    dedup_ngram: int = 5
    dedup_permutations: int = 128
    dedup_bands: int = 16  # of 8 rows: a pair at Jaccard 0.8 shares a bucket with probability 0.947, at 0.9 0.9999
    dedup_threshold: float = 0.8

    @property
    def docs_dir(self) -> Path:
        return self.home / "gx"

    @property
    def dedup(self) -> Params:
        return Params(self.dedup_ngram, self.dedup_permutations, self.dedup_bands, self.dedup_threshold)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults < PREFPIPE_* environment variables < explicit overrides (None = not given)."""
        env = os.environ
        home = Path(overrides.get("home") or env.get("PREFPIPE_HOME", "data"))  # the other paths follow it
        lake = location(overrides.get("lake") or env.get("PREFPIPE_LAKE", home))  # and the lake's follow the lake
        values: dict = {"home": home, "lake": lake} | {  # PREFPIPE_<NAME>, else the default's place under either
            name: env.get(f"PREFPIPE_{name.upper()}", (lake if name in LAKE else home)
                          / str(getattr(cls, name).relative_to(cls.home)))
            for name in PATHS[2:]}
        for key, name in SECONDS_ENV.items():
            if name in env:
                values[key] = _number(name, env[name], what="of seconds")
        for key, kind in DEDUP_ENV.items():
            name = f"PREFPIPE_{key.upper()}"
            if name in env:
                values[key] = _number(name, env[name], kind)
        if "PREFPIPE_MEMORY_LIMIT" in env:
            values["memory_limit"] = env["PREFPIPE_MEMORY_LIMIT"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in PATHS:  # a bucket only where the lake is: the rest stays on this machine
            values[key] = location(values[key], f"PREFPIPE_{key.upper()}")
            if isinstance(values[key], Bucket) and key not in ("lake", *LAKE):
                raise InputError("stays on this machine: give a local folder (only the lake can be in a bucket)",
                                 field=f"PREFPIPE_{key.upper()}", file=str(values[key]))
        settings = cls(**values)
        settings.check()
        return settings

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)

    def check_lake(self, write: bool) -> None:
        """Before any work, in one line each: every bucket of the lake answers, knows these credentials and
        (to WRITE) takes writes. A lake on this machine needs no check."""
        for root in dict.fromkeys(p for p in (self.results, self.rewards, self.analysis, self.tables)
                                  if isinstance(p, Bucket)):
            check_bucket(root, write)

    def check(self) -> None:
        if self.task_runner not in TASK_RUNNERS:
            raise InputError(f"must be one of {', '.join(TASK_RUNNERS)}, got {self.task_runner!r}",
                             field="--task-runner")
        if not self.max_responses >= 2:
            raise InputError(f"must be at least 2, got {self.max_responses}", field="max_responses")
        if not 0 <= self.max_quarantined_share <= 1:
            raise InputError(f"must be between 0 and 1, got {self.max_quarantined_share}",
                             field="max_quarantined_share")
        if len(self.splits) != 3 or min(self.splits) < 0 or abs(sum(self.splits) - 1) > 1e-9:
            raise InputError(f"must be three non-negative fractions summing to 1, got {self.splits}",
                             field="splits")
        for key, name in SECONDS_ENV.items():
            if not 0 <= (value := getattr(self, key)) < math.inf:
                raise InputError(f"must be a finite number of seconds, at least 0, got {value}", field=name)
        self.dedup.check()


PATHS = tuple(f.name for f in fields(Settings) if isinstance(f.default, Path))  # home and lake first: the rest follow
LAKE = ("results", "rewards", "analysis", "tables")  # what follows PREFPIPE_LAKE (--lake)


def check_threshold(threshold: float) -> float:
    """A regression threshold: a finite number of at least 0 (NaN would never flag a drop)."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold < math.inf:
        raise InputError(f"must be a finite number of at least 0, got {threshold}", field="--threshold")
    return float(threshold)


def _number(name: str, text: str, kind: type = float, what: str = "") -> float:
    try:
        return kind(text)
    except ValueError:
        wanted = "a whole number" if kind is int else f"a number{' ' + what if what else ''}"
        raise InputError(f"must be {wanted}, got {text!r}", field=name) from None
