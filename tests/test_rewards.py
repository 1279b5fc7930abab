"""Candidates and their rewards: reading files, batch-independent scores, π_ref, combinations on a run."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest
from helpers import run_cli, write_batch

from prefpipe.candidates import read_candidates, stable_id
from prefpipe.config import Combination
from prefpipe.errors import InputError
from prefpipe.loading import load_reward_model, load_tokenizer
from prefpipe.rewards import combination_rewards, model_rewards, read_rewards, with_reference, write_rewards
from prefpipe.scoring import reward_scorer, score_items
from prefpipe.synth import tiny_reward_model
from prefpipe.transforms import lsc


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {name: tiny_reward_model(root / name, seed=seed) for name, seed in (("helpful", 1), ("harmless", 2))}


def candidates_file(tmp_path, rows=None):
    rows = rows or [{"prompt": f"question {p} about python ?", "response": f"answer {p} {r} clear helpful" * (r + 1),
                     "reference": r == 0} for p in range(4) for r in range(5)]
    return write_batch(tmp_path / "candidates.jsonl", *rows)


def test_a_candidates_file_reads_with_ids_and_fails_naming_file_line_and_field(tmp_path):
    found = read_candidates(candidates_file(tmp_path))
    assert len(found) == 20 and len({c.prompt_id for c in found}) == 4
    assert found[0].prompt_id == stable_id("prompt", "question 0 about python ?") and found[0].reference
    for row, field, reason in [({"response": "x"}, "prompt", "missing"), ({"prompt": "q"}, "response", "missing"),
                               ({"prompt": "q", "response": 3}, "response", "must be a string"),
                               ({"prompt": "q", "response": "r", "ref_logprob": 0.5}, "ref_logprob", "at most 0"),
                               ({"prompt": "q", "response": "r", "reference": "yes"}, "reference", "true or false"),
                               ({"prompt": [], "response": "r"}, "prompt", "non-empty string or a list")]:
        path = write_batch(tmp_path / "bad.jsonl", {"prompt": "ok", "response": "fine"}, row)
        with pytest.raises(InputError, match=rf"bad.jsonl:2: {field}: .*{reason}"):
            read_candidates(path)
    twice = write_batch(tmp_path / "twice.jsonl", {"prompt": "q", "response": "r"}, {"prompt": "q", "response": "r"})
    with pytest.raises(InputError, match=r"twice.jsonl:2: response_id: prompt .* already has a response .* \(line 1\)"):
        read_candidates(twice)
    conflicts = [  # rows that would merge two things silently
        ([{"prompt_id": "p", "prompt": "one", "response": "a"}, {"prompt_id": "p", "prompt": "two", "response": "b"}],
         "prompt: prompt_id 'p' has another prompt on line 1"),
        ([{"prompt_id": 1, "prompt": "one", "response": "a"}, {"prompt_id": "1", "prompt": "two", "response": "b"}],
         "prompt: prompt_id '1' has another prompt on line 1"),
        ([{"prompt": "q", "response": "a", "ref_logprob": -3.0}, {"prompt": "q", "response": "b"}],
         "ref_logprob: prompt_id 'prompt-.*': ref_logprob on some of its rows only"),
        ([{"prompt": "q", "response": "a"}, {"prompt": "q", "response": ""}], "response: must not be empty"),
        (['{"prompt": "q", "response": "a"}', '{"prompt": "q", "response": "b", "response": "c"}'],
         "response: the key appears twice"),
    ]
    for rows, reason in conflicts:
        path = write_batch(tmp_path / "conflict.jsonl", *rows)
        with pytest.raises(InputError, match=rf"conflict.jsonl:2: {reason}"):
            read_candidates(path)
    with pytest.raises(InputError, match=rf"{tmp_path}: is a folder, not a file"):
        read_candidates(tmp_path)


def test_rewards_do_not_depend_on_their_batch_and_a_run_reads_back(tmp_path, models):
    found = read_candidates(candidates_file(tmp_path))
    items = [(c.prompt, c.response) for c in found]
    model, tokenizer = load_reward_model(models["helpful"]), load_tokenizer(models["helpful"])
    together = score_items(items, reward_scorer(model, tokenizer, max_tokens=4096))
    alone = score_items(items, reward_scorer(model, tokenizer, max_tokens=1))  # each text in its own batch
    assert np.allclose(together, alone, atol=1e-4)
    table = with_reference(found)
    assert set(table["ref_source"].to_pylist()) == {"uniform"}
    per_model = [model_rewards(found, name, folder) for name, folder in models.items()]
    import pyarrow as pa

    folder = write_rewards(tmp_path / "rewards", "r1", date(2026, 11, 29), table, pa.concat_tables(per_model), "file")
    run = read_rewards(tmp_path / "rewards")
    assert run.folder == folder and sorted(run.rewards) == ["harmless", "helpful"]
    assert np.allclose(run.rewards["helpful"], together)
    assert run.log_ref() == (None, "uniform")
    combo = Combination("both", ("helpful", "harmless"), references="candidates", min_references=1)
    score, references = combination_rewards(combo, run)
    refs = {(r["prompt_id"], r["model_id"]): r["r_ref"] for r in references.to_pylist()}
    expected = sum(lsc(run.rewards[m], [refs[p, m] for p in run.prompt_ids()]) for m in combo.models)
    assert np.allclose(score, expected)  # Σ log σ(r − r_ref), r_ref from the one marked reference of each prompt
    first = np.flatnonzero(np.asarray(run.candidates["reference"].to_pylist()))[0]
    assert refs[run.prompt_ids()[first], "helpful"] == pytest.approx(run.rewards["helpful"][first])
    with pytest.raises(InputError, match=r"has no rewards of missing"):
        combination_rewards(Combination("x", ("missing",)), run)
    later = write_rewards(tmp_path / "rewards", "a0", date(2026, 11, 29), table, pa.concat_tables(per_model[:1]),
                          "file")  # the same day, written later, with an id that sorts first
    assert read_rewards(tmp_path / "rewards").folder == later
    assert run_cli("rewards", env={"PREFPIPE_REWARDS": str(tmp_path / "rewards")}).stdout.split("\n")[-2].startswith("a0")


def test_file_log_probabilities_are_pi_ref_where_a_prompt_has_them_all(tmp_path, models):
    rows = [{"prompt": "a ?", "response": f"r{i}", "ref_logprob": -float(i + 1)} for i in range(3)]
    rows += [{"prompt": "b ?", "response": "s0"}, {"prompt": "b ?", "response": "s1"}]  # (some of b's: refused)
    found = read_candidates(candidates_file(tmp_path, rows))
    import pyarrow as pa

    write_rewards(tmp_path / "rewards", "r2", date(2026, 11, 29), with_reference(found),
                  pa.concat_tables([model_rewards(found, "helpful", models["helpful"])]), "file")
    log_ref, source = read_rewards(tmp_path / "rewards").log_ref()
    assert source == "mixed" and log_ref.tolist() == [-1.0, -2.0, -3.0, 0.0, 0.0]  # prompt b: uniform
    assert json.loads(read_rewards(tmp_path / "rewards").candidates["prompt"][0].as_py()) == "a ?"
