"""Calibration of σ(Δ), the probability a reward model gives that the first of two answers wins (Δ = r₁ − r₂):
each pair is read both ways, σ(Δ) for "chosen wins" (true) and σ(−Δ) for "rejected wins" (false), so the
probabilities fill [0, 1]; the expected calibration error is Σ_bins (n_bin / n) · |share true − mean
probability| over 10 equal bins. No torch: the report and the evaluation's diagnostics read it too."""

from __future__ import annotations

import math

BINS = 10


def calibration_bins(deltas: list[float], bins: int = BINS) -> list[dict]:
    """Per bin of predicted probability: pairs (counted both ways), mean probability, share true."""
    sums = [[0, 0.0, 0] for _ in range(bins)]  # count, probability sum, true
    for delta in deltas:
        p = 1 / (1 + math.exp(-max(min(delta, 700), -700)))
        for prob, true in ((p, 1), (1 - p, 0)):
            b = sums[min(int(prob * bins), bins - 1)]
            b[0], b[1], b[2] = b[0] + 1, b[1] + prob, b[2] + true
    return [{"low": i / bins, "high": (i + 1) / bins, "count": n, "probability": s / n if n else None,
             "true": t / n if n else None} for i, (n, s, t) in enumerate(sums)]


def expected_calibration_error(deltas: list[float], bins: int = BINS) -> float:
    table = calibration_bins(deltas, bins)
    total = sum(b["count"] for b in table)
    return sum(b["count"] / total * abs(b["true"] - b["probability"]) for b in table if b["count"])
