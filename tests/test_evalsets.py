"""Evaluation sets: reading RewardBench rows, and scores that do not depend on the batch."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SHARED_DATA
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from prefpipe.data import render_text
from prefpipe.errors import InputError
from prefpipe.evalsets import read_evalset, score_examples
from prefpipe.model import load_reward_model
from prefpipe.synth import tiny_reward_model

LLMBAR = SHARED_DATA / "evalsets" / "llmbar-rewardbench.jsonl"


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_llmbar_scores_equal_plain_transformers_on_each_text_alone(tmp_path, kind):
    raw = [json.loads(line) for line in LLMBAR.read_text().splitlines()]
    examples = read_evalset(LLMBAR)
    assert len(examples) == len(raw) == 419
    assert [e.subset for e in examples] == [r["subset"] for r in raw]
    base = tiny_reward_model(tmp_path / kind, kind, positions=2048)  # no LLMBar text is cut
    model, tokenizer = load_reward_model(base), AutoTokenizer.from_pretrained(base)
    scores = score_examples(model, tokenizer, examples, max_tokens=64 * 256)  # batches of many texts
    plain = AutoModelForSequenceClassification.from_pretrained(base).eval()
    checked = 0
    with torch.inference_mode():
        for e, (chosen, rejected) in list(zip(examples, scores, strict=True))[::7]:  # every 7th: 60 examples
            for text, ours in zip(e.chosen + e.rejected, chosen + rejected, strict=True):
                alone = plain(**tokenizer(render_text(tokenizer, e.prompt, text), return_tensors="pt")).logits[0, 0]
                assert abs(alone.item() - ours) <= 1e-4
                checked += 1
    assert checked == 2 * len(examples[::7])
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
