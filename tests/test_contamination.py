"""Contamination against registered evaluation sets (prefpipe.contamination): the planted matches and nothing
else, in either order; what training, export and the nightly leaderboard do with them."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from helpers import annotation, run_cli, sql_macros, text
from hypothesis import given, settings
from hypothesis import strategies as st

from prefpipe.contamination import exclude_matches, made_by
from prefpipe.dedup import prompt_key
from prefpipe.errors import InputError
from prefpipe.ingest import ingest_file
from prefpipe.migrate import due, migrate
from prefpipe.registry import register_evalset
from prefpipe.sql import run_script
from prefpipe.warehouse import Warehouse

PROMPTS = [text(300 + i) for i in range(8)]
COPIED = text(600, 30)  # an evaluation set's chosen answer, copied into a warehouse response
PLANTED = {("e-exact", "exact", prompt_key(PROMPTS[0])), ("e-near", "near", prompt_key(PROMPTS[1])),
           ("e-copy", "ngram13", "p-7/ann-1:a")}


def warehouse_batch(path, ids=None):
    ids = ids or [f"p-{i}" for i in range(8)]
    rows = [annotation(ids[i], prompt=PROMPTS[i], responses=[
        {"response_id": "a", "text": f"Sure. {COPIED} Hope that helps." if i == 7 else text(400 + i, 20), "rank": 1},
        {"response_id": "b", "text": text(500 + i, 20), "rank": 2}]) for i in range(8)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def evalset(path):
    rows = [{"id": "e-exact", "prompt": PROMPTS[0].upper() + "!!", "chosen": text(700, 20), "rejected": text(701, 20)},
            {"id": "e-near", "prompt": PROMPTS[1] + " please", "chosen": text(702, 20), "rejected": text(703, 20)},
            {"id": "e-copy", "prompt": text(800), "chosen": COPIED, "rejected": text(801, 20)},
            {"id": "e-words", "prompt": " ".join(PROMPTS[2].split()[:6]) + " " + text(901, 18),
             "chosen": " ".join(COPIED.split()[:12]), "rejected": text(902, 20)},  # 6 words, a 12-gram: no match
            {"id": "e-other", "prompt": text(900), "chosen": text(903, 20), "rejected": text(904, 20)}]
    path.write_text("".join(json.dumps(r | {"subset": "planted"}) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def grams_sql():
    with sql_macros("ingest/00_macros.sql", "ddl/010_evalset_grams.sql") as con:
        yield con


# texts of 40 words, with punctuation, case and spacing that the words ignore: a 7-gram is rarely shared by chance,
# so the planted copies decide what the prefilter reads
texts = st.lists(st.sampled_from([f"w{i}" for i in range(34)] + ["A", "a,", "b.", "  b", "\nc", "C"]),
                 min_size=14, max_size=40).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(responses=st.lists(texts, min_size=1, max_size=6), completions=st.lists(texts, min_size=1, max_size=4),
       copies=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(0, 27), st.integers(13, 15)),
                       min_size=1, max_size=3))
def test_the_7_gram_prefilter_finds_what_checking_every_13_gram_finds(grams_sql, responses, completions, copies):
    """sql/contamination/response_matches.sql reads only the responses that share a 7-gram at every 7th word; its
    matches must be those of comparing every 13-gram of every response. COPIES plant a run of words of a response
    (index, start, length) into a completion."""
    for r, c, start, length in copies:
        words = responses[r % len(responses)].split()
        completions[c % len(completions)] += " x " + " ".join(words[start:start + length]) + " y"
    con = grams_sql
    con.execute("CREATE OR REPLACE TEMP TABLE checked_responses AS SELECT 'a' || i AS annotation_id, 'r' AS "
                "response_id, t AS text, i % 2 AS half FROM unnest(?) WITH ORDINALITY AS u(t, i)", [responses])
    con.execute("CREATE OR REPLACE TEMP TABLE completions AS SELECT 's' AS evalset, 'v' AS version, 'e' || (i % 2) "
                "AS example_id, t AS text FROM unnest(?) WITH ORDINALITY AS u(t, i)", [completions])
    con.execute("CREATE OR REPLACE TEMP TABLE examples AS SELECT 's' AS evalset, 'v' AS version, 'test' AS made_by, "
                "0 AS example, 'e0' AS example_id, '' AS normalised")
    con.execute("CREATE OR REPLACE TEMP TABLE checked_sets AS SELECT 's' AS evalset, 'v' AS version")
    run_script(con, "contamination/keep_set.sql")
    run_script(con, "contamination/eval_grams.sql")
    run_script(con, "contamination/response_matches.sql")
    found = con.execute("SELECT example_id, annotation_id, similarity FROM response_matches ORDER BY ALL").fetchall()
    every = con.execute("""
        WITH hits AS (SELECT g.annotation_id, e.example_id, count(DISTINCT e.gram) AS shared
                      FROM (SELECT annotation_id, unnest(grams13(text)) AS gram FROM checked_responses) g
                      JOIN eval_grams e USING (gram) GROUP BY ALL)
        SELECT example_id, annotation_id, shared / (SELECT count(*) FROM eval_grams WHERE example_id = h.example_id)
        FROM hits h ORDER BY ALL""").fetchall()
    assert found == every


def matches(wh) -> set[tuple]:
    return set(wh.con.execute("SELECT example_id, kind, coalesce(prompt_key, annotation_id || ':' || response_id) "
                              "FROM contamination").fetchall())


@pytest.mark.parametrize("set_first", [False, True])
def test_edited_copies_give_exactly_the_planted_matches_in_either_order(tmp_path, settings_factory, set_first):
    settings = settings_factory(tmp_path)
    with Warehouse.open(settings) as wh:
        steps = [lambda: register_evalset(wh, settings.home, evalset(tmp_path / "set.jsonl"), "planted"),
                 lambda: ingest_file(wh, warehouse_batch(tmp_path / "b.jsonl"), settings)]
        for step in steps if set_first else steps[::-1]:
            step()
        assert matches(wh) == PLANTED
        near = wh.con.execute("SELECT similarity FROM contamination WHERE kind = 'near'").fetchall()[0][0]
        assert 0.8 <= near < 1
        again = warehouse_batch(tmp_path / "again.jsonl")
        again.write_text(again.read_text() + "\n")  # other bytes, the same annotations: each replaced
        assert ingest_file(wh, again, settings).replaced == 8
        assert matches(wh) == PLANTED and wh.con.execute("SELECT count(*) FROM contamination").fetchall() == [(3,)]


def test_a_sets_kept_grams_are_read_by_each_batch_and_made_again_when_made_by_another(tmp_path, settings_factory):
    settings = settings_factory(tmp_path)
    with Warehouse.open(settings) as wh:
        register_evalset(wh, settings.home, evalset(tmp_path / "set.jsonl"), "planted")
        kept = "SELECT made_by, n, count(*) FROM evalset_grams GROUP BY ALL ORDER BY ALL"
        made = wh.con.execute(kept).fetchall()
        assert [(m, n) for m, n, _ in made] == [(made_by(), 7), (made_by(), 13)] and made_by().startswith("duckdb ")
        assert f" unicode {unicodedata.unidata_version} " in made_by()  # other Unicode tables: made again
        # what another DuckDB's hash() (or another prefpipe) made must not be read: here, grams that match nothing
        wh.con.execute("UPDATE evalset_grams SET gram = 0, made_by = 'duckdb 0.0 0'; "
                       "UPDATE evalset_examples SET made_by = 'duckdb 0.0 0', normalised = 'nothing'")
        ingest_file(wh, warehouse_batch(tmp_path / "b.jsonl"), settings)
        assert matches(wh) == PLANTED and wh.con.execute(kept).fetchall() == made  # made again, once
        stored = Path(wh.con.execute("SELECT path FROM evalsets").fetchall()[0][0])
        stored.write_text("")  # kept: a later batch does not read the set's file
        again = warehouse_batch(tmp_path / "again.jsonl", [f"q-{i}" for i in range(8)])
        assert ingest_file(wh, again, settings).contaminated == 1  # its copied answer (its prompts are not new)


def test_a_set_registered_before_upgrading_is_checked_once(tmp_path, settings_factory, capsys):
    settings = settings_factory(tmp_path)
    with Warehouse.open(settings) as wh:
        ingest_file(wh, warehouse_batch(tmp_path / "b.jsonl"), settings)
        register_evalset(wh, settings.home, evalset(tmp_path / "set.jsonl"), "planted")
        wh.con.execute("DELETE FROM contamination; DELETE FROM contamination_checks")  # as before 0.4
    with Warehouse.open(settings) as wh:  # opening computes nothing; the migration says what is due, then does it
        assert not matches(wh) and due(wh, settings.dedup) == ["check planted against the whole warehouse"]
        [message] = migrate(wh, settings.dedup)
        assert message.startswith("planted (version ") and matches(wh) == PLANTED
        assert migrate(wh, settings.dedup) == [] == due(wh, settings.dedup)


def test_exclusion_leaves_out_the_matched_annotations_and_says_what(tmp_path, settings_factory):
    settings = settings_factory(tmp_path)
    with Warehouse.open(settings) as wh:
        ingest_file(wh, warehouse_batch(tmp_path / "b.jsonl"), settings)
        register_evalset(wh, settings.home, evalset(tmp_path / "set.jsonl"), "planted")
        assert exclude_matches(wh.con, ["all"]) == {"evalsets": {"planted": {"annotations": 3, "examples": 3}},
                                                    "annotations": 3}
        assert {a for (a,) in wh.con.execute("SELECT annotation_id FROM excluded_annotations").fetchall()} == {
            "p-0/ann-1", "p-1/ann-1", "p-7/ann-1"}
        with pytest.raises(InputError, match=r"--exclude-evalset: no such evaluation set: nope \(registered: planted"):
            exclude_matches(wh.con, ["nope"])
    env = {"PREFPIPE_HOME": str(settings.home), "PREFPIPE_WAREHOUSE": str(settings.warehouse)}
    done = run_cli("export", str(tmp_path / "all.jsonl"), "--split", "all", env=env)
    assert done.returncode == 0 and "8 pairs" in done.stdout
    done = run_cli("export", str(tmp_path / "clean.jsonl"), "--split", "all", "--exclude-evalset", "planted", env=env)
    assert done.returncode == 0 and "5 pairs (all); left out 3 annotations that match planted" in done.stdout
    kept = {json.loads(line)["prompt"] for line in (tmp_path / "clean.jsonl").read_text().splitlines()}
    assert kept == {PROMPTS[i] for i in range(2, 7)}
    for command in (["train"], ["export", str(tmp_path / "x.jsonl")]):
        done = run_cli(*command, "--exclude-evalset", "nope", env=env)
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and "no such evaluation set: nope" in done.stderr


@pytest.mark.slow
def test_the_leaderboard_reports_what_each_model_trained_on(prefect_harness, tmp_path, settings_factory):
    """One model trained with --exclude-evalset, one without: 0 and the planted 3 contaminated examples, and a
    decontaminated score beside the score."""
    from flows.nightly import nightly_flow
    from flows.train import train_flow
    from prefpipe.config import TrainConfig
    from prefpipe.synth import synthetic_batch, tiny_reward_model

    settings = settings_factory(tmp_path, splits=(0.7, 0.15, 0.15))
    with Warehouse.open(settings) as wh:
        ids = iter(f"p-{i}" for i in range(10**4))
        train_ids = [i for i in ids if wh.con.execute("SELECT split_of(?)", [i]).fetchall() == [("train",)]][:8]
        ingest_file(wh, warehouse_batch(tmp_path / "b.jsonl", train_ids), settings)
        ingest_file(wh, synthetic_batch(tmp_path / "synthetic.jsonl", 80, bad_lines=0), settings)
        register_evalset(wh, settings.home, evalset(tmp_path / "set.jsonl"), "planted")
    config = TrainConfig(base=str(tiny_reward_model(tmp_path / "tiny")), epochs=1, max_tokens=2048)
    train_flow(config, settings=settings, name="dirty", progress=False)
    clean = train_flow(config, settings=settings, name="clean", progress=False, exclude=["planted"])
    assert json.loads((tmp_path / "home" / "models" / "clean" / "excluded.json").read_text())["annotations"] == 3
    board = {r["model_id"]: r for r in nightly_flow(settings=settings)["leaderboard"]}
    assert (board["dirty"]["contaminated_examples"], board["dirty"]["contaminated_share"]) == (3, 0.6)
    assert (board["clean"]["contaminated_examples"], board["clean"]["contaminated_share"]) == (0, 0.0)
    assert board["clean"]["decontaminated_score"] == board["clean"]["custom"]  # nothing left out
    assert board["dirty"]["decontaminated_score"] in (0, 0.5, 1)  # over the 2 examples without a match
    with Warehouse.open(settings) as wh:
        assert json.loads(wh.con.execute("SELECT excluded FROM models WHERE model_id = 'clean'").fetchall()[0][0])[
            "evalsets"] == {"planted": {"annotations": 3, "examples": 3}}
    assert clean["model_id"] == "clean"


def test_prompts_of_only_punctuation_or_spaces_match_nothing(tmp_path, settings_factory):
    settings = settings_factory(tmp_path)
    batch = tmp_path / "b.jsonl"
    batch.write_text("".join(json.dumps(annotation(f"p-{i}", prompt=p)) + "\n" for i, p in enumerate(["?!", "... "])))
    rows = [{"id": "e-dots", "prompt": " ... ?", "chosen": "a", "rejected": "b", "subset": "s"},
            {"id": "e-real", "prompt": PROMPTS[0], "chosen": "c", "rejected": "d", "subset": "s"}]
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Warehouse.open(settings) as wh:
        ingest_file(wh, batch, settings)
        register_evalset(wh, settings.home, tmp_path / "set.jsonl", "dots")
        assert matches(wh) == set()  # all three normalise to "": an empty form says nothing, and matches nothing
