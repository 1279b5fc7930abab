"""The tables of one evaluation run, as the lake stores them (prefpipe.lake): a row per example (its scores,
RewardBench's credit, the score gap and the answers' lengths) and summary rows (level, name, value): the
subsets, sections and scores as RewardBench computes them (prefpipe.rewardbench), with and without the examples
a model's training data matched, and the diagnostics the common tools do not report."""

from __future__ import annotations

import statistics
from collections import Counter

import pyarrow as pa

from prefpipe.calibration import expected_calibration_error
from prefpipe.evalsets import Example, Scores
from prefpipe.lake import Run
from prefpipe.rewardbench import best_of_n_credit, best_of_n_scores, pairwise_credit, pairwise_scores, section_of


def result_tables(run: Run, examples: list[Example], scores: Scores, fmt: str,
                  contaminated: list[str] | None = None, credits: list[float] | None = None
                  ) -> tuple[pa.Table, pa.Table]:
    """Per-example rows and summary rows (subset, section, score) of one model on one evaluation set; with
    CONTAMINATED (the examples its training data matched), their count and share, and the sections and scores
    over the other examples (level `decontaminated`). CREDITS: each example's credit where the scorer gives its
    own (a generative judge's, on a pairwise set); by default RewardBench's from the scores."""
    credits = credits or [best_of_n_credit(c, r) if fmt == "rewardbench2" else pairwise_credit(c[0], r[0])
                          for c, r in scores]
    rows = []
    for e, (chosen, rejected), credit in zip(examples, scores, credits, strict=True):
        rows.append({"example_id": e.example_id, "subset": e.subset, "section": section_of(e.subset),
                     "chosen_scores": chosen, "rejected_scores": rejected,
                     "score_gap": max(chosen) - max(rejected), "credit": credit,
                     "chosen_chars": max(map(len, e.chosen)), "rejected_chars": max(map(len, e.rejected))})
    summary = summarise(examples, scores, fmt, credits)
    if contaminated is not None:
        matched = set(contaminated)
        clean = [(e, s, c) for e, s, c in zip(examples, scores, credits, strict=True) if e.example_id not in matched]
        summary += [("contamination", "contaminated_examples", float(len(examples) - len(clean))),
                    ("contamination", "contaminated_share", (len(examples) - len(clean)) / len(examples))]
        if clean:
            kept = [list(column) for column in zip(*clean, strict=True)]
            summary += [("decontaminated", name, value) for level, name, value in summarise(*kept[:2], fmt, kept[2])
                        if level in ("section", "score")]
    summary += diagnostics(rows)
    counts = Counter(r["subset"] for r in rows)
    provenance = run.provenance()
    per_subset = ("subset", "length_bias")
    summary_rows = [provenance | {"level": level, "name": name, "value": value,
                                  "examples": counts.get(name) if level in per_subset else None}
                    for level, name, value in summary]
    return pa.Table.from_pylist([provenance | r for r in rows]), pa.Table.from_pylist(summary_rows)


def summarise(examples: list[Example], scores: Scores, fmt: str, credits: list[float]
              ) -> list[tuple[str, str, float]]:
    """RewardBench's summary: (level, name, value) of the subsets, sections and final scores (CREDITS: each
    pairwise example's)."""
    if fmt == "rewardbench2":
        got = best_of_n_scores([(e.subset, e.example_id, c, r) for e, (c, r) in zip(examples, scores, strict=True)])
        return [("subset", s, v) for s, v in got["subsets"].items()] + [("score", "score", got["score"])]
    got = pairwise_scores([(e.subset, credit) for e, credit in zip(examples, credits, strict=True)])
    return ([("subset", s, v["accuracy"]) for s, v in got["subsets"].items()]
            + [("section", s, v) for s, v in got["sections"].items() if v is not None]
            + [("score", k, got[k]) for k in ("score", "score_with_prior_sets")])


def diagnostics(rows: list[dict]) -> list[tuple[str, str, float]]:
    """What the common tools do not report: the score-gap distribution, the calibration of σ(score gap), and
    per subset the accuracy of "always pick the longer answer" (to read beside the model's accuracy)."""
    gaps = sorted(r["score_gap"] for r in rows)
    deciles = statistics.quantiles(gaps, n=10) if len(gaps) > 1 else gaps * 9
    out = [("diagnostic", "score_gap_p10", deciles[0]), ("diagnostic", "score_gap_p50", statistics.median(gaps)),
           ("diagnostic", "score_gap_p90", deciles[-1]), ("diagnostic", "ece", expected_calibration_error(gaps))]
    longer: dict[str, list[bool]] = {}
    for r in rows:
        longer.setdefault(r["subset"], []).append(r["chosen_chars"] > r["rejected_chars"])
    return out + [("length_bias", subset, sum(v) / len(v)) for subset, v in sorted(longer.items())]
