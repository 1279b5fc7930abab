"""How good a reward model is on held-out pairs: accuracy, log loss and calibration of σ(Δ).

Δ = r(x, chosen) − r(x, rejected). Accuracy is strict (Δ > 0; a tie counts as wrong), as RewardBench
counts it. Log loss is the mean of −log σ(Δ). Calibration: each pair is read both ways, σ(Δ) for
"chosen wins" (true) and σ(−Δ) for "rejected wins" (false), so the probabilities fill [0, 1]; the
expected calibration error is Σ_bins (n_bin / n) · |share true − mean probability| over 10 equal bins.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from prefpipe.calibration import calibration_bins, expected_calibration_error
from prefpipe.config import TrainConfig
from prefpipe.files import follow_umask
from prefpipe.inputs import builder_for, encode_annotations
from prefpipe.loading import load_reward_model, load_tokenizer
from prefpipe.model import score
from prefpipe.settings import HELD_OUT
from prefpipe.training_data import SNAPSHOT, read_snapshot

METRICS = "metrics.json"
PLOT = "calibration.png"


def pair_metrics(deltas: list[float]) -> dict:
    if not deltas:
        return {"pairs": 0, "accuracy": None, "log_loss": None, "ece": None}
    d = torch.tensor(deltas, dtype=torch.float64)
    return {"pairs": len(deltas), "accuracy": (d > 0).double().mean().item(),
            "log_loss": F.softplus(-d).mean().item(), "ece": expected_calibration_error(deltas)}


def held_out_metrics(run_dir: Path | str, splits: tuple[str, ...] = HELD_OUT,
                   device: str = "auto") -> dict:
    """Score the held-out splits of RUN_DIR's snapshot with its trained model; write metrics.json and
    calibration.png; record the reward mean and std on the validation split in the model's config."""
    run_dir = Path(run_dir)
    config = TrainConfig.load(run_dir)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    tokenizer, model = load_tokenizer(run_dir), load_reward_model(run_dir).to(device)
    builder = builder_for(tokenizer, model, config.max_length)
    annotations = read_snapshot(run_dir / SNAPSHOT)
    result, deltas_by_split, rewards = {}, {}, {}
    for split in splits:
        encoded, identical = encode_annotations(builder, [u for u in annotations if u.split == split])
        rewards[split] = scores = score_annotations(model, encoded, tokenizer.pad_token_id, device)
        deltas, groups = [], defaultdict(list)
        for annotation, delta in pair_deltas(encoded, scores):
            deltas.append(delta)
            groups["by_source", annotation.source].append(delta)
            groups["by_annotator", annotation.annotator_id].append(delta)
        deltas_by_split[split] = deltas
        result[split] = pair_metrics(deltas) | {"identical_after_truncation": identical} | {
            kind: {key: pair_metrics(v) for (k, key), v in sorted(groups.items()) if k == kind}
            for kind in ("by_source", "by_annotator")} | {"calibration": calibration_bins(deltas)}
    stats_split = "validation" if rewards.get("validation") else "train"
    if stats_split == "train":  # no validation pairs: the statistics come from the training inputs
        encoded, _ = encode_annotations(builder, [u for u in annotations if u.split == "train"])
        rewards["train"] = score_annotations(model, encoded, tokenizer.pad_token_id, device)
    values = rewards[stats_split] or [0.0]
    result["reward_mean"], result["reward_std"] = statistics.fmean(values), statistics.pstdev(values)
    result["reward_stats_split"] = stats_split
    model.config.prefpipe = dict(getattr(model.config, "prefpipe", {}) or {}) | {
        "reward_mean": result["reward_mean"], "reward_std": result["reward_std"], "reward_stats_split": stats_split}
    model.config.save_pretrained(run_dir)
    (run_dir / METRICS).write_text(json.dumps(result, indent=2) + "\n")
    plot_calibration(deltas_by_split, run_dir / PLOT)
    follow_umask(run_dir)
    return result


def pair_deltas(encoded: list, scores: list[float]):
    """(annotation, r_chosen − r_rejected) for every pair, with `scores` as `score_annotations` returns them."""
    offset = 0
    for e in encoded:
        for c, r, _, _ in e.pairs:
            yield e.annotation, scores[offset + c] - scores[offset + r]
        offset += len(e.inputs)


def score_annotations(model, encoded: list, pad_id: int, device: str) -> list[float]:
    """The reward of every input of the annotations, in order (pairs index into them with each annotation's offset)."""
    return score(model, [s for e in encoded for s in e.inputs], pad_id, device=device)


def plot_calibration(deltas_by_split: dict[str, list[float]], path: Path) -> None:
    """A reliability diagram (PNG): share of true outcomes against predicted probability, per split."""
    figure = Figure(figsize=(4.5, 4.5), dpi=100)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for split, deltas in deltas_by_split.items():
        table = [b for b in calibration_bins(deltas) if b["count"]]
        if table:
            axes.plot([b["probability"] for b in table], [b["true"] for b in table], marker="o",
                      label=f"{split} (ECE {expected_calibration_error(deltas):.3f}, {len(deltas)} pairs)")
    axes.set(xlabel="predicted P(first wins) = σ(Δ)", ylabel="observed share", xlim=(0, 1), ylim=(0, 1),
             title="Reward model calibration")
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp")
    figure.savefig(temporary, format="png")
    temporary.replace(path)
