"""The demo: the whole house on a synthetic batch, in the order a team meets it. Generate a batch (ties,
drops, edits, several annotators, three malformed lines), ingest it, train a reward model on it (the
packaged MiniLM), register the curated test split as an evaluation set, run the nightly evaluation once, and
end with what the reward would do to a policy: the tilt analysis over the test split's candidates; then the
morning report."""

from __future__ import annotations

from collections.abc import Callable

from flows.analysis import rewards_flow, tilt_flow
from flows.ingest import ingest_flow
from flows.nightly import nightly_flow
from flows.train import train_flow
from prefpipe.config import TrainConfig
from prefpipe.ingest import summary_table
from prefpipe.registry import register_split
from prefpipe.report import write_report
from prefpipe.settings import Settings
from prefpipe.synth import synthetic_batch
from prefpipe.text import LEADERBOARD_EMPTY, format_records
from prefpipe.warehouse import Warehouse


def demo(settings: Settings, annotations: int | None = None, epochs: int | None = None,
         echo: Callable[[str], None] = print) -> None:
    annotations = settings.demo_annotations if annotations is None else annotations
    epochs = settings.demo_epochs if epochs is None else epochs
    batch = synthetic_batch(settings.home / "samples" / f"synthetic-{annotations}.jsonl", annotations)
    echo(f"Generated {batch} ({annotations} annotations and 3 malformed lines)")
    echo("\n" + summary_table(ingest_flow([str(batch)], settings=settings)))
    if not epochs:
        return
    echo(f"\nTraining a reward model (all-MiniLM-L6-v2, {epochs} epochs) on the training split")
    result = train_flow(TrainConfig(epochs=epochs, lr=1e-4, max_tokens=2048), settings=settings)  # brief: a higher lr
    test = result["metrics"]["test"]
    echo(f"\n{result['model_id']}: held-out (test) accuracy {test['accuracy']:.3f} on {test['pairs']} pairs "
         f"(chance 0.5); log loss {test['log_loss']:.3f}, ECE {test['ece']:.3f}\n{result['path']}")
    with Warehouse.open(settings) as wh:
        register_split(wh, settings.home, "test", "curated-test")
    echo("\nNightly evaluation (every active model on every registered set), once:")
    echo("\n" + format_records(nightly_flow(settings)["leaderboard"], LEADERBOARD_EMPTY))
    echo(f"\nWhat {result['model_id']} would do to a policy: rewards of the test split's candidates (each "
         "annotation's responses), then the tilted policy π_ref·exp(r/β) and best-of-n")
    scored = rewards_flow([result["model_id"]], from_split="test", settings=settings)
    tilted = tilt_flow(rewards=scored["run_id"], settings=settings)
    echo("\n" + frontier_lines(tilted["frontier"]) + f"\n\nThe reward–KL frontier: {tilted['plot']}")
    echo(f"\nThe morning report (open it in a browser): {write_report(settings)}")


def frontier_lines(rows: list[dict]) -> str:
    """The frontier as a short table: each β and n, its KL, expected reward and win rate (means over prompts)."""
    return format_records([{"policy": f"tilt β={r['beta']:g}" if r["kind"] == "tilt" else f"best-of-{r['n']}",
                            "KL (nats)": f"{r['kl']:.3f}", "E[r]": f"{r['expected_reward']:.3f}",
                            "E_ref[r]": f"{r['ref_reward']:.3f}",
                            "win rate": "" if r["win_rate"] is None else f"{r['win_rate']:.3f}"} for r in rows], "")
