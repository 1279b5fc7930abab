"""The trade-off end to end on tiny models: analyse tradeoff -> lake -> SQL views -> PNG; the same seed on
another task runner draws the same samples; the toy reproduces the paper; bad input writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import cli_ok, run_cli

from prefpipe.loading import load_tokenizer
from prefpipe.synth import tiny_reward_model

pytestmark = pytest.mark.slow


@pytest.fixture
def lms(tmp_path):
    """A tiny prior and an aligned model that is a perturbed copy of it (one tokenizer)."""
    from transformers import AutoModelForCausalLM

    prior = tiny_reward_model(tmp_path / "prior", "causal-lm", seed=5, positions=256)
    model = AutoModelForCausalLM.from_pretrained(prior)
    torch.manual_seed(6)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(tmp_path / "aligned")
    load_tokenizer(prior).save_pretrained(tmp_path / "aligned")
    return tmp_path / "aligned", prior


def sql(query: str) -> list[dict]:
    return json.loads(cli_ok("sql", query, "--format", "json"))


def test_tradeoff_samples_scores_and_draws_a_picture_and_the_same_seed_repeats_itself(home, lms):
    aligned, prior = lms
    run = ("analyse", "tradeoff", "--aligned", str(aligned), "--prior", str(prior), "--from-split", "test",
           "--prompts", "3", "--samples", "2", "--adaptor", "ancestral", "--adaptor", "top-k=5", "--temperature",
           "0.5,1", "--max-new-tokens", "6", "--seed", "11")
    out = cli_ok(*run, "--model", "helpful")
    png = Path(out.splitlines()[-1])
    assert png.name == "tradeoff.png" and png.read_bytes()[:4] == b"\x89PNG" and "corpus level: ρ = " in out
    corpora = sql("SELECT setting, adaptor, adaptor_value, temperature, samples, mean_log_prior, mean_reward, "
                  "mean_tokens, corpus_spearman FROM tradeoff_corpora ORDER BY adaptor, temperature")
    assert [(r["setting"], r["samples"]) for r in corpora] == [("ancestral τ=0.5", 6), ("ancestral τ=1", 6),
                                                               ("top-k=5 τ=0.5", 6), ("top-k=5 τ=1", 6)]
    assert corpora[2]["adaptor_value"] == 5 and corpora[0]["adaptor_value"] is None
    assert all(r["mean_log_prior"] < 0 and 1 <= r["mean_tokens"] <= 6 for r in corpora)
    assert len({r["corpus_spearman"] for r in corpora}) == 1
    samples = sql("SELECT setting, prompt_id, prompt, sample, response, token_ids, tokens, log_prior, log_aligned, "
                  "reward, reward_source, seed FROM tradeoff_samples ORDER BY setting, prompt_id, sample")
    assert len(samples) == 24 and {(r["reward_source"], r["seed"]) for r in samples} == {("model:helpful", 11)}
    assert all(r["tokens"] == len(r["token_ids"]) <= 6 and r["log_prior"] < 0 for r in samples)
    from prefpipe.scoring import score_items, scorer

    rm = home.home / ".." / "helpful"
    expected = score_items([(json.loads(r["prompt"]), r["response"]) for r in samples], scorer(rm, None))
    assert [r["reward"] for r in samples] == pytest.approx(expected, abs=1e-5)  # the reward model's, of the text
    for setting in ("ancestral τ=1", "top-k=5 τ=1"):  # each corpus's means are its samples'
        mine = [r for r in samples if r["setting"] == setting]
        row = next(r for r in corpora if r["setting"] == setting)
        assert row["mean_reward"] == pytest.approx(sum(r["reward"] for r in mine) / len(mine), abs=1e-9)

    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
        cli_ok(*run, "--implicit", "--task-runner", "dask", "--dask-address", cluster.scheduler_address)  # same seed
    same = sql("SELECT count(*) AS n, count(*) FILTER (WHERE a.token_ids = b.token_ids) AS equal, "
               "max(abs(b.reward - (b.log_aligned - b.log_prior))) AS implicit FROM tradeoff_samples a "
               "JOIN tradeoff_samples b USING (setting, prompt_id, sample) WHERE a.reward_source = 'model:helpful' "
               "AND b.reward_source = 'implicit'")[0]
    assert same["n"] == same["equal"] == 24 and same["implicit"] == pytest.approx(0, abs=1e-9)
    assert len(list(home.analysis.glob("analysis=tradeoff/run_date=*/run_id=*/tradeoff.png"))) == 2


def test_the_toy_reproduces_the_papers_figures(home):
    out = cli_ok("analyse", "tradeoff", "--toy")
    figures = {r["figure"]: r for r in sql("SELECT DISTINCT 'typical' AS figure, typical AS ours, paper_typical AS "
                                           "paper FROM tradeoff_corpora WHERE kind = 'toy'")}
    assert figures["typical"]["ours"] == figures["typical"]["paper"] == 213  # the paper's draws, exactly
    row = sql("SELECT * FROM tradeoff_corpora WHERE kind = 'toy' LIMIT 1")[0]
    for name in ("entropy_aligned", "entropy_prior", "string_spearman", "string_pearson", "corpus_spearman",
                 "corpus_pearson"):
        assert round(row[name], 2) == row[f"paper_{name}"], name
    assert sql("SELECT count(*) AS n FROM tradeoff_samples WHERE kind = 'toy'")[0]["n"] == 1000
    assert "typical" in out and Path(out.splitlines()[-1]).read_bytes()[:4] == b"\x89PNG"
    # the morning report shows it on its analyses page (no results yet: only that)
    index = Path(cli_ok("report").split(": ", 1)[1].strip())
    analyses = (index.parent / "analyses.html").read_text()
    assert "No results yet" in index.read_text() and '<img src="figures/tradeoff-tradeoff.png"' in analyses
    corpora = sql("SELECT count(*) AS n FROM tradeoff_corpora")[0]["n"]
    assert corpora > 50 and f"50 of the run's {corpora} rows" in analyses and analyses.count("<tr>") == 51


def test_bad_tradeoff_input_fails_in_one_line_and_writes_nothing(home, lms, tmp_path):
    aligned, prior = lms
    other = tmp_path / "other-tokenizer"
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(prior).save_pretrained(other)
    tokenizer = load_tokenizer(prior)
    tokenizer.add_tokens(["extra"])
    tokenizer.save_pretrained(other)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "question 1 about chess ?"}\n{"prompt_id": "x"}\n')
    models = ("--aligned", str(aligned), "--prior", str(prior))
    cases = [((*models[:2], "--prior", str(other), "--implicit", "--from-split", "test"),
              f"{other}: --prior: must share the tokenizer of {aligned} (--aligned)"),
             (("--aligned", str(home.home / ".." / "helpful"), "--prior", str(prior), "--implicit", "--evalset",
               "small"), "--aligned: the aligned model and the prior are causal LMs; this folder holds "
                         "BertForSequenceClassification"),
             ((*models, "--implicit", "--evalset", "small", "--temperature", "1,0"),
              "--temperature: every temperature must be a finite number of at least 0.0001, got 0"),
             ((*models, "--implicit", "--evalset", "small", "--adaptor", "nucleus=1.2"),
              "--adaptor: nucleus's p must be in (0, 1], got 1.2"),
             ((*models, "--implicit", "--evalset", "small", "--adaptor", "beam=4"),
              "--adaptor: must be one of ancestral, top-k, nucleus, typical, eta"),
             ((*models, "--implicit", "--evalset", "small", "--samples", "0"),
              "--samples: must be a whole number of at least 1, got 0"),
             ((*models, "--model", "nobody", "--evalset", "small"), "--model: no such model in the registry: nobody"),
             ((*models, "--model", "helpful", "--implicit", "--evalset", "small"), "give --model RM_ID"),
             ((*models, "--implicit"), "give a prompts file, --evalset NAME or --from-split SPLIT (one of them)"),
             ((*models, "--implicit", "--evalset", "nothing"), "nothing: --evalset: no such evaluation set"),
             ((*models, "--implicit", str(prompts)), f"{prompts}:2: prompt: missing"),
             ((*models, "--implicit", "--evalset", "small", "--max-new-tokens", "300"),
              "--max-new-tokens: leaves no room for a prompt: the models read at most 256 tokens"),
             (("--toy", "--aligned", str(aligned)), "--toy takes no models and no prompts")]
    for args, reason in cases:
        done = run_cli("analyse", "tradeoff", *args)
        assert done.returncode == 1 and reason in done.stderr and len(done.stderr.splitlines()) == 1, (args, done.stderr)
    assert not home.analysis.exists()
