"""Reward-model losses over whole annotations (listwise, as InstructGPT trained).

A batch holds the distinct responses of some annotations, scored once each (`rewards`, shape [N]).
Its pairs index into them. Each pair carries its annotation's weight (1 / pairs of the annotation), so
summing weighted pair losses and dividing by the number of annotations is exactly the mean pairwise
loss over the same pairs, while every response is forwarded once instead of once per pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Pairs:
    """The pairs of a batch: indices into `rewards`, rank gap and weight (weights of an annotation sum to 1)."""

    chosen: torch.Tensor  # [P] long
    rejected: torch.Tensor  # [P] long
    margin: torch.Tensor  # [P] float, rank gap
    weight: torch.Tensor  # [P] float


def pairwise_loss(rewards: torch.Tensor, pairs: Pairs, *, margin_scale: float = 0.0,
                  center_coefficient: float = 0.0) -> torch.Tensor:
    """Bradley-Terry: -log σ(r_c - r_r - margin_scale * rank gap), weighted mean over pairs.

    margin_scale 0 is `bt`; above 0 is `bt-margin`. center_coefficient adds TRL's reward centring,
    coefficient * mean (r_c + r_r)^2, which pins rewards near zero without changing their order.
    """
    r_c, r_r = rewards[pairs.chosen], rewards[pairs.rejected]
    loss = -F.logsigmoid(r_c - r_r - margin_scale * pairs.margin)
    total = pairs.weight.sum()
    value = (pairs.weight * loss).sum() / total
    if center_coefficient:
        value = value + center_coefficient * (pairs.weight * (r_c + r_r) ** 2).sum() / total
    return value


def plackett_luce_loss(rewards: torch.Tensor, rankings: list[list[list[int]]]) -> torch.Tensor:
    """Negative log-likelihood of whole rankings, mean over annotations.

    A ranking is a list of groups, best first, each a list of indices into `rewards`; a group of tied
    responses is handled as Breslow does: each of them is picked from the same remaining set, the group
    and everything ranked below it.
    """
    losses = []
    for groups in rankings:
        terms = []
        for k, group in enumerate(groups[:-1]):  # the last group is what remains: nothing to choose
            remaining = torch.cat([rewards[g] for g in (torch.tensor(x) for x in groups[k:])])
            terms.append(rewards[torch.tensor(group)] - torch.logsumexp(remaining, dim=0))
        losses.append(-torch.cat(terms).sum())
    return torch.stack(losses).mean()
