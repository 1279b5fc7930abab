"""Near-duplicate clusters and leak-free splits (prefpipe.dedup), on a real DuckDB warehouse."""

from __future__ import annotations

import itertools
import json
import unicodedata

import pytest
from helpers import annotation, run_cli, sql_macros, text
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from prefpipe.dedup import _punctuation, cluster_batch, jaccard, normalise_prompt, normalise_text, prompt_key, shingles
from prefpipe.errors import InputError, PrefpipeError
from prefpipe.ingest import ingest_file
from prefpipe.migrate import due, migrate
from prefpipe.settings import Settings
from prefpipe.sql import run_script, sql
from prefpipe.warehouse import Warehouse

HH = "data/public/hh-rlhf/helpful-base-test-first2000.jsonl.gz"


def clusters(wh) -> dict[str, str]:
    """prompt_id -> cluster_id."""
    return dict(wh.con.execute("SELECT a.prompt_id, c.cluster_id FROM annotations a "
                               "JOIN prompt_clusters c USING (prompt_key)").fetchall())


def test_normalised_form():
    assert normalise_prompt("  Ｈello,\tWORLD!!  ﬁne… ") == "hello world fine"  # NFKC, casefold, punctuation
    assert normalise_prompt("Straße") == normalise_prompt("STRASSE")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is  2+2?"},
                {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}]
    assert normalise_prompt(messages) == "what is 2+2 and 3+3"  # user turns only; + is a symbol, not punctuation
    assert shingles("a b c", 5) == ["a b c"]
    assert shingles("a b c d e f", 5) == ["a b c d e", "b c d e f"]
    assert jaccard("a b c d e f", "a b c d e f", 5) == 1.0


@hsettings(deadline=None)  # the first call builds the Unicode punctuation table
@given(st.text(st.characters(max_codepoint=127)))
def test_the_ascii_path_gives_the_unicode_form(value):
    """ASCII text takes a fast path; it must give exactly the form the general (NFKC, casefold) path gives."""
    assert normalise_text(value) == " ".join(
        unicodedata.normalize("NFKC", value).casefold().translate(_punctuation()).split())


@pytest.fixture(scope="module")
def forms_sql():
    with sql_macros("dedup/forms.sql") as con:
        yield con


messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]),
                                           "content": st.text()}), max_size=4)


@hsettings(deadline=None)
@given(st.one_of(st.text(st.characters(max_codepoint=127)), st.text(), messages))
def test_duckdb_gives_the_text_and_the_ascii_form_that_python_gives(forms_sql, prompt):
    """The clustering reads a prompt's text and, when it is ASCII, its form from DuckDB (sql/dedup/forms.sql)."""
    [(got, form)] = forms_sql.execute("SELECT prompt_text(?) AS t, ascii_form(t)", [json.dumps(prompt)]).fetchall()
    assert got == (prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt if m["role"] == "user"))
    assert form == (normalise_prompt(prompt) if got.isascii() else None)


normal_forms = st.lists(st.sampled_from(["a", "b", "c", "d", "aa", "é"]), max_size=14).map(" ".join)


@hsettings(deadline=None)
@given(a=normal_forms, b=normal_forms, n=st.integers(1, 6))
def test_duckdb_gives_the_jaccard_that_python_gives(forms_sql, a, b, n):
    """The clustering keeps the candidate pairs whose Jaccard DuckDB computes (sql/dedup/forms.sql `jaccard`)."""
    assert forms_sql.execute("SELECT jaccard(?, ?, ?)", [a, b, n]).fetchall() == [(jaccard(a, b, n),)]


def test_an_ingest_stores_the_python_form_and_key_of_every_kind_of_prompt(tmp_path, settings_factory, monkeypatch):
    """Forms come from DuckDB (ASCII text) and from Python (the rest), chunk by chunk, put back in order: ASCII,
    Unicode and message-list prompts interleaved, three to a chunk, must each get normalise_prompt's form and its
    key."""
    import prefpipe.dedup as dedup

    monkeypatch.setattr(dedup, "CHUNK", 3)
    user = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Ｆull-width ﬁne?"},
            {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "And  THIS, too!"}]
    prompts = ["Hello,  World!", "Straße und Café", user, "tabs\tand\x1fseparators", "漢字 テスト", "plain ascii",
               [{"role": "user", "content": "only ascii here"}], "Ünïcödé… “quotes”", "{}:;?!", "end"]
    rows = [annotation(f"p-{i}", prompt=p) for i, p in enumerate(prompts)]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = settings_factory(tmp_path)
    with Warehouse.open(settings) as wh:
        ingest_file(wh, path, settings)
        stored = dict(wh.con.execute("SELECT a.prompt_id, struct_pack(a.prompt_key, c.normalised) FROM annotations a "
                                     "JOIN prompt_clusters c USING (prompt_key)").fetchall())
    assert {i: (v["prompt_key"], v["normalised"]) for i, v in stored.items()} == {
        f"p-{i}": (prompt_key(normalise_prompt(p)), normalise_prompt(p)) for i, p in enumerate(prompts)}


def test_near_copies_share_a_cluster_and_unrelated_prompts_do_not(ingest, wh):
    base = text(1)
    variants = {"case": base.upper(), "space": base.replace(" ", "   \n", 3), "punct": base.replace(" ", ", ", 4) + "?",
                "word": base + " please", "lead": "please " + base}
    common = text(2)  # shares its first 8 words with the next prompt, nothing else
    ingest(*[annotation(f"p-{name}", prompt=variant) for name, variant in {"base": base, **variants}.items()],
           annotation("p-common-1", prompt=common), annotation("p-common-2", prompt=" ".join(common.split()[:8])
                                                                + " " + text(3, 16)))
    found = clusters(wh)
    assert {found[f"p-{name}"] for name in variants} == {found["p-base"]}
    assert found["p-common-1"] != found["p-common-2"] and found["p-common-1"] != found["p-base"]
    assert wh.con.execute("SELECT count(DISTINCT split) FROM annotations WHERE prompt_id LIKE 'p-%' "
                          "AND prompt_id NOT LIKE 'p-common%'").fetchall() == [(1,)]


def test_candidates_share_a_bucket_in_the_same_band(wh):
    """Forms are candidates when they share a bucket in one band, stored or new; a bucket equal in another band is
    not one (a short form has one bucket in every band, so such buckets are common)."""
    con = wh.con
    con.execute("INSERT INTO prompt_clusters VALUES ('k1', 1, 'one', 'k1', 'p1', 'b')")
    con.execute("INSERT INTO prompt_bands VALUES (1, 0, 7), (1, 1, 9)")
    con.execute("CREATE TEMP TABLE stage_new_prompts AS SELECT * FROM (VALUES ('k2', 2, 'two', 'k2', 'p2', 1), "
                "('k3', 3, 'three', 'k3', 'p3', 2), ('k4', 4, 'four', 'k4', 'p4', 3)) "
                "t(prompt_key, prompt_seq, normalised, cluster_id, split_key, first)")
    con.execute("CREATE TEMP TABLE stage_bands AS SELECT prompt_seq, band::UTINYINT AS band, bucket::UBIGINT AS bucket "
                "FROM (VALUES (2, 1, 7), (2, 0, 9), (2, 2, 11), (3, 0, 7), (3, 3, 11), (4, 2, 11), (4, 1, 9)) "
                "t(prompt_seq, band, bucket)")
    run_script(con, "dedup/forms.sql")
    assert sorted(con.execute(sql("dedup/candidates.sql"), [5, 0.0]).fetchall()) == [(1, 3), (1, 4), (2, 4)]
    assert con.execute(sql("dedup/candidates.sql"), [5, 0.01]).fetchall() == []  # one word each: Jaccard 0
    # and an evaluation-set example's prompt (sql/contamination/prompt_candidates.sql)
    con.execute("CREATE TEMP VIEW match_bands AS SELECT * FROM stage_bands")
    con.execute("CREATE TEMP VIEW match_forms AS SELECT prompt_seq, prompt_key, normalised, NULL AS batch_id "
                "FROM stage_new_prompts")
    con.execute("CREATE TEMP TABLE eval_bands AS SELECT 0 AS example, 0::UTINYINT AS band, 7::UBIGINT AS bucket")
    assert con.execute(sql("contamination/prompt_candidates.sql")).fetchall() == [(0, "k3", "three", None)]


def test_a_prompt_joining_a_cluster_takes_its_split_and_nothing_moves(ingest, wh):
    base = text(5)
    ingest(annotation("first", prompt=base), *[annotation(f"other-{i}", prompt=text(100 + i)) for i in range(30)])
    before = dict(wh.con.execute("SELECT annotation_id, split FROM annotations").fetchall())
    ingest(annotation("later", prompt=base.title() + "!"))
    after = dict(wh.con.execute("SELECT annotation_id, split FROM annotations").fetchall())
    assert after["later/ann-1"] == after["first/ann-1"]
    assert {k: after[k] for k in before} == before


def test_reingesting_changes_nothing(ingest, wh, tmp_path, settings):
    batch = [annotation(f"p-{i}", prompt=text(i % 7) + (" again" if i % 2 else "")) for i in range(20)]
    ingest(*batch)
    snapshot = "SELECT * EXCLUDE (merged_at) FROM cluster_merges ORDER BY ALL"
    state = [wh.con.execute(q).fetchall() for q in ("SELECT * FROM prompt_clusters ORDER BY prompt_seq",
                                                    "SELECT annotation_id, prompt_key, split FROM annotations ORDER BY 1",
                                                    snapshot)]
    summary = ingest(*batch, "")  # other bytes, the same annotations: each replaced by itself
    assert summary.replaced == 20
    assert state == [wh.con.execute(q).fetchall() for q in (
        "SELECT * FROM prompt_clusters ORDER BY prompt_seq",
        "SELECT annotation_id, prompt_key, split FROM annotations ORDER BY 1", snapshot)]


# A bridge: LEFT and RIGHT are near-copies of WHOLE (Jaccard 0.88) but not of each other (0.77).
WHOLE = text(9, 30).split()
LEFT, RIGHT = " ".join(WHOLE[:27]), " ".join(WHOLE[3:])


def test_the_bridge_is_what_the_property_needs():
    whole = " ".join(WHOLE)
    assert jaccard(LEFT, whole, 5) >= 0.8 and jaccard(RIGHT, whole, 5) >= 0.8 and jaccard(LEFT, RIGHT, 5) < 0.8


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(12)), cuts=st.sets(st.integers(1, 11), max_size=4))
def test_a_cluster_never_spans_two_splits_unless_a_conflict_is_recorded(tmp_path_factory, settings_factory, order,
                                                                       cuts):
    """Any order of a bridged family and unrelated prompts, in any batches: clusters hold one split, except
    where a recorded merge joined two; and no pair ever moves."""
    prompts = [LEFT, RIGHT, " ".join(WHOLE), LEFT.upper(), RIGHT + " please"] + [text(200 + i) for i in range(7)]
    tmp = tmp_path_factory.mktemp("order")
    settings = settings_factory(tmp, splits=(0.34, 0.33, 0.33))
    rows = [annotation(f"p-{i}", prompt=prompts[i]) for i in order]
    edges = [0, *sorted(cuts), len(rows)]
    seen: dict[str, str] = {}
    with Warehouse.open(settings) as wh:
        for n, (a, b) in enumerate(itertools.pairwise(edges)):
            path = tmp / f"b{n}.jsonl"
            path.write_text("".join(f"{json.dumps(r)}\n" for r in rows[a:b]))
            assert ingest_file(wh, path, settings).status == "loaded"
            now = dict(wh.con.execute("SELECT annotation_id, split FROM annotations").fetchall())
            assert {k: now[k] for k in seen} == seen  # nothing moved
            seen = now
        spans = wh.con.execute("SELECT c.cluster_id, list(DISTINCT a.split) FROM annotations a "
                               "JOIN prompt_clusters c USING (prompt_key) GROUP BY 1").fetchall()
        conflicted = {c for (c,) in wh.con.execute("SELECT cluster_id FROM split_conflicts").fetchall()}
        assert all(len(splits) == 1 or cluster in conflicted for cluster, splits in spans)
        family = {wh.con.execute("SELECT c.cluster_id FROM annotations a JOIN prompt_clusters c USING (prompt_key) "
                                 "WHERE prompt_id = ?", [f"p-{i}"]).fetchall()[0][0] for i in range(5)}
        assert len(family) == 1  # the bridge joins them, whenever it comes


def test_a_batch_merging_clusters_of_two_splits_follows_the_older_and_records_it(ingest, wh):
    ids = iter(range(10**4))
    left = next(f"L{i}" for i in ids if wh.con.execute("SELECT split_of(?)", [f"L{i}"]).fetchall() == [("test",)])
    right = next(f"R{i}" for i in ids if wh.con.execute("SELECT split_of(?)", [f"R{i}"]).fetchall() == [("train",)])
    ingest(annotation(left, prompt=LEFT))
    ingest(annotation(right, prompt=RIGHT))
    ingest(annotation("bridge", prompt=" ".join(WHOLE)), annotation("right-again", prompt=RIGHT))
    splits = dict(wh.con.execute("SELECT prompt_id, split FROM annotations").fetchall())
    assert splits == {left: "test", right: "train", "bridge": "test", "right-again": "test"}
    assert wh.con.execute("SELECT split, merged_split, cluster_pairs FROM split_conflicts").fetchall() == [
        ("test", "train", 4)]
    assert len(set(clusters(wh).values())) == 1


def test_migration_moves_leaked_pairs_once_and_says_so(tmp_path, settings_factory):
    settings = settings_factory(tmp_path)
    with Warehouse.open(settings) as wh:
        ingest_file(wh, HH, settings)
        wh.con.execute("UPDATE annotations SET prompt_key = NULL, split = split_of(prompt_id)")  # as before 0.4
        wh.con.execute("DELETE FROM prompt_clusters; DELETE FROM cluster_settings")
        leaked = wh.con.execute(
            "SELECT count(*) FROM comparisons JOIN annotations USING (annotation_seq) WHERE split <> 'train'").fetchall()
    with Warehouse.open(settings) as wh:
        assert due(wh, settings.dedup) == ["cluster the prompts by near-duplicates (never clustered)"]
        with pytest.raises(PrefpipeError, match=r"one-time migration \(never clustered\): run `prefpipe migrate`"):
            cluster_batch(wh.con, settings.dedup)  # an ingest never clusters a batch against stale clusters
        [message] = migrate(wh, settings.dedup)
        assert "clustered once by near-duplicate prompts (never clustered" in message
        assert "1991 prompts in 1972 clusters; 6 of 1990 pairs changed split" in message
        assert leaked != wh.con.execute(
            "SELECT count(*) FROM comparisons JOIN annotations USING (annotation_seq) WHERE split <> 'train'").fetchall()
        assert migrate(wh, settings.dedup) == [] == due(wh, settings.dedup)  # once


def test_reading_a_warehouse_whose_dedup_settings_changed_does_not_recluster(tmp_path, settings_factory):
    settings = settings_factory(tmp_path)
    rows = [annotation(f"p-{i}", prompt=text(i % 20) + (" please" if i >= 20 else "")) for i in range(40)]
    batch = tmp_path / "b.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Warehouse.open(settings) as wh:
        ingest_file(wh, batch, settings)

    def state() -> list:
        with Warehouse.open(settings) as wh:
            return [wh.con.execute(q).fetchall() for q in ("SELECT * FROM cluster_settings",
                                                           "SELECT * FROM prompt_clusters ORDER BY prompt_seq")]

    before = state()
    env = {"PREFPIPE_HOME": str(settings.home), "PREFPIPE_WAREHOUSE": str(settings.warehouse),
           "PREFPIPE_DEDUP_NGRAM": "3"}
    done = run_cli("stats", env=env)
    assert done.returncode == 0, done.stderr
    assert "Due: cluster the prompts by near-duplicates (dedup settings changed); run `prefpipe migrate`" in done.stdout
    assert state() == before  # a reader computes nothing
    done = run_cli("migrate", env=env)
    assert done.returncode == 0 and "clustered once by near-duplicate prompts (dedup settings changed; 3-grams" in done.stdout
    after = state()
    assert after[0] == [(3, 128, 16, 0.8, "oph")] and after != before
    done = run_cli("migrate", env=env)
    assert done.returncode == 0 and done.stdout.strip() == f"{settings.warehouse}: nothing to migrate"
    nowhere = tmp_path / "none.duckdb"
    done = run_cli("migrate", "--warehouse", str(nowhere), env=env)
    assert done.returncode == 1 and "no warehouse yet" in done.stderr and not nowhere.exists()


def test_hh_sample_clusters_and_the_leaks_of_the_exact_prompt_split(tmp_path, settings_factory):
    settings = settings_factory(tmp_path)
    with Warehouse.open(settings) as wh:
        ingest_file(wh, HH, settings)
        views = {title: rows for title, _, rows in wh.cluster_views()}
    # rensa's MinHash (before 0.10) gave 1971 clusters, 17 shared by 37 prompts: one more pair, at Jaccard 0.802
    # ("how do i write an effective term paper ..."), that shares no band here (93 of 128 bins agree; over 400 seeds
    # the estimate averages 0.802 and LSH finds the pair in 97%: a pair at the threshold is missed ~5% of the time
    # by either signature). The other 22 of the 23 true pairs are found by both.
    assert views["Near-duplicate clusters"] == [(1972, 1991, 16, 35, 0)]
    assert views["Held-out pairs that the split by exact prompt would have leaked"] == [("test", 94, 4),
                                                                                      ("validation", 99, 2)]
    assert views["Largest clusters"][0][1:4] == (4, 4, ["train"])


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2", "x"])
def test_a_threshold_outside_zero_one_is_a_one_line_error(value, tmp_path):
    done = run_cli("stats", env={"PREFPIPE_HOME": str(tmp_path), "PREFPIPE_DEDUP_THRESHOLD": value})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "PREFPIPE_DEDUP_THRESHOLD" in done.stderr
    with pytest.raises(InputError, match="dedup_bands"):
        Settings(dedup_bands=3).check()



def test_clusters_do_not_depend_on_how_the_prompts_are_chunked(tmp_path, settings_factory, monkeypatch):
    import prefpipe.dedup as dedup

    rows = [annotation(f"p-{i}", prompt=text(i % 40) + (" please" if i >= 40 else "")) for i in range(70)]
    results = []
    for chunk, row_group in ((10**6, dedup.ROW_GROUP), (9, dedup.ROW_GROUP), (9, 1)):  # the last: forms at once
        monkeypatch.setattr(dedup, "CHUNK", chunk)
        monkeypatch.setattr(dedup, "ROW_GROUP", row_group)
        settings = settings_factory(tmp_path / f"{chunk}-{row_group}")
        path = tmp_path / f"{chunk}-{row_group}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        with Warehouse.open(settings) as wh:
            ingest_file(wh, path, settings)
            results.append([wh.con.execute(q).fetchall() for q in (
                "SELECT * FROM prompt_clusters ORDER BY prompt_seq", "SELECT * FROM prompt_bands ORDER BY ALL",
                "SELECT annotation_id, prompt_key, split FROM annotations ORDER BY 1")])
    assert results[0] == results[1] == results[2]
    assert len({row[3] for row in results[0][0]}) == 40  # each prompt with its "please" copy
