"""Hostile batch files: each fails in one line naming the file, or is quarantined row by row; nothing
good is lost with them."""

from __future__ import annotations

import gzip
import json

import pytest
from helpers import annotation, quarantine, write_batch

from prefpipe.errors import InputError
from prefpipe.ingest import ingest_file
from prefpipe.synth import synthetic_batch

DEEP = '{"prompt_id": "deep", "prompt": "x", "metadata": ' + "[" * 50_000 + "]" * 50_000 + "}"


def test_a_gzip_cut_short_or_followed_by_garbage_fails_in_one_line_loading_nothing(tmp_path, wh, settings):
    whole = gzip.compress(synthetic_batch(tmp_path / "b.jsonl", 6000, bad_lines=0).read_bytes())
    assert len(gzip.decompress(whole)) > 2 << 20  # the first megabyte (the format sample) reads fine
    cut, garbage = tmp_path / "cut.jsonl.gz", tmp_path / "garbage.jsonl.gz"
    cut.write_bytes(whole[: len(whole) * 3 // 4])
    garbage.write_bytes(whole + b"not gzip at all")
    for path, reason in ((cut, "truncated gzip: Compressed file ended before the end-of-stream marker"),
                         (garbage, "not a valid gzip stream (corrupt, or bytes after its end)")):
        with pytest.raises(InputError) as failed:
            ingest_file(wh, path, settings)
        assert str(failed.value).startswith(f"{path}: {reason}") and "\n" not in str(failed.value)
        assert wh.counts()["annotations"] == 0
    small = tmp_path / "small.jsonl.gz"
    small.write_bytes(gzip.compress(b'{"prompt_id": "p"}\n' * 10)[:30])  # cut inside the sample
    with pytest.raises(InputError, match=r"small.jsonl.gz: truncated gzip"):
        ingest_file(wh, small, settings)


def test_json_nested_too_deep_for_python_is_quarantined_like_any_line(tmp_path, wh, settings):
    path = write_batch(tmp_path / "deep.jsonl", DEEP, annotation("ok", 1, 2), "[" * 50_000 + "]" * 50_000)
    summary = ingest_file(wh, path, settings)  # the deep lines are in the sample that detects the format
    assert (summary.format, summary.loaded, summary.quarantined_by_rule) == ("canonical", 1,
                                                                              {"metadata": 1, "object": 1})
    assert quarantine(wh)[1][1].startswith("metadata: must be an object, got list")


def test_a_key_given_twice_is_quarantined_naming_the_key(tmp_path, wh, settings, ingest):
    twice = json.dumps(annotation("p", 1, 2))
    summary = ingest(twice.replace('"prompt":', '"prompt": "first", "prompt":'),  # top level
                     twice.replace('"rank": 2', '"rank": 2, "rank": 1').replace('"p"', '"q"', 1),  # a response
                     twice.replace('"prompt_id": "p"', '"prompt_id": "m", "metadata": {"k": 1, "k": 2}'),
                     json.dumps(annotation("ok", 1, 2)))
    assert (summary.loaded, summary.quarantined_by_rule) == (1, {"json": 3})
    reasons = {line: reason for line, (rule, reason) in quarantine(wh).items()}
    assert reasons[1].startswith('key "prompt" appears twice in one object: readers disagree on which value wins')
    assert reasons[2].startswith('key "rank" appears twice') and reasons[3].startswith('key "k" appears twice')
    hh = tmp_path / "hh.jsonl"  # a public format: the source record is checked
    hh.write_text('{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", "rejected": "\\n\\nHuman: a\\n\\nAssistant: c", '
                  '"rejected": "\\n\\nHuman: a\\n\\nAssistant: d"}\n'
                  '{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", "rejected": "\\n\\nHuman: a\\n\\nAssistant: c"}\n')
    summary = ingest_file(wh, hh, settings)
    assert (summary.format, summary.loaded, summary.quarantined_by_rule) == ("hh-rlhf", 1, {"json": 1})
