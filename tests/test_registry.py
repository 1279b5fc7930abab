"""Evaluation sets and models in the registry: versions by content, curated sets, activation."""

from __future__ import annotations

import json

import pytest
from helpers import LLMBAR, run_cli

from prefpipe.errors import InputError
from prefpipe.evalsets import read_evalset
from prefpipe.export import export_pairs
from prefpipe.registry import active_models, add_model, latest_evalsets, register_evalset, set_active
from prefpipe.synth import synthetic_batch, tiny_reward_model


def test_a_changed_file_is_a_new_version_and_the_old_one_is_kept(wh, settings, tmp_path):
    first, new = register_evalset(wh, settings.home, LLMBAR, "llmbar")
    assert new and (first["examples"], first["format"], len(first["subsets"])) == (419, "rewardbench", 5)
    again, new = register_evalset(wh, settings.home, LLMBAR, "llmbar")
    assert not new and again["version"] == first["version"]

    changed = tmp_path / "llmbar.jsonl"
    lines = LLMBAR.read_text().splitlines()[:100]
    changed.write_text("\n".join(lines) + "\n")
    second, new = register_evalset(wh, settings.home, changed, "llmbar")
    assert new and second["version"] != first["version"] and second["examples"] == 100
    assert [r["version"] for r in latest_evalsets(wh)] == [second["version"]]  # the nightly takes the latest
    assert len(read_evalset(first["path"])) == 419  # the first version's copy is untouched
    assert wh.con.execute("SELECT count(*) FROM evalsets").fetchone()[0] == 2
    wh.close()
    env = {"PREFPIPE_HOME": str(settings.home), "PREFPIPE_WAREHOUSE": str(settings.warehouse)}
    for bad in ("a/b", "../../x", "a\nb", ".hidden", "", "x" * 101, "évalset"):  # checked where a name enters
        done = run_cli("evalset", "add", str(LLMBAR), "--name", bad, env=env)
        assert done.returncode == 1 and "--name: must be one word of letters, digits" in done.stderr
    assert sorted(p.name for p in (settings.home / "evalsets").iterdir()) == ["llmbar"]  # nothing else written


def test_curated_pairs_of_a_split_become_an_evaluation_set(wh, settings, ingest, tmp_path):
    batch = synthetic_batch(tmp_path / "b.jsonl", 150, bad_lines=0)
    ingest(*[json.loads(line) for line in batch.read_text().splitlines()])
    out = tmp_path / "curated.jsonl"
    pairs = export_pairs(wh, out, "test", layout="rewardbench")
    assert pairs == wh.con.execute("SELECT count(*) FROM pairs WHERE split = 'test'").fetchone()[0] > 0
    row, _ = register_evalset(wh, settings.home, out, "curated-test", source="warehouse:test")
    assert (row["examples"], row["subsets"], row["source"]) == (pairs, ["curated-test"], "warehouse:test")
    first = read_evalset(row["path"])[0]
    chosen, rejected = wh.con.execute("SELECT chosen_text, rejected_text FROM pairs WHERE annotation_id || '/' || "
                                      "chosen_id || '>' || rejected_id = ?", [first.example_id]).fetchone()
    assert (first.chosen, first.rejected) == ((chosen,), (rejected,))


def test_models_trained_elsewhere_are_added_and_deactivated(wh, tmp_path):
    folder = tiny_reward_model(tmp_path / "elsewhere")
    add_model(wh, folder, "outside")
    assert active_models(wh) == [("outside", str(folder.resolve()), None, None)]
    set_active(wh, "outside", False)
    assert active_models(wh) == []
    with pytest.raises(InputError, match="no such model in the registry"):
        set_active(wh, "nobody", False)
    with pytest.raises(InputError, match="not a model folder"):
        add_model(wh, tmp_path, "empty")
    other = tiny_reward_model(tmp_path / "other")
    with pytest.raises(InputError, match=r"outside: --name: already registered \(the model at .*elsewhere\); "
                                         "choose another --name, or pass --replace"):
        add_model(wh, other, "outside")
    add_model(wh, other, "outside", replace=True)
    assert wh.con.execute("SELECT path, active, kind FROM models").fetchall() == [(str(other.resolve()), True,
                                                                                    "classifier")]


def test_models_registered_before_0_9_get_their_kind(wh, settings, tmp_path):
    from prefpipe.warehouse import Warehouse

    add_model(wh, tiny_reward_model(tmp_path / "rm"), "rm")
    wh.con.execute("INSERT INTO models (model_id, path, base, reference) VALUES ('policy', 'p', 'b', 'ref')")
    wh.con.execute("UPDATE models SET kind = NULL")  # as 0.8 left them
    wh.close()
    with Warehouse.open(settings) as again:
        assert again.con.execute("SELECT model_id, kind FROM models ORDER BY 1").fetchall() == [
            ("policy", "dpo"), ("rm", "classifier")]


def test_a_combination_registered_before_0_6_keeps_its_one_quantile_for_each_model(wh):
    from prefpipe.registry import combos

    wh.con.execute('INSERT INTO combos (name, models, weights, transform, "references", quantile, method, '
                   "min_references) VALUES ('old', ['a', 'b'], [1.0, 2.0], 'lsc', 'prompt', 0.7, 'empirical', 4)")
    [old] = combos(wh)
    assert (old.quantiles, old.too_few, old.references, old.reference_lm) == ((0.7, 0.7), "global", "prompt", None)
    assert old.definition() == ("1·u(a) + 2·u(b); r_ref per prompt: the 0.7, 0.7 quantile of its candidates (π_ref-"
                                "weighted when known); fewer than 4: the global quantile")
