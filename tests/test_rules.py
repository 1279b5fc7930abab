"""Every rule of the canonical format: what loads, what is quarantined and why, what pairs are made."""

from __future__ import annotations

import pytest
from helpers import annotation, pairs, quarantine

from prefpipe.errors import InputError

A = annotation  # shorter in the tables below


def responses(*items: dict) -> list[dict]:
    return [{"response_id": chr(97 + i), "text": f"t{i}"} | item for i, item in enumerate(items)]


BAD = [
    ("not json", "json", "line is not valid JSON"),
    ('["a list"]', "object", "not an object"),
    (A(prompt_id=""), "prompt_id", "prompt_id: must be a non-empty string, got an empty string"),
    ({"prompt": "x", "responses": responses({"rank": 1}, {"rank": 2})}, "prompt_id", "got missing"),
    (A(prompt=""), "prompt", "prompt: must be a non-empty string"),
    (A(prompt=[]), "prompt", "prompt: must be a non-empty string or a list"),
    (A(prompt=[{"role": "user"}]), "prompt", "malformed list"),
    (A(prompt=7), "prompt", "got integer"),
    (A(responses=[]), "responses", "got 0 responses"),
    (A(responses={"a": 1}), "responses", "got object"),
    (A(responses=responses({"rank": 1})), "responses", "got 1 responses"),
    (A(responses=responses(*[{"rank": i} for i in range(1, 11)])), "responses", "got 10 responses"),
    (A(responses=[{"text": "x", "rank": 1}, {"response_id": "b", "text": "y", "rank": 2}]), "response_id",
     "responses[1].response_id: must be a string, got missing"),
    (A(responses=[{"response_id": "a", "text": "x", "rank": 1}, {"response_id": "a", "text": "y", "rank": 2}]),
     "response_id", "response_id: a repeated"),
    (A(responses=responses({"rank": 1, "text": ""}, {"rank": 2})), "text", "responses[1].text: must have 1 to"),
    (A(responses=responses({"rank": 1, "text": 5}, {"rank": 2})), "text", "text: must be a non-empty string, got integer"),
    (A(responses=responses({"rank": "1"}, {"rank": 2})), "rank",
     "responses[1].rank: must be a whole number from 1 to 2147483647, got string"),
    (A(responses=responses({"rank": 2**31 + 5}, {"rank": 2})), "rank", "got a whole number out of range"),
    (A(responses=responses({"rank": 1}, {"rank": 2**63 - 1})), "rank", "responses[2].rank: must be a whole number"),
    (A(responses=responses({"rank": 1}, {"rank": 10**30})), "rank", "got a whole number out of range"),
    (A(responses=responses({"rank": 1.5}, {"rank": 2})), "rank", "got decimal"),
    (A(responses=responses({"rank": 1.0}, {"rank": 2})), "rank", "got decimal"),
    (A(responses=responses({"rank": True}, {"rank": 2})), "rank", "got boolean"),
    (A(responses=responses({"rank": 0}, {"rank": 2})), "rank", "got 0"),
    (A(responses=responses({"rank": -3}, {"rank": 2})), "rank", "got -3"),
    ('{"prompt_id": "p", "prompt": "x", "responses": [{"response_id": "a", "text": "t", "rank": NaN}, '
     '{"response_id": "b", "text": "u", "rank": 2}]}', "rank", "got decimal"),
    (A(responses=responses({"rank": 1, "dropped": "yes"}, {"rank": 2})), "dropped", "dropped: must be true or false"),
    (A(responses=responses({"rank": 1}, {"rank": 2}, {"edited_from": "a"}, {"edited_from": "b"})), "edits",
     "more than one edit"),
    (A(responses=responses({"rank": 1}, {"rank": 2}, {"edited_from": "zz"})), "edited_from",
     "responses[3].edited_from: names no other response of the annotation (zz)"),
    (A(responses=responses({"rank": 1}, {"rank": 2, "dropped": True})), "comparable",
     "fewer than two comparable responses (1 ranked, not dropped)"),
    (A(responses=responses({"rank": 1}, {})), "comparable", "fewer than two comparable"),
    (A(metadata=[1]), "metadata", "metadata: must be an object, got list"),
]


@pytest.mark.parametrize(("line", "rule", "reason"), BAD, ids=[f"{r}-{i}" for i, (_, r, _) in enumerate(BAD)])
def test_each_rule_quarantines_the_whole_annotation(ingest, wh, line, rule, reason):
    summary = ingest(A("ok", 1, 2), line)
    assert (summary.loaded, summary.quarantined) == (1, 1)
    (got_rule, got_reason), = [quarantine(wh)[2]]
    assert got_rule == rule
    assert reason in got_reason
    assert wh.con.execute("SELECT count(*), count(DISTINCT annotation_seq) FROM responses").fetchone() == (2, 1)


def test_ranks_as_large_as_the_warehouse_stores_load_and_larger_ones_are_quarantined(ingest, wh):
    largest = 2**31 - 1
    summary = ingest(A("p", 1, largest), A("q", 2**31, 1), '{"prompt_id": "r", "prompt": "x", "responses": ['
                     '{"response_id": "a", "text": "t", "rank": 1}, {"response_id": "b", "text": "u", "rank": '
                     '123456789012345678901234567890}]}')
    assert (summary.loaded, summary.quarantined_by_rule) == (1, {"rank": 2})
    assert pairs(wh) == {("a", "b", largest - 1)}
    pairwise = ingest('{"prompt": "x", "chosen": "a", "rejected": "b", "margin": 9223372036854775807}',
                      '{"prompt": "y", "chosen": "a", "rejected": "b", "margin": 3}', fmt="pairwise")
    assert (pairwise.loaded, pairwise.quarantined_by_rule) == (1, {"rank": 1})


def test_invalid_utf8_is_quarantined_with_the_byte(tmp_path, wh, settings):
    from prefpipe.ingest import ingest_file

    path = tmp_path / "b.jsonl"
    path.write_bytes(b'{"prompt_id": "p\xff", "prompt": "x"}\n')
    summary = ingest_file(wh, path, settings)
    assert summary.quarantined == 1
    assert quarantine(wh)[1] == ("utf8", "line is not valid UTF-8 (byte 17: b'\\xff')")


def test_max_chars_and_max_responses_are_settings(ingest, wh):
    summary = ingest(A("p", 1, 2, 3), A("q", 1, 2), max_responses=2, max_chars=7)
    assert summary.quarantined_by_rule == {"responses": 1, "text": 1}
    assert "text: must have 1 to 7 characters, got 8" in quarantine(wh)[2][1]


def test_ties_make_no_pair_and_weights_count_each_annotation_once(ingest, wh):
    summary = ingest(A("p", 1, 2, 2, 3))
    assert (summary.pairs, summary.ties) == (5, 1)
    assert pairs(wh) == {("a", "b", 1), ("a", "c", 1), ("a", "d", 2), ("b", "d", 1), ("c", "d", 1)}
    assert wh.con.execute("SELECT sum(weight), min(weight), max(weight) FROM pairs").fetchone() == (
        pytest.approx(1.0), pytest.approx(0.2), pytest.approx(0.2))


def test_dropped_and_unranked_responses_are_kept_but_not_compared(ingest, wh):
    line = A(responses=responses({"rank": 1}, {"rank": 3, "dropped": True, "drop_reason": "too hard"}, {}, {"rank": 2}))
    assert ingest(line).pairs == 1
    assert pairs(wh) == {("a", "d", 1)}
    assert wh.con.execute("SELECT count(*), count(*) FILTER (dropped) FROM responses").fetchone() == (4, 1)


def test_the_edit_beats_every_comparable_response_including_its_source(ingest, wh):
    line = A(responses=responses({"rank": 1}, {"rank": 2}, {"rank": 3, "dropped": True}, {"rank": 5, "edited_from": "b"}))
    assert ingest(line).pairs == 3
    assert pairs(wh) == {("d", "a", 1), ("d", "b", 2), ("a", "b", 1)}


def test_identical_texts_make_no_pair_and_are_counted(ingest, wh):
    line = A(responses=[{"response_id": "a", "text": "same", "rank": 1}, {"response_id": "b", "text": "same", "rank": 2},
                        {"response_id": "c", "text": "other", "rank": 3}])
    summary = ingest(line)
    assert (summary.pairs, summary.identical_texts) == (2, 1)
    assert wh.con.execute("SELECT DISTINCT weight FROM pairs").fetchall() == [(0.5,)]


def test_annotator_defaults_to_anonymous_and_key_to_prompt_and_annotator(ingest, wh):
    line = A("p-9")
    del line["annotator_id"]
    ingest(line, A("p-9", annotator="x", annotation_id="custom"))
    assert sorted(wh.con.execute("SELECT annotation_id, annotator_id FROM annotations").fetchall()) == [
        ("custom", "x"), ("p-9/anonymous", "anonymous")]


def test_a_key_repeated_within_a_batch_quarantines_the_second(ingest, wh):
    summary = ingest(A("p", 1, 2), A("p", 2, 1))
    assert summary.quarantined_by_rule == {"duplicate_key": 1}
    assert quarantine(wh)[2] == ("duplicate_key", "annotation key p/ann-1 repeats line 1")
    assert pairs(wh) == {("a", "b", 1)}


def test_staging_tables_leave_the_buffer_pool_once_nothing_reads_them(ingest, wh):
    summary = ingest(A("p", 1, 2), A("p", 2, 1), "{not json")  # a quarantined row and a repeated key too
    assert (summary.loaded, summary.quarantined, summary.pairs) == (1, 2, 1)
    temp = {name for (name,) in wh.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    assert not temp & {"stage_parsed", "stage_annotations", "stage_responses", "annotation_facts", "comparable",
                       "candidate_pairs"}  # at 1M they spilled ~3 GB to disk
    assert {"valid_annotations", "valid_responses", "stage_pairs", "stage_quarantine"} <= temp


def test_a_later_batch_replaces_annotations_by_key(ingest, wh):
    ingest(A("p", 1, 2), A("q", 1, 2))
    summary = ingest(A("p", 2, 1, 3))
    assert (summary.loaded, summary.replaced) == (1, 1)
    assert pairs(wh, "p/ann-1") == {("b", "a", 1), ("b", "c", 2), ("a", "c", 1)}
    assert wh.counts() | {"quarantine": 0} == {"batches": 2, "annotations": 2, "responses": 5, "pairs": 4,
                                               "quarantine": 0}


def test_an_identical_batch_is_skipped_and_reported(ingest, wh, tmp_path, settings):
    from prefpipe.ingest import ingest_file

    first = ingest(A("p", 1, 2), "", "bad")
    assert (first.rows_in, first.loaded, first.quarantined, first.skipped) == (3, 1, 1, 1)
    again = ingest_file(wh, tmp_path / "batch-0.jsonl", settings)
    assert again.status == "skipped"
    assert (again.rows_in, again.loaded, again.skipped) == (3, 0, 3)
    assert again.skipped_by_reason == {"batch already ingested": 3}
    assert wh.counts()["batches"] == 1


def test_a_batch_over_the_quarantine_threshold_loads_nothing(ingest, wh):
    summary = ingest(A("p", 1, 2), "bad", "worse", max_quarantined_share=0.5)
    assert summary.status == "failed"
    assert "2 of 3 annotations quarantined (67%)" in summary.message and "line 2: line is not valid JSON" in summary.message
    assert (summary.loaded, summary.quarantined, summary.skipped) == (0, 2, 1)
    assert wh.counts() == {"batches": 0, "annotations": 0, "responses": 0, "pairs": 0, "quarantine": 0}


def test_messages_as_prompt_and_integer_ids(ingest, wh):
    line = A(prompt=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
             responses=[{"response_id": 1, "text": "x", "rank": 1}, {"response_id": 2, "text": "y", "rank": 2}])
    assert ingest(line).loaded == 1
    assert pairs(wh) == {("1", "2", 1)}


def test_unknown_format_and_missing_file_are_input_errors(wh, settings, tmp_path):
    from prefpipe.ingest import batch_files, ingest_file

    with pytest.raises(InputError, match="cannot tell the format"):
        ingest_file(wh, write(tmp_path / "x.txt", "{}"), settings)
    with pytest.raises(InputError, match="no such file"):
        batch_files([tmp_path / "nope.jsonl"])


def write(path, text):
    path.write_text(text)
    return path
