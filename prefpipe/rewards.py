"""Rewards of candidates, one run of the lake each (rewards/run_date=/run_id=/):

    candidates.parquet  one row per candidate: ids, prompt, response, reference, ref_logprob, ref_source
    rewards.parquet     one row per candidate and model: its raw reward

Scored as the nightly scores (prefpipe.evaluation): every distinct (prompt, response) once, in batches
sorted by length, a reward independent of its batch. π_ref's log-probability of a response (over the
response's tokens) comes from a local causal LM, or from the file's `ref_logprob`; without either, π_ref is
uniform over a prompt's candidates, and `ref_source` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from prefpipe.candidates import Candidate, candidates_table
from prefpipe.config import Combination
from prefpipe.dpo import SequenceLogprob
from prefpipe.errors import InputError
from prefpipe.lake import REWARDS, write_partition
from prefpipe.lake_runs import find_runs, in_written_order
from prefpipe.scoring import score_items, scorer
from prefpipe.transforms import combination
from prefpipe.versions import code_version

REWARD_SCHEMA = pa.schema([("prompt_id", pa.string()), ("response_id", pa.string()), ("model_id", pa.string()),
                           ("reward", pa.float64())])


def model_rewards(candidates: list[Candidate], model_id: str, folder: Path, reference: Path | None = None,
                  device: str = "cpu") -> pa.Table:
    """One model's reward of every candidate (a DPO policy's implicit reward with REFERENCE)."""
    values = score_items([(c.prompt, c.response) for c in candidates], scorer(folder, reference, device))
    return pa.table({"prompt_id": [c.prompt_id for c in candidates], "response_id": [c.response_id for c in candidates],
                     "model_id": [model_id] * len(candidates), "reward": values}, schema=REWARD_SCHEMA)


def with_reference(candidates: list[Candidate], reference_lm: Path | None = None, device: str = "cpu") -> pa.Table:
    """The candidates table with π_ref's log-probability of each response and where it comes from: the
    local causal LM REFERENCE_LM (over the response's tokens), else the file's ref_logprob, else none
    (uniform)."""
    if reference_lm is not None:
        logprobs = score_items([(c.prompt, c.response) for c in candidates], SequenceLogprob(reference_lm, device))
        sources = [f"lm:{Path(reference_lm)}"] * len(candidates)
    else:
        logprobs = [c.ref_logprob for c in candidates]
        sources = ["file" if value is not None else "uniform" for value in logprobs]
    table = candidates_table(candidates)
    table = table.set_column(table.schema.get_field_index("ref_logprob"), "ref_logprob",
                             pa.array(logprobs, pa.float64()))
    return table.append_column("ref_source", pa.array(sources, pa.string()))


def write_rewards(root: Path, run_id: str, run_date: date, candidates: pa.Table, rewards: pa.Table,
                  source: str) -> Path:
    """The run folder, whole or not at all; every row carries the run, its source and the code version."""
    provenance = {"run_id": run_id, "run_date": run_date, "source": source, "code_version": code_version()}
    return write_partition(root, REWARDS.partition(run_date=run_date, run_id=run_id),
                           {"candidates": _with(candidates, provenance), "rewards": _with(rewards, provenance)})


def _with(table: pa.Table, columns: dict) -> pa.Table:
    for name, value in columns.items():
        table = table.append_column(name, pa.array([value] * len(table)))
    return table


@dataclass
class RewardRun:
    """A rewards run read back: its candidates (table order) and each model's reward, aligned with them."""

    folder: Path
    candidates: pa.Table
    rewards: dict[str, np.ndarray]

    @property
    def run_id(self) -> str:
        return self.folder.name.removeprefix("run_id=")

    def prompt_ids(self) -> np.ndarray:
        return np.asarray(self.candidates["prompt_id"].to_pylist(), dtype=object)

    def log_ref(self) -> tuple[np.ndarray | None, str]:
        """log π_ref per candidate (None: uniform) and where it comes from. A prompt with a candidate that
        has no log-probability takes a uniform π_ref as a whole, so the sources are: lm:PATH, file,
        uniform, or mixed (file where whole, uniform elsewhere)."""
        logprob = np.asarray(self.candidates["ref_logprob"].to_pylist(), dtype=object)
        known = np.array([v is not None for v in logprob])
        if not known.any():
            return None, "uniform"
        prompts = self.prompt_ids()
        missing = set(prompts[~known].tolist())
        whole = np.array([p not in missing for p in prompts])
        values = np.where(whole, np.where(known, logprob, 0.0), 0.0).astype(np.float64)
        sources = set(self.candidates["ref_source"].to_pylist())
        return values, (sources.pop() if whole.all() and len(sources) == 1 else "mixed")


def read_rewards(root: Path, run_id: str | None = None) -> RewardRun:
    """The rewards run RUN_ID (default: the newest) of ROOT."""
    runs = find_runs(root, (REWARDS,))[0][REWARDS.name]
    if run_id is not None:
        runs = [r for r in runs if r.name == f"run_id={run_id}"]
    if not runs:
        raise InputError("no such rewards run (see `prefpipe rewards score`)" if run_id else
                         "no rewards yet: run `prefpipe rewards score` first", file=run_id or root, field="--rewards")
    folder = in_written_order(runs, REWARDS)[-1]
    candidates = pq.read_table(folder / "candidates.parquet")
    keys = {k: i for i, k in enumerate(zip(candidates["prompt_id"].to_pylist(), candidates["response_id"].to_pylist(),
                                           strict=True))}
    rewards: dict[str, np.ndarray] = {}
    for row in pq.read_table(folder / "rewards.parquet", columns=["prompt_id", "response_id", "model_id",
                                                                   "reward"]).to_pylist():
        values = rewards.setdefault(row["model_id"], np.full(len(keys), np.nan))
        values[keys[row["prompt_id"], row["response_id"]]] = row["reward"]
    return RewardRun(folder, candidates, rewards)


def combination_rewards(combo: Combination, run: RewardRun, outside: dict[str, tuple[list, list]] | None = None
                        ) -> tuple[np.ndarray, pa.Table]:
    """The combination's score of every candidate of RUN, and its reference rewards (prefpipe.transforms)."""
    missing = [m for m in combo.models if m not in run.rewards]
    if missing:
        raise InputError(f"the rewards run {run.run_id} has no rewards of {', '.join(missing)}; score them with "
                         "`prefpipe rewards score --model ...`", field="--combo", file=combo.name)
    marked = np.asarray(run.candidates["reference"].to_pylist(), dtype=bool)
    logprob = np.array([np.nan if v is None else v for v in run.candidates["ref_logprob"].to_pylist()], np.float64)
    score, rows = combination(combo, run.prompt_ids(), run.rewards, marked if combo.references == "candidates"
                              else None, outside, logprob)
    table = pa.Table.from_pylist(rows)
    return score, table.rename_columns(["prompt_id" if c == "prompt" else c for c in table.column_names])
