"""Normalised reward models (InstructGPT §3.5). The Bradley-Terry loss does not see a shift of the reward,
so a bias is chosen that gives a reference set mean reward 0 (and, with `scale`, std 1), and folded into a
copy of the model: plain AutoModelForSequenceClassification then reads normalised rewards, and no
comparison changes (a positive affine map keeps every order).

The reference set (`--to`): `edits` (the warehouse's human edits, the closest to labeler demonstrations),
`evalset:NAME` (the chosen completions of the set's latest version) or `split:NAME` (the best response of
each annotation of the split: its edit, else its rank-1 responses).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from prefpipe.errors import InputError
from prefpipe.evalsets import read_evalset
from prefpipe.files import follow_umask
from prefpipe.loading import load_reward_model, load_tokenizer
from prefpipe.registry import latest_evalsets
from prefpipe.scoring import reward_scorer, score_items
from prefpipe.settings import SPLITS
from prefpipe.sql import run_script
from prefpipe.transforms import normalisation

KINDS = ("edits", "evalset:NAME", "split:NAME")


def reference_items(wh, to: str) -> list[tuple[str | list[dict], str]]:
    """The (prompt, response) items of the reference set TO."""
    kind, _, name = to.partition(":")
    if kind == "evalset" and name:
        found = latest_evalsets(wh, name)
        if not found:
            raise InputError("no such evaluation set (see `prefpipe evalset list`)", field="--to", file=name)
        return [(e.prompt, text) for e in read_evalset(found[0]["path"], found[0]["format"]) for text in e.chosen]
    if (kind == "edits" and not name) or (kind == "split" and name in SPLITS):
        wh.set_variables(reference_kind=kind, split=name or None)
        run_script(wh.con, "analysis/normalise_references.sql")
        items = [(json.loads(prompt), text) for prompt, text in wh.con.table("normalise_references").fetchall()]
        if not items:
            raise InputError(f"the warehouse holds no {'human edit' if kind == 'edits' else 'annotation of ' + name}",
                             field="--to")
        return items
    raise InputError(f"must be {', '.join(KINDS)} (a split: {', '.join(SPLITS)}), got {to!r}", field="--to")


def normalise_model(source: Path, target: Path, items: list, scale: bool, to: str) -> dict:
    """Write to TARGET a copy of the reward model SOURCE whose rewards have mean 0 (and std 1) on ITEMS."""
    if target.exists():
        raise InputError("already exists: choose another --name", file=target)
    model, tokenizer = load_reward_model(source), load_tokenizer(source)
    rewards = score_items(items, reward_scorer(model.eval(), tokenizer))
    bias, factor = normalisation(rewards, scale)
    fold_affine(model, bias, factor)
    record = {"reference": to, "size": len(items), "bias": bias, "scale": factor, "from": str(Path(source).resolve())}
    model.config.prefpipe = dict(getattr(model.config, "prefpipe", {}) or {}) | {"normalisation": record}
    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    follow_umask(staging)
    staging.rename(target)
    return record


def fold_affine(model, bias: float, scale: float) -> None:
    """Make MODEL's reward (r + bias) · scale: in the head's last linear layer when it has a bias; else in the
    bias of the norm right before it (GPT-2's ln_f), by a shift along the head's weight."""
    head = model.classifier if hasattr(model, "classifier") else model.score
    linear = head if isinstance(head, torch.nn.Linear) else [m for m in head.modules()
                                                             if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        if linear.bias is not None:
            linear.bias.add_(bias)
        else:
            norm = getattr(model.base_model, "ln_f", None)
            if getattr(norm, "bias", None) is None:
                raise InputError(f"cannot fold a shift into {type(model).__name__}: its score head and final norm "
                                 "have no bias", field="--to")
            weight = linear.weight[0]
            norm.bias.add_(bias * weight / weight.dot(weight))
        linear.weight.mul_(scale)
        if linear.bias is not None:
            linear.bias.mul_(scale)
