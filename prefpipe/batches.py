"""Training batches: whole annotations packed up to a budget of padded tokens, lengths bucketed so
that a batch pads little, and collated into one tensor with the pairs and rankings that index into it."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from prefpipe.inputs import Encoded
from prefpipe.losses import Pairs
from prefpipe.model import pad

POOL = 1024  # annotations sorted by length together: larger pools pad less and shuffle less


def token_batches(encoded: list[Encoded], max_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """Whole annotations per batch, at most `max_tokens` padded tokens each (a larger one goes alone).

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


def collate(annotations: list[Encoded], pad_id: int) -> Batch:
    """One right-padded tensor of every input of the annotations; pairs and rankings shifted to match."""
    seqs = [s for u in annotations for s in u.inputs]
    ids, mask = pad(seqs, pad_id)
    chosen, rejected, margin, weight, rankings, offset = [], [], [], [], [], 0
    for u in annotations:
        for c, r, m, w in u.pairs:
            chosen.append(c + offset), rejected.append(r + offset), margin.append(m), weight.append(w)
        rankings.append([[i + offset for i in g] for g in u.groups])
        offset += len(u.inputs)
    pairs = Pairs(torch.tensor(chosen), torch.tensor(rejected), torch.tensor(margin, dtype=torch.float32),
                  torch.tensor(weight, dtype=torch.float32))
    return Batch(ids, mask, pairs, rankings, sum(map(len, seqs)))
