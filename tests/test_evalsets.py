"""Evaluation sets: reading RewardBench rows, and scores that do not depend on the batch."""

from __future__ import annotations

import json
import re

import pytest
import torch
from helpers import LLMBAR
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from prefpipe.errors import InputError
from prefpipe.evalsets import read_evalset
from prefpipe.inputs import prompt_and_response, render_text
from prefpipe.loading import load_reward_model
from prefpipe.scoring import score_examples
from prefpipe.synth import tiny_reward_model


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_every_llmbar_input_that_fits_scores_as_plain_transformers_on_its_whole_text(tmp_path, kind):
    raw = [json.loads(line) for line in LLMBAR.read_text().splitlines()]
    examples = read_evalset(LLMBAR)
    assert len(examples) == len(raw) == 419
    assert [e.subset for e in examples] == [r["subset"] for r in raw]
    base = tiny_reward_model(tmp_path / kind, kind, positions=512)  # some LLMBar inputs are longer
    model, tokenizer = load_reward_model(base), AutoTokenizer.from_pretrained(base)
    scores = score_examples(model, tokenizer, examples, max_tokens=64 * 256)  # batches of many texts
    plain = AutoModelForSequenceClassification.from_pretrained(base).eval()
    tight = longer = 0
    same_length: dict[int, list] = {}  # texts of one length run together: no padding, each its whole text
    for e, (chosen, rejected) in zip(examples, scores, strict=True):
        for text, ours in zip(e.chosen + e.rejected, chosen + rejected, strict=True):
            ids = tokenizer(render_text(tokenizer, e.prompt, text))["input_ids"]
            if len(ids) > 512:
                longer += 1
                continue
            same_length.setdefault(len(ids), []).append((ids, ours, e.example_id))
            prompt_tokens = len(tokenizer(prompt_and_response(tokenizer, e.prompt, text)[0],
                                          add_special_tokens=False)["input_ids"])
            tight += 512 - len(ids) < prompt_tokens  # where the old builder cut the prompt of an input that fit
    with torch.inference_mode():
        for length, group in same_length.items():
            logits = plain(input_ids=torch.tensor([ids for ids, _, _ in group])).logits[:, 0]
            for (_, ours, example_id), whole in zip(group, logits.tolist(), strict=True):
                assert abs(whole - ours) <= 1e-4, (example_id, length)
    fits = sum(len(group) for group in same_length.values())
    assert fits + longer == 2 * len(examples) and longer > 0 and tight >= 10, (fits, longer, tight)
    one_by_one = score_examples(model, tokenizer, examples[:20], max_tokens=1)  # each text alone in its batch
    assert torch.allclose(torch.tensor(one_by_one), torch.tensor(scores[:20]), atol=1e-4)


def test_rewardbench2_rows_and_clear_errors(tmp_path):
    good = tmp_path / "rb2.jsonl"
    good.write_text(json.dumps({"id": 1, "prompt": [{"role": "user", "content": "q"}], "chosen": ["a"],
                                "rejected": ["b", "c", "d"], "subset": "Focus"}) + "\n")
    [example] = read_evalset(good)
    assert (example.chosen, example.rejected) == (("a",), ("b", "c", "d"))
    assert example.prompt == [{"role": "user", "content": "q"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "prompt": "q", "chosen": "a", "rejected": "b", "subset": "s"}\n'
                   '{"id": 2, "prompt": "q", "chosen": ["a"], "rejected": "b", "subset": "s"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: chosen: must be a string in the rewardbench format, got list"):
        read_evalset(bad)
    bad.write_text('{"id": 1, "prompt": "q", "chosen": "a", "rejected": "b", "subset": "s"}\n'
                   '{"id": 1, "prompt": "q", "chosen": "a", "rejected": "b", "subset": "s"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: id: duplicate id '1' \(first on line 1\)"):
        read_evalset(bad)
    bad.write_text('{"id": 1, "prompt": "", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: subset: missing or null"):
        read_evalset(bad)


def test_unreadable_evaluation_sets_fail_naming_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    row = '{"id": 1, "prompt": "q", "chosen": "a", "rejected": "b", "subset": "s"}\n'
    bad.write_bytes(row.encode() + b'{"id": 2, "prompt": "\xff"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid UTF-8 \(byte 22 of the line\)"):
        read_evalset(bad)
    bad.write_text(row + '{"id": 2, "prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(InputError, match=r"bad.jsonl:2: not a readable row: JSON nested too deeply"):
        read_evalset(bad)
    bad.write_text("[" + row + ", {]")
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid JSON"):
        read_evalset(bad)
    (tmp_path / "t.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match=r"t.parquet: not a readable Parquet file"):
        read_evalset(tmp_path / "t.parquet")


def ties_row(row_id: str, correct: int, answers: int) -> str:
    return json.dumps({"id": row_id, "prompt": "q", "subset": "Ties", "chosen": [f"c{i}" for i in range(correct)],
                       "rejected": [f"r{i}" for i in range(answers - correct)]})


@pytest.mark.parametrize(("bad", "reason"), [
    (ties_row("tied:7", 1, 3), "3: chosen: a tied: row needs two or more correct answers"),
    (ties_row("tied:2", 2, 3), "3: id: tied:2 has no ref:2 row"),
    (ties_row("ref:x", 1, 3), "3: id: a Ties id must be ref:N or tied:N with N a whole number, got 'ref:x'"),
    (ties_row("ref:1:2", 1, 3), "3: id: a Ties id must be ref:N or tied:N"),
    (ties_row("ref:3", 1, 1), "3: rejected: must be a non-empty list of strings"),  # all correct: none incorrect
    (json.dumps({"id": "ref:3", "prompt": "q", "subset": "Ties", "chosen": [], "rejected": ["r"]}),
     "3: chosen: must be a non-empty list of strings"),  # no correct answer
])
def test_ties_rows_the_formula_cannot_score_are_refused_naming_line_and_rule(tmp_path, bad, reason):
    path = tmp_path / "rb2.jsonl"
    path.write_text("\n".join([ties_row("ref:1", 1, 3), ties_row("tied:1", 2, 4), bad]) + "\n")
    with pytest.raises(InputError, match=re.escape(f"rb2.jsonl:{reason}")):
        read_evalset(path)
    path.write_text("\n".join([ties_row("ref:1", 1, 3), ties_row("tied:1", 2, 4)]) + "\n")
    assert [e.example_id for e in read_evalset(path)] == ["ref:1", "tied:1"]  # the same set without it is fine


def test_a_ties_subset_without_a_ref_tied_pair_is_refused_and_other_subsets_are_not_held_to_ties_rules(tmp_path):
    path = tmp_path / "rb2.jsonl"
    path.write_text("\n".join([ties_row("ref:1", 1, 3), ties_row("ref:2", 1, 2)]) + "\n")
    with pytest.raises(InputError, match=r"rb2.jsonl:1: id: the Ties subset needs a ref:N row and its tied:N row"):
        read_evalset(path)
    path.write_text(ties_row("ref:1", 1, 3).replace('"Ties"', '"Focus"').replace('ref:1', 'anything') + "\n")
    assert read_evalset(path)[0].example_id == "anything"


def test_inputs_longer_than_the_tokenizers_maximum_are_cut_knowingly_and_say_nothing(tmp_path, capfd):
    base = tiny_reward_model(tmp_path / "m", positions=512)
    tokenizer = AutoTokenizer.from_pretrained(base, model_max_length=32)  # as real tokenizers say (MiniLM: 512)
    tokenizer.save_pretrained(base)
    model, tokenizer = load_reward_model(base), AutoTokenizer.from_pretrained(base)
    capfd.readouterr()
    scores = score_examples(model, tokenizer, read_evalset(LLMBAR)[:5])
    assert len(scores) == 5 and capfd.readouterr().err == ""  # not "Token indices sequence length is longer …"


def test_one_thread_leaving_a_quiet_block_leaves_another_quiet():
    from transformers.utils import logging as hf_logging

    from prefpipe.loading import quiet_transformers

    before = hf_logging.get_verbosity()
    first, second = quiet_transformers(), quiet_transformers()  # two nightly units, on two threads
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first unit is done; the second still tokenizes long texts
    assert hf_logging.get_verbosity() == hf_logging.ERROR
    second.__exit__(None, None, None)
    assert hf_logging.get_verbosity() == before
