"""Public formats on the real samples in data/public: counts computed here, independently of the
adapters (plain Python over the raw files), must equal what the warehouse holds."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from helpers import HH, OASST, PANDALM, read_text, write_batch

from prefpipe.errors import InputError
from prefpipe.formats import detect_format
from prefpipe.ingest import ingest_file

TURN = "\n\nAssistant:"


def counts(wh) -> tuple[int, int, int]:
    return wh.con.execute("SELECT (SELECT count(*) FROM annotations), (SELECT count(*) FROM pairs), "
                          "(SELECT count(*) FROM quarantine)").fetchone()


def test_hh_rlhf_sample(wh, settings, tmp_path):
    rows = [json.loads(line) for line in read_text(HH).splitlines()]
    mismatched, identical = [], 0
    for n, row in enumerate(rows, 1):
        c, r = row["chosen"], row["rejected"]
        if c[:c.rfind(TURN)] != r[:r.rfind(TURN)]:
            mismatched.append(n)
        elif c[c.rfind(TURN) + len(TURN):].strip() == r[r.rfind(TURN) + len(TURN):].strip():
            identical += 1
    assert (len(rows), len(mismatched), identical) == (2000, 9, 1)  # as the data's README says

    summary = ingest_file(wh, HH, settings)
    assert (summary.format, summary.rows_in, summary.loaded, summary.quarantined) == ("hh-rlhf", 2000, 1991, 9)
    assert (summary.pairs, summary.identical_texts, summary.balanced) == (1990, 1, True)
    lines = [line for (line,) in wh.con.execute("SELECT line FROM quarantine WHERE rule = 'prompt_mismatch' ORDER BY line")
             .fetchall()]
    assert lines == mismatched
    # the prompt is the dialogue before the last Assistant turn, as messages; the answers are stripped
    first = rows[0]["chosen"]
    prompt, chosen = wh.con.execute("SELECT a.prompt::VARCHAR, r.text FROM annotations a JOIN responses r USING (annotation_seq) "
                                    "WHERE a.line = 1 AND r.response_id = 'chosen'").fetchone()
    assert json.loads(prompt) == [{"role": "user", "content": first[len("\n\nHuman: "):first.rfind(TURN)].strip()}]
    assert chosen == first[first.rfind(TURN) + len(TURN):].strip()

    # keys are stable: the same rows in another file replace themselves and add nothing
    again = write_batch(tmp_path / "again.jsonl", *read_text(HH).splitlines()[:100])
    summary = ingest_file(wh, again, settings)
    assert (summary.loaded, summary.replaced) == (100, 100)
    assert counts(wh) == (1991, 1990, 9)


def oasst_expectation(trees: list[dict]) -> tuple[int, int, int]:
    """(annotations, skipped prompter messages, pairs) by walking the trees."""
    annotations = skipped = pairs = 0
    for tree in trees:
        stack = [tree["prompt"]]
        while stack:
            message = stack.pop()
            stack += message.get("replies", [])
            if message["role"] != "prompter":
                continue
            ranks = [r["rank"] for r in message.get("replies", []) if r["role"] == "assistant"
                     and r.get("rank") is not None and not r["deleted"] and r.get("review_result") is not False]
            if message["deleted"] or len(ranks) < 2:
                skipped += 1
            else:
                annotations += 1
                pairs += sum(a < b for a in ranks for b in ranks)
    return annotations, skipped, pairs


def flat_messages(trees: list[dict]) -> list[dict]:
    """The trees as OASST's flat messages export (parent_id links), shuffled."""
    messages = []
    for tree in trees:
        stack = [(tree["prompt"], None)]
        while stack:
            message, parent = stack.pop()
            stack += [(reply, message["message_id"]) for reply in message.get("replies", [])]
            messages.append({k: v for k, v in message.items() if k != "replies"}
                            | {"parent_id": parent, "message_tree_id": tree["message_tree_id"]})
    random.Random(0).shuffle(messages)
    return messages


def test_oasst_trees_and_flat_messages(wh, settings, tmp_path, settings_factory):
    trees = [json.loads(line) for line in read_text(OASST).splitlines()]
    annotations, skipped, pairs = oasst_expectation(trees)
    summary = ingest_file(wh, OASST, settings)
    assert summary.format == "oasst" and summary.balanced
    assert (summary.loaded, summary.skipped, summary.quarantined, summary.pairs) == (annotations, skipped, 0, pairs)
    # a reply's rank is OASST's + 1; the prompt runs from the root to the prompter message
    deep = wh.con.execute("SELECT annotation_id, prompt::VARCHAR FROM annotations "
                          "ORDER BY json_array_length(prompt) DESC LIMIT 1").fetchone()
    assert len(json.loads(deep[1])) >= 3 and json.loads(deep[1])[-1]["role"] == "user"

    flat = write_batch(tmp_path / "messages.jsonl", *flat_messages(trees))
    from prefpipe.warehouse import Warehouse
    with Warehouse(tmp_path / "flat.duckdb") as other:
        again = ingest_file(other, flat, settings_factory(tmp_path / "flat"))
        assert (again.loaded, again.pairs) == (annotations, pairs)
        assert again.skipped == skipped  # the same prompter messages, now one per line
        same = "SELECT annotation_id, chosen_id, rejected_id, margin, prompt::VARCHAR FROM pairs ORDER BY ALL"
        assert other.con.execute(same).fetchall() == wh.con.execute(same).fetchall()


def test_pandalm_judgments_ties_and_agreement(wh, settings):
    items = json.loads(read_text(PANDALM))
    labels = [item[f"annotator{n}"] for item in items for n in (1, 2, 3)]
    assert (len(labels), labels.count(0)) == (2997, 326)
    broken = {item["idx"] for item in items  # a response that is not text (PandaLM has `true` six times)
              if not isinstance(item["response1"], str) or not isinstance(item["response2"], str)}
    kept = [(item, item[f"annotator{n}"]) for item in items if item["idx"] not in broken for n in (1, 2, 3)]

    summary = ingest_file(wh, PANDALM, settings)
    assert summary.format == "pandalm" and summary.balanced
    assert (summary.rows_in, summary.quarantined, summary.loaded) == (2997, 3 * len(broken), len(kept))
    assert summary.ties == sum(label == 0 for _, label in kept)
    assert summary.pairs == sum(label != 0 for _, label in kept)

    # agreement over the same two responses of the same prompt text, judged more than once
    units: dict[tuple, Counter] = {}
    for item, label in kept:
        prompt = item["instruction"] + (f"\n\n{item['input']}" if item["input"].strip() else "")
        a, b = json.dumps(item["response1"]), json.dumps(item["response2"])
        verdict = "tie" if label == 0 else ("first" if (label == 1) == (a < b) else "second")
        units.setdefault((prompt, min(a, b), max(a, b)), Counter())[verdict] += 1
    judged = [c for c in units.values() if sum(c.values()) > 1]
    n = sum(sum(c.values()) for c in judged)
    majority = sum(max(c.values()) for c in judged) / n
    observed = sum(sum(v * (v - 1) for v in c.values()) / (sum(c.values()) * (sum(c.values()) - 1))
                   for c in judged) / len(judged)
    ties = sum(c["tie"] for c in judged) / n
    expected = 2 * ((1 - ties) / 2) ** 2 + ties ** 2  # which response is "first" is arbitrary: symmetric
    units_, judgments, majority_share, kappa = wh.con.execute("SELECT * FROM agreement").fetchone()
    assert (units_, judgments) == (len(judged), n)
    assert majority_share == pytest.approx(majority, abs=1e-4)
    assert kappa == pytest.approx((observed - expected) / (1 - expected), abs=1e-4)
    assert 0.5 < kappa < 1
    per_annotator = wh.con.execute("SELECT annotator_id, annotations, ties FROM annotator_stats ORDER BY 1").fetchall()
    assert per_annotator == [(f"annotator{k}", len(items) - len(broken),
                              sum(item[f"annotator{k}"] == 0 for item in items if item["idx"] not in broken))
                             for k in (1, 2, 3)]


def test_pairwise_rows(ingest, wh):
    summary = ingest(
        {"prompt": "q1", "chosen": "good", "rejected": "bad", "margin": 2, "subset": "s"},
        {"id": 7, "prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "A"}],
         "rejected": [{"role": "assistant", "content": "B"}]},
        {"chosen": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "A"}],
         "rejected": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "B"}]},
        {"chosen": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "A"}],
         "rejected": [{"role": "user", "content": "y"}, {"role": "assistant", "content": "B"}]},
        {"prompt": "q", "chosen": 5, "rejected": "b"})
    assert (summary.format, summary.loaded, summary.pairs) == ("pairwise", 3, 3)
    assert summary.quarantined_by_rule == {"pairwise": 1, "prompt_mismatch": 1}
    rows = wh.con.execute("SELECT prompt::VARCHAR, chosen_text, rejected_text, margin FROM pairs ORDER BY 1").fetchall()
    assert rows == [('"q1"', "good", "bad", 2), ('[{"role":"user","content":"hi"}]', "A", "B", 1),
                    ('[{"role":"user","content":"x"}]', "A", "B", 1)]
    assert wh.con.execute("SELECT count(*) FROM annotations WHERE annotation_id = '7'").fetchone()[0] == 1


def test_ratings_rows_and_table(ingest, wh, tmp_path, settings):
    summary = ingest(
        {"prompt": "q1", "completions": [{"response": "a", "score": 9}, {"response": "b", "score": 7.5},
                                         {"response": "c", "score": 9}, {"response": "d"}]},
        {"instruction": "q2", "completions": [{"text": "a", "overall_score": "high"}, {"text": "b", "overall_score": 3}]})
    assert (summary.format, summary.loaded, summary.pairs, summary.ties) == ("ratings", 1, 2, 1)
    assert wh.con.execute("SELECT reason FROM quarantine").fetchall() == [("completions[1].score: must be a number, got string",)]
    assert wh.con.execute("SELECT chosen_text, rejected_text FROM pairs ORDER BY 1").fetchall() == [("a", "b"), ("c", "b")]
    table = tmp_path / "helpsteer.csv"
    table.write_text("prompt,response,score\nq3,x,4\nq3,y,2\nq3,z,4\nq4,u,1\nq4,v,\n")
    summary = ingest_file(wh, table, settings)
    assert (summary.format, summary.loaded, summary.pairs, summary.ties) == ("ratings", 1, 2, 1)
    assert summary.quarantined_by_rule == {"comparable": 1}


def test_detection_and_wrong_formats_fail_at_once(wh, settings, tmp_path):
    assert [detect_format(p) for p in (HH, OASST, PANDALM)] == ["hh-rlhf", "oasst", "pandalm"]
    with pytest.raises(InputError) as wrong:
        ingest_file(wh, OASST, settings, "hh-rlhf")
    assert str(wrong.value).startswith(f"{OASST}: not a hh-rlhf file: expected rows {{chosen, rejected}}")
    assert "found JSON Lines with keys message_tree_id, prompt, tree_state" in str(wrong.value)
    with pytest.raises(InputError) as wrong:
        ingest_file(wh, HH, settings, "pandalm")
    assert str(wrong.value).endswith("; found JSON Lines with keys chosen, rejected")
    unsure = write_batch(tmp_path / "unsure.jsonl", {"question": "x", "answer": "y"})
    with pytest.raises(InputError, match="cannot tell the format of JSON Lines with keys answer, question; pass --format"):
        ingest_file(wh, unsure, settings)
    assert counts(wh) == (0, 0, 0)


def test_adapters_read_in_blocks(wh, settings, monkeypatch):
    """A file is streamed in blocks (here 4 KB, so hundreds of them), with the same result as whole."""
    import prefpipe.formats

    monkeypatch.setattr(prefpipe.formats, "BLOCK_BYTES", 4096)
    summary = ingest_file(wh, HH, settings)
    assert (summary.loaded, summary.quarantined, summary.pairs) == (1991, 9, 1990)
    lines = wh.con.execute("SELECT count(DISTINCT line), min(line), max(line) FROM annotations").fetchone()
    assert lines == (1991, 1, 2000)


def test_adapter_lines_that_are_not_objects_are_quarantined_or_skipped(wh, settings, tmp_path):
    turn = "\n\nHuman: hi\n\nAssistant: "
    path = write_batch(tmp_path / "mixed.jsonl", {"chosen": turn + "a", "rejected": turn + "b"}, "", "not json",
                       "[1, 2]", {"chosen": "\n\nHuman: hi", "rejected": turn + "b"})
    summary = ingest_file(wh, path, settings, "hh-rlhf")
    assert (summary.rows_in, summary.loaded, summary.skipped_by_reason) == (5, 1, {"blank line": 1})
    rows = wh.con.execute("SELECT line, rule, reason FROM quarantine ORDER BY line").fetchall()
    assert rows == [(3, "json", "line is not valid JSON"), (4, "object", "line is a JSON value but not an object"),
                    (5, "no_assistant_turn", 'chosen has no "\\n\\nAssistant:" turn')]
