"""The listwise losses against their pairwise statements and hand computations."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from prefpipe.losses import Pairs, pairwise_loss, plackett_luce_loss

# Two annotations: A ranks responses 0 > 1 > 2 (3 pairs), B ranks 3 > 4 (1 pair).
PAIRS = Pairs(chosen=torch.tensor([0, 0, 1, 3]), rejected=torch.tensor([1, 2, 2, 4]),
              margin=torch.tensor([1.0, 2.0, 1.0, 1.0]), weight=torch.tensor([1 / 3, 1 / 3, 1 / 3, 1.0]))


def scorer() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(8, 1)


def features() -> torch.Tensor:
    return torch.randn(5, 8, generator=torch.Generator().manual_seed(1))


def test_listwise_loss_and_gradients_equal_the_mean_pairwise_loss():
    x = features()
    listwise_model, pairwise_model = scorer(), scorer()
    listwise = pairwise_loss(listwise_model(x).squeeze(-1), PAIRS)  # every response forwarded once
    # TRL-style: each pair forwards its two responses again; annotation-weighted mean over pairs
    per_pair = [-F.logsigmoid(pairwise_model(x[c]) - pairwise_model(x[r])) * w
                for c, r, w in zip(PAIRS.chosen, PAIRS.rejected, PAIRS.weight, strict=True)]
    pairwise = torch.stack(per_pair).sum() / PAIRS.weight.sum()
    assert abs(listwise.item() - pairwise.item()) < 1e-6
    listwise.backward()
    pairwise.backward()
    for a, b in zip(listwise_model.parameters(), pairwise_model.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)


def test_each_annotation_weighs_one():
    rewards = torch.tensor([2.0, 1.0, 0.0, 5.0, -5.0])
    a = [math.log1p(math.exp(-d)) for d in (1.0, 2.0, 1.0)]
    b = math.log1p(math.exp(-10.0))
    assert abs(pairwise_loss(rewards, PAIRS).item() - (sum(a) / 3 + b) / 2) < 1e-6


def test_margin_and_centring_terms():
    rewards = torch.tensor([2.0, 1.0, 0.0, 5.0, -5.0])
    scaled = pairwise_loss(rewards, PAIRS, margin_scale=0.5)
    a = [math.log1p(math.exp(-(d - 0.5 * m))) for d, m in ((1.0, 1), (2.0, 2), (1.0, 1))]
    b = math.log1p(math.exp(-(10.0 - 0.5)))
    assert abs(scaled.item() - (sum(a) / 3 + b) / 2) < 1e-6
    centred = pairwise_loss(rewards, PAIRS, center_coefficient=0.01)
    squares = ((9 + 4 + 1) / 3 + 0) / 2  # mean over annotations of (r_c + r_r)^2
    assert abs(centred.item() - pairwise_loss(rewards, PAIRS).item() - 0.01 * squares) < 1e-6


def test_plackett_luce_matches_a_hand_computation_with_and_without_ties():
    r = torch.tensor([1.5, 0.5, -1.0])
    e = [math.exp(v) for v in r.tolist()]
    strict = -((1.5 - math.log(e[0] + e[1] + e[2])) + (0.5 - math.log(e[1] + e[2])))
    tied = -((1.5 - math.log(sum(e))) + (0.5 - math.log(sum(e))))  # 0 and 1 tied above 2
    got = plackett_luce_loss(r, [[[0], [1], [2]], [[0, 1], [2]]])
    assert abs(got.item() - (strict + tied) / 2) < 1e-6
    two = plackett_luce_loss(r, [[[0], [1]]])  # with two responses it is the Bradley-Terry loss
    assert abs(two.item() - math.log1p(math.exp(-1.0))) < 1e-6
