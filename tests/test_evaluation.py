"""Evaluation (prefpipe.evaluation): a model on a set becomes one run of the lake with RewardBench's summary and
the diagnostics; a unit is written once, whoever runs it; the code version covers whatever makes a score."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import duckdb
import pyarrow.parquet as pq
import pytest
from helpers import LLMBAR

from prefpipe.evaluation import evaluate_model
from prefpipe.versions import code_version, scoring_sources


def test_a_run_writes_one_partition_that_sql_reads_and_a_second_is_skipped(tmp_path, model_dir):
    results = tmp_path / "results"
    day = date(2026, 11, 28)
    folder = evaluate_model(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="r1", run_date=day)
    assert folder == results / "evalset=llmbar" / "model=tiny" / "run_date=2026-11-28" / "run_id=r1"
    assert sorted(p.name for p in folder.iterdir()) == ["_manifest.json", "scores.parquet", "summary.parquet"]
    manifest = json.loads((folder / "_manifest.json").read_text())  # written last: every file, its size and hash
    assert manifest["partition"] == "evalset=llmbar/model=tiny/run_date=2026-11-28/run_id=r1"
    assert {name: (f["bytes"], f["sha256"]) for name, f in manifest["files"].items()} == {
        p.name: (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for p in folder.glob("*.parquet")}
    assert sorted(p.name for p in results.iterdir()) == [".claims", ".locks", "evalset=llmbar"]  # no staging left behind

    con = duckdb.connect()
    scores = con.sql(f"SELECT * FROM read_parquet('{results}/*/*/*/*/scores.parquet', hive_partitioning = true)")
    rows = {r["example_id"]: r for r in scores.to_arrow_table().to_pylist()}
    raw = {str(json.loads(line)["id"]): json.loads(line) for line in LLMBAR.read_text().splitlines()}
    assert rows.keys() == raw.keys()  # every example joins back to the set by id
    first = rows["0"]
    assert (first["evalset"], first["model"], str(first["run_date"]), first["run_id"]) == ("llmbar", "tiny",
                                                                                         "2026-11-28", "r1")
    assert first["credit"] == float(first["chosen_scores"][0] > first["rejected_scores"][0])

    # the summary: per-subset accuracy is the mean credit; Chat Hard weighs subsets by RewardBench's counts
    summary = {(r["level"], r["name"]): r for r in pq.read_table(folder / "summary.parquet").to_pylist()}
    counts = {"llmbar-natural": 100, "llmbar-adver-neighbor": 134, "llmbar-adver-GPTInst": 92,
              "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46}
    accuracy = {s: sum(r["credit"] for r in rows.values() if r["subset"] == s) / n for s, n in counts.items()}
    for subset, value in accuracy.items():
        assert summary["subset", subset]["value"] == pytest.approx(value)
        assert summary["subset", subset]["examples"] == counts[subset]  # the real set has RewardBench's counts
    chat_hard = sum(accuracy[s] * counts[s] for s in counts) / sum(counts.values())
    assert summary["section", "Chat Hard"]["value"] == pytest.approx(chat_hard)
    assert summary["score", "score"]["value"] is None  # Chat, Safety and Reasoning are not in this set

    # diagnostics: the score-gap distribution, and "always pick the longer answer" per subset, from the raw file
    gaps = sorted(r["score_gap"] for r in rows.values())
    assert summary["diagnostic", "score_gap_p50"]["value"] == pytest.approx(gaps[209])  # 419 gaps: the 210th
    assert summary["diagnostic", "score_gap_p10"]["value"] <= summary["diagnostic", "score_gap_p90"]["value"]
    for subset, n in counts.items():
        longer = sum(len(r["chosen"]) > len(r["rejected"]) for r in raw.values() if r["subset"] == subset) / n
        assert summary["length_bias", subset]["value"] == pytest.approx(longer)

    assert evaluate_model(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="r2", run_date=day) is None
    again = evaluate_model(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="r3", run_date=day, force=True)
    assert again.name == "run_id=r3" and folder.exists()  # forced: a new run folder; history is kept


@pytest.mark.parametrize("force", [False, True])
def test_two_runs_at_once_write_each_unit_once(tmp_path, model_dir, force):
    import time
    from concurrent.futures import ThreadPoolExecutor

    results, started = tmp_path / "results", time.time()  # two nightly runs that began together

    def run(run_id: str):
        return evaluate_model(model_dir, "tiny", LLMBAR, "llmbar", results, run_id=run_id, force=force, started=started)

    with ThreadPoolExecutor(2) as pool:
        written = [f for f in pool.map(run, ["first", "second"]) if f is not None]
    assert len(written) == 1 and len(list(results.rglob("summary.parquet"))) == 1  # the other waited, then skipped
    if force:  # a forced run that begins later scores again
        assert evaluate_model(model_dir, "tiny", LLMBAR, "llmbar", results, run_id="third", force=True) is not None


def test_the_code_version_covers_every_module_that_makes_a_score():
    names = {p.name for p in scoring_sources()}
    assert {"evaluation.py", "evalsets.py", "inputs.py", "model.py", "encoder.py", "dpo.py", "rewardbench.py",
            "rewardbench_sections.json"} <= names  # found through the imports, none declared by hand
    assert not names & {"cli.py", "train.py", "ingest.py", "formats.py"}  # training and ingest do not score
    assert code_version().split("+")[1] == code_version().split("+")[1] and len(code_version().split("+")[1]) == 12
