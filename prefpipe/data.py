"""Training data: annotations as whole units, their model inputs, and batches filled by token count.

A unit is one annotation: its compared responses and its pairs. A snapshot of the units is written
beside the model (`data.parquet`), so training, resuming and every process of a multi-GPU run read
the same data, and the warehouse is free for ingest while a model trains.

Model input of (prompt, response): the tokenizer's chat template when it has one (the prompt's
messages, then the response as the assistant's turn). Otherwise a plain transcript, one block per
message, the response last (a string prompt is one user message):

    User: How do I boil an egg?

    Assistant: Put it in boiling water for eight minutes.

with the tokenizer's own special tokens around it ([CLS] … [SEP] for BERT). Inputs longer than
`max_length` keep the response and the end of the prompt: the prompt is cut from the left first.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import torch

from prefpipe.errors import InputError
from prefpipe.losses import Pairs
from prefpipe.model import pad, quiet_transformers
from prefpipe.sql import run_script

SPLITS = ("train", "validation", "test")
SNAPSHOT = "data.parquet"
ROLES = {"user": "User", "assistant": "Assistant", "system": "System"}
POOL = 1024  # units sorted by length together: larger pools pad less and shuffle less


@dataclass
class Unit:
    """One annotation: `texts` are its compared responses; pairs index into them."""

    annotation_id: str
    split: str
    prompt: str | list[dict]
    annotator_id: str
    source: str
    batch_id: str
    texts: list[str]
    ranks: list[int]  # effective rank, best 1 (the human edit 0)
    pairs: list[tuple[int, int, int, float]]  # (chosen, rejected, rank gap, weight)


def snapshot_units(con, out: Path, splits: tuple[str, ...] = SPLITS) -> dict:
    """Write the units of SPLITS to OUT (Parquet, atomically); return what the snapshot holds."""
    con.execute("SET VARIABLE splits = ?", [list(splits)])
    run_script(con, "train/units.sql")
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    con.execute("COPY (SELECT * FROM train_units ORDER BY annotation_id) TO ? (FORMAT parquet)", [str(temporary)])
    temporary.replace(out)
    return describe(read_units(out))


def read_units(path: Path, split: str | None = None) -> list[Unit]:
    units = []
    for row in pq.read_table(path).to_pylist():
        if split is not None and row["split"] != split:
            continue
        index = {position: i for i, position in enumerate(row["positions"])}
        units.append(Unit(row["annotation_id"], row["split"], json.loads(row["prompt"]), row["annotator_id"],
                          row["source"], row["batch_id"], row["texts"], row["ranks"],
                          [(index[p["chosen"]], index[p["rejected"]], p["margin"], p["weight"]) for p in row["pairs"]]))
    return units


def describe(units: list[Unit]) -> dict:
    """The data snapshot recorded with a model: batches, pairs per split, and a hash of the content."""
    digest = hashlib.sha256()
    for u in units:
        digest.update(json.dumps([u.annotation_id, u.split, u.prompt, u.texts, u.ranks, u.pairs]).encode())
    pairs = {s: sum(len(u.pairs) for u in units if u.split == s) for s in SPLITS}
    return {"batch_ids": sorted({u.batch_id for u in units}), "annotations": len(units), "pairs": pairs,
            "hash": digest.hexdigest()}


# -- model inputs ---------------------------------------------------------------------------------------

def transcript(messages: list[dict]) -> str:
    return "\n\n".join(f"{ROLES.get(m['role'], m['role'].title())}: {m['content']}" for m in messages)


def prompt_and_response(tokenizer, prompt: str | list[dict], response: str) -> tuple[str, str]:
    """The input text in two parts, prompt first: their concatenation is the whole input."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if not getattr(tokenizer, "chat_template", None):
        return transcript(messages) + "\n\nAssistant:", " " + response
    head = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": response}], tokenize=False)
    # the longest common start: templates that rewrite earlier turns still split cleanly
    cut = next((i for i, (a, b) in enumerate(zip(head, full, strict=False)) if a != b), min(len(head), len(full)))
    return full[:cut], full[cut:]


def render_text(tokenizer, prompt: str | list[dict], response: str) -> str:
    """The whole input as one string (without the tokenizer's special tokens)."""
    return "".join(prompt_and_response(tokenizer, prompt, response))


@dataclass
class Encoded:
    """A unit as token ids: its distinct inputs, and pairs and ranking groups that index into them."""

    inputs: list[list[int]]
    pairs: list[tuple[int, int, int, float]]
    groups: list[list[int]]  # for Plackett-Luce: best first, tied inputs together
    unit: Unit

    @property
    def width(self) -> int:
        return max(map(len, self.inputs))

    @property
    def tokens(self) -> int:
        return sum(map(len, self.inputs))


class InputBuilder:
    """Token ids of (prompt, response) inputs with at most `max_length` tokens, each text tokenized once."""

    def __init__(self, tokenizer, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length
        if getattr(tokenizer, "chat_template", None):
            self.prefix, self.suffix = [], []  # the template writes its own special tokens
        else:
            plain = tokenizer("x", add_special_tokens=False)["input_ids"]
            marked = tokenizer("x")["input_ids"]
            start = next(i for i in range(len(marked)) if marked[i:i + len(plain)] == plain)
            self.prefix, self.suffix = marked[:start], marked[start + len(plain):]
        self.room = max_length - len(self.prefix) - len(self.suffix)
        if self.room < 2:
            raise InputError(f"must leave room for text after {len(self.prefix) + len(self.suffix)} special tokens, "
                             f"got {max_length}", field="max_length")

    def build(self, pairs: list[tuple[str | list[dict], str]]) -> list[list[int]]:
        return [ids for ids, _ in self.build_with_start(pairs)]

    def build_with_start(self, pairs: list[tuple[str | list[dict], str]]) -> list[tuple[list[int], int]]:
        """The token ids of each input, and where its response starts."""
        parts = [prompt_and_response(self.tokenizer, p, r) for p, r in pairs]
        ids = self._tokenize([text for part in parts for text in part])
        return [self.fit(ids[2 * i], ids[2 * i + 1]) for i in range(len(parts))]

    def fit(self, prompt: list[int], response: list[int]) -> tuple[list[int], int]:
        """An input that fits is kept whole; else the prompt keeps its end, and a response longer than the
        room keeps its start (and no prompt)."""
        response = response[: self.room]
        keep = min(len(prompt), self.room - len(response))
        head = self.prefix + prompt[len(prompt) - keep:]
        return head + response + self.suffix, len(head)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        distinct = list(dict.fromkeys(texts))  # a prompt shared by K responses is tokenized once
        with quiet_transformers():  # "longer than the maximum length": fit() truncates next
            ids = dict(zip(distinct, self.tokenizer(distinct, add_special_tokens=False)["input_ids"], strict=True))
        return [ids[t] for t in texts]


def encode_units(builder: InputBuilder, units: list[Unit]) -> tuple[list[Encoded], int]:
    """Encoded units and the number of pairs left out because both inputs became identical."""
    ids = builder.build([(u.prompt, text) for u in units for text in u.texts])
    encoded, identical, offset = [], 0, 0
    for u in units:
        rows, slot = [], {}
        for seq in ids[offset: offset + len(u.texts)]:
            rows.append(slot.setdefault(tuple(seq), len(slot)))
        offset += len(u.texts)
        pairs = [(rows[c], rows[r], m, w) for c, r, m, w in u.pairs if rows[c] != rows[r]]
        identical += len(u.pairs) - len(pairs)
        if not pairs:
            continue
        groups: dict[int, list[int]] = {}
        placed = set()  # an input shared by two responses is ranked once, at the better rank
        for rank, row in sorted(zip(u.ranks, rows, strict=True)):
            if row not in placed:
                placed.add(row)
                groups.setdefault(rank, []).append(row)
        encoded.append(Encoded([list(s) for s in slot], pairs, [groups[k] for k in sorted(groups)], u))
    return encoded, identical


# -- batches --------------------------------------------------------------------------------------------

def token_batches(encoded: list[Encoded], max_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """Whole units per batch, at most `max_tokens` padded tokens each (a larger unit goes alone).

    Units are shuffled, sorted by length within pools of POOL so that a batch pads little, packed,
    and the batches shuffled again: the same seed and epoch always give the same batches.
    """
    rng = random.Random(f"{seed}/{epoch}")
    order = list(range(len(encoded)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), POOL):
        batch, rows, width = [], 0, 0
        for i in sorted(order[start:start + POOL], key=lambda i: (encoded[i].width, i)):
            more_rows, more_width = rows + len(encoded[i].inputs), max(width, encoded[i].width)
            if batch and more_rows * more_width > max_tokens:
                batches.append(batch)
                batch, more_rows, more_width = [], len(encoded[i].inputs), encoded[i].width
            batch.append(i)
            rows, width = more_rows, more_width
        batches.append(batch)
    rng.shuffle(batches)
    return [b for b in batches if b]


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    pairs: Pairs
    rankings: list[list[list[int]]]
    tokens: int  # real (not padding) tokens

    def to(self, device: torch.device) -> Batch:
        pairs = Pairs(*(t.to(device) for t in (self.pairs.chosen, self.pairs.rejected, self.pairs.margin,
                                                self.pairs.weight)))
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), pairs, self.rankings, self.tokens)


def collate(units: list[Encoded], pad_id: int) -> Batch:
    """One right-padded tensor of every input of the units; pairs and rankings shifted to match."""
    seqs = [s for u in units for s in u.inputs]
    ids, mask = pad(seqs, pad_id)
    chosen, rejected, margin, weight, rankings, offset = [], [], [], [], [], 0
    for u in units:
        for c, r, m, w in u.pairs:
            chosen.append(c + offset), rejected.append(r + offset), margin.append(m), weight.append(w)
        rankings.append([[i + offset for i in g] for g in u.groups])
        offset += len(u.inputs)
    pairs = Pairs(torch.tensor(chosen), torch.tensor(rejected), torch.tensor(margin, dtype=torch.float32),
                  torch.tensor(weight, dtype=torch.float32))
    return Batch(ids, mask, pairs, rankings, sum(map(len, seqs)))

