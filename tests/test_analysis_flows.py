"""The analyses end to end on tiny models: rewards score -> analyse tilt -> lake -> SQL view -> PNG; a
combination in the nightly beside its two models; one-line errors that write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import cli_ok, run_cli, write_batch

from prefpipe.synth import tiny_reward_model
from prefpipe.warehouse import Warehouse

pytestmark = pytest.mark.slow


def test_rewards_then_tilt_then_sql_and_a_picture(home, tmp_path):
    lm = tiny_reward_model(tmp_path / "lm", "causal-lm", seed=3, positions=2048)
    out = cli_ok("rewards", "score", "--from-split", "test", "--model", "helpful", "--model", "harmless",
                 "--reference-lm", str(lm))
    with Warehouse.open(home) as wh:
        [(expected,)] = wh.con.execute(
            "SELECT count(DISTINCT (a.prompt_id, r.text)) FROM annotations a JOIN responses r USING (annotation_seq) "
            "WHERE a.split = 'test' AND NOT r.dropped AND (r.rank IS NOT NULL OR r.edited_from IS NOT NULL)").fetchall()
    assert f"{expected} candidates" in out and f"π_ref lm:{lm}" in out
    out = cli_ok("analyse", "tilt", "--model", "helpful", "--beta", "0.1,1", "--n", "1,4")
    png = next(line for line in out.splitlines() if line.endswith("frontier.png"))
    assert Path(png).read_bytes()[:4] == b"\x89PNG"
    frontier = json.loads(cli_ok("sql", "SELECT kind, beta, n, kl, expected_reward, win_rate, ref_source, prompts "
                                 "FROM tilt_frontier ORDER BY kind, beta, n", "--format", "json"))
    assert [(r["kind"], r["beta"], r["n"]) for r in frontier] == [("best_of_n", None, 1), ("best_of_n", None, 4),
                                                                  ("tilt", 0.1, None), ("tilt", 1.0, None)]
    assert frontier[0]["kl"] == pytest.approx(0, abs=1e-9) and frontier[0]["win_rate"] == pytest.approx(0.5)
    assert {r["ref_source"] for r in frontier} == {f"lm:{lm}"}
    rows = json.loads(cli_ok("sql", "SELECT count(*) AS n, count(DISTINCT prompt_id) AS prompts FROM tilt_prompts",
                             "--format", "json"))[0]
    assert rows["n"] == 4 * rows["prompts"] == 4 * frontier[0]["prompts"]
    joined = json.loads(cli_ok("sql", "SELECT count(*) AS n FROM reward_candidates c JOIN rewards r "
                               "USING (run_id, prompt_id, response_id)", "--format", "json"))[0]
    assert joined["n"] == 2 * expected  # two models
    cli_ok("combos", "add", "both", "--model", "helpful", "--model", "harmless", "--weight", "1", "--weight", "0.5")
    out = cli_ok("analyse", "tilt", "--combo", "both")
    folder = next(home.analysis.glob("analysis=tilt/run_date=*/run_id=*/references.parquet")).parent
    references = pq.read_table(folder / "references.parquet").to_pylist()
    assert {r["model_id"] for r in references} == {"helpful", "harmless"} and "combination both" in out


def test_a_combination_is_scored_in_the_nightly_beside_its_models(home):
    from flows.nightly import nightly_flow

    lm = tiny_reward_model(home.home / "reference-lm", "causal-lm", seed=5, positions=2048)
    cli_ok("combos", "add", "soft-and", "--model", "helpful", "--model", "harmless", "--min-references", "2")
    out = cli_ok("combos", "add", "global-and", "--model", "helpful", "--model", "harmless", "--weight", "2",
                 "--weight", "1")
    assert out.startswith("prefpipe: warning: --transform lsc with weights other than 1")
    cli_ok("combos", "add", "sampled-and", "--model", "helpful", "--model", "harmless", "--reference-lm", str(lm),
           "--samples", "2", "--min-references", "2", "--quantile", "0.85", "--quantile", "0.5")
    listing = cli_ok("combos")
    assert "fewer than 4: the global quantile" in listing and f"2 samples of {lm} (seed 0)" in listing
    board = nightly_flow(home)["leaderboard"]
    assert sorted(r["model_id"] for r in board) == ["global-and", "harmless", "helpful", "sampled-and", "soft-and"]
    sources = {}
    for combo in ("soft-and", "global-and", "sampled-and"):
        [folder] = home.results.glob(f"evalset=small/model={combo}/run_date=*/run_id=*")
        references = pq.read_table(folder / "references.parquet").to_pylist()
        assert {r["model_id"] for r in references} == {"helpful", "harmless"}
        assert all(r["references"] == 2 for r in references)  # 2 completions each, or 2 samples each
        sources[combo] = {r["r_ref_source"] for r in references}
    # each example has 2 completions: enough for a minimum of 2, too few for the default 4 (the global quantile,
    # labelled); the reference LM's samples give every prompt references of its own
    assert sources == {"soft-and": {"candidates"}, "global-and": {"global"}, "sampled-and": {"samples"}}
    page = (home.report / "models" / "global-and.html").read_text()  # the morning report knows it is a combination
    assert "A combination of reward models" in page and "<dt>models</dt><dd>helpful, harmless</dd>" in page
    assert "fewer than 4: the global quantile" in page


def test_bad_analysis_input_fails_in_one_line_and_writes_nothing(home, tmp_path):
    bad = write_batch(tmp_path / "candidates.jsonl", {"prompt": "q", "response": "a"}, {"response": "b"})
    lm = tiny_reward_model(tmp_path / "lm", "causal-lm", seed=3)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(lm)
    tokenizer.add_tokens([f"extra{i}" for i in range(10)])
    tokenizer.save_pretrained(tmp_path / "lm")  # a folder whose tokenizer is not the model's
    cases = [(("rewards", "score", str(bad), "--model", "helpful"), f"{bad}:2: prompt: missing"),
             (("rewards", "score", "--from-split", "test", "--model", "nobody"),
              "--model: no such model in the registry: nobody"),
             (("rewards", "score", "--from-split", "test", "--model", "helpful", "--reference-lm", str(lm)),
              f"{lm}: --reference-lm: its tokenizer does not fit the model"),
             (("analyse", "tilt", "--combo", "nobody"), "no rewards yet"),
             (("combos", "add", "x", "--model", "helpful", "--quantile", "1.5"), "--quantile: must be between 0 and 1"),
             (("combos", "add", "x", "--model", "nobody"), "x: --model: no such model in the registry: nobody"),
             (("combos", "add", "x", "--model", "helpful", "--weight", "nan"), "--weight: must be finite numbers"),
             (("combos", "add", "x", "--model", "helpful", "--weight", "inf"), "--weight: must be finite numbers"),
             (("combos", "add", "x", "--model", "helpful", "--model", "harmless", "--weight", "0", "--weight", "0"),
              "--weight: must be finite numbers, not all 0, got 0.0, 0.0"),
             (("combos", "add", "x", "--model", "helpful", "--too-few", "guess"), "--too-few: must be one of global"),
             (("combos", "add", "x", "--model", "helpful", "--references", "samples"),
              "--reference-lm: --references samples and --reference-lm go together"),
             (("models", "normalise", "helpful", "--to", "split:test", "--name", "harmless"),
              "harmless: --name: already names a model or a combination")]
    for args, reason in cases:
        done = run_cli(*args)
        assert done.returncode == 1 and reason in done.stderr and len(done.stderr.splitlines()) == 1, (args, done.stderr)
    assert not home.rewards.exists() and not home.analysis.exists() and not (home.models / "harmless").exists()
    assert "(no combinations yet" in cli_ok("combos")
    cli_ok("rewards", "score", "--from-split", "test", "--model", "helpful")
    for args, reason in [(("analyse", "tilt", "--combo", "nobody"), "nobody: --combo: no such combination"),
                         (("analyse", "tilt", "--beta", "0.1,0"), "--beta: every β must be a finite number of at "
                                                                  "least 1e-09 (r/β must stay finite), got 0.1, 0"),
                         (("analyse", "tilt", "--beta", "1e-320"), "--beta: every β must be a finite number"),
                         (("analyse", "tilt", "--beta", "inf"), "--beta: every β must be a finite number"),
                         (("analyse", "tilt", "--n", "0"), "--n: every n must be a whole number from 1 to 1e+12"),
                         (("analyse", "tilt", "--n", "99999999999999999999"), "--n: every n must be a whole number"),
                         (("analyse", "tilt", "--model", "harmless"), "harmless: --model: the rewards run")]:
        done = run_cli(*args)
        assert done.returncode == 1 and reason in done.stderr and len(done.stderr.splitlines()) == 1, (args, done.stderr)
    assert not home.analysis.exists()
