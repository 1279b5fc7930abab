"""Training on real warehouse snapshots with tiny models: inputs, batches, determinism, resume, DDP, metrics."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import hypothesis
import pytest
import torch
from hypothesis import strategies as st
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from prefpipe import metrics, train, training_data
from prefpipe.batches import token_batches
from prefpipe.config import TrainConfig
from prefpipe.errors import InputError
from prefpipe.ingest import ingest_file
from prefpipe.inputs import InputBuilder, encode_annotations, prompt_and_response, render_text
from prefpipe.loading import load_reward_model
from prefpipe.model import pad, score
from prefpipe.synth import synthetic_batch, tiny_reward_model
from prefpipe.training_data import RankedAnnotation


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {kind: tiny_reward_model(root / kind, kind) for kind in ("encoder", "decoder")}


@pytest.fixture(scope="module")
def tokenizers(tiny) -> dict:
    return {kind: AutoTokenizer.from_pretrained(path) for kind, path in tiny.items()}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory, settings_factory) -> Path:
    """A warehouse snapshot of 200 synthetic annotations (learnable: quality shows in the words)."""
    from prefpipe.warehouse import Warehouse

    root = tmp_path_factory.mktemp("snapshot")
    settings = settings_factory(root, splits=(0.7, 0.15, 0.15))
    with Warehouse.open(settings) as wh:
        summary = ingest_file(wh, synthetic_batch(root / "batch.jsonl", 200, bad_lines=0), settings, "auto")
        assert summary.pairs > 1000
        path = root / training_data.SNAPSHOT
        described = training_data.write_snapshot(wh.con, path)
        assert sum(described["pairs"].values()) == summary.pairs  # every pair of the warehouse, once
    return path


def run_folder(tmp_path: Path, snapshot: Path, **config) -> Path:
    run_dir = tmp_path / config.pop("name", "run")
    run_dir.mkdir()
    (run_dir / training_data.SNAPSHOT).write_bytes(snapshot.read_bytes())
    TrainConfig(**{"lr": 3e-3, "epochs": 2, "max_tokens": 2048} | config).save(run_dir)
    return run_dir


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return AutoModelForSequenceClassification.from_pretrained(run_dir).state_dict()


def assert_same_weights(a: Path, b: Path, atol: float) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert worst <= atol, worst


# -- inputs ---------------------------------------------------------------------------------------------

def test_transcript_input_and_left_truncation(tiny):
    tokenizer = AutoTokenizer.from_pretrained(tiny["encoder"])
    messages = [{"role": "user", "content": "question about python"}, {"role": "assistant", "content": "the answer"},
                {"role": "user", "content": "and chess ?"}]
    head, tail = prompt_and_response(tokenizer, messages, "helpful clear")
    assert head + tail == ("User: question about python\n\nAssistant: the answer\n\nUser: and chess ?"
                           "\n\nAssistant: helpful clear")
    assert prompt_and_response(tokenizer, "why ?", "wrong") == ("User: why ?\n\nAssistant:", " wrong")

    builder = InputBuilder(tokenizer, max_length=8)
    [ids] = builder.build([(messages, "helpful clear")])
    words = tokenizer.convert_ids_to_tokens(ids)
    # 8 = [CLS] + the end of the prompt + the whole response + [SEP]: the prompt is cut from the left
    assert words == ["[CLS]", "chess", "?", "assistant", ":", "helpful", "clear", "[SEP]"]
    [ids] = InputBuilder(tokenizer, max_length=4).build([(messages, "helpful clear concise")])
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "helpful", "clear", "[SEP]"]  # then the response's end
    with pytest.raises(InputError, match="max_length"):
        InputBuilder(tokenizer, max_length=3)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])  # [CLS] … [SEP] around the text, or nothing
@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(prompt=st.integers(0, 40), response=st.integers(0, 40), max_length=st.integers(4, 48))
def test_an_input_that_fits_is_kept_whole_and_a_longer_one_keeps_the_prompts_end(tokenizers, kind, prompt, response,
                                                                                  max_length):
    builder = InputBuilder(tokenizers[kind], max_length)
    p, r = list(range(1000, 1000 + prompt)), list(range(2000, 2000 + response))
    ids, start = builder.truncate(p, r)
    room = max_length - len(builder.prefix) - len(builder.suffix)
    if prompt + response <= room:
        assert ids == builder.prefix + p + r + builder.suffix  # whole
    elif response <= room:
        assert ids == builder.prefix + p[prompt - (room - response):] + r + builder.suffix  # the prompt's end
    else:
        assert ids == builder.prefix + r[:room] + builder.suffix  # the response's start, no prompt
    assert len(ids) <= max_length and ids[start:len(ids) - len(builder.suffix)] == r[:room]


def test_chat_template_is_used_when_the_tokenizer_has_one(tiny):
    tokenizer = AutoTokenizer.from_pretrained(tiny["decoder"])
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
                               "{% if add_generation_prompt %}<assistant> {% endif %}")
    head, tail = prompt_and_response(tokenizer, "why ?", "because")
    assert (head, tail) == ("<user> why ? <assistant> ", "because ")
    assert InputBuilder(tokenizer, 16).prefix == []  # the template writes its own special tokens


def test_pairs_identical_after_truncation_are_left_out_and_counted(tiny):
    tokenizer = AutoTokenizer.from_pretrained(tiny["encoder"])
    annotation = RankedAnnotation("a1", "train", "question", "ann", "src", "b", ["helpful clear wrong", "helpful clear rude", "vague"],
                [1, 2, 3], [(0, 1, 1, 1 / 3), (0, 2, 2, 1 / 3), (1, 2, 1, 1 / 3)])
    [encoded], identical = encode_annotations(InputBuilder(tokenizer, max_length=4), [annotation])  # room for 2 words
    assert identical == 1  # "helpful clear" twice: that pair is left out, its input forwarded once
    assert len(encoded.inputs) == 2 and encoded.pairs == [(0, 1, 2, 1 / 3), (0, 1, 1, 1 / 3)]
    assert encoded.groups == [[0], [1]]  # Plackett-Luce sees the two distinct inputs, best first


def test_token_batches_are_whole_units_within_budget_and_deterministic(snapshot, tiny):
    tokenizer = AutoTokenizer.from_pretrained(tiny["encoder"])
    encoded, _ = encode_annotations(InputBuilder(tokenizer, 512), training_data.read_snapshot(snapshot, "train"))
    budget = 1024
    batches = token_batches(encoded, budget, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(len(encoded)))  # every annotation once per epoch
    for batch in batches:
        padded = sum(len(encoded[i].inputs) for i in batch) * max(encoded[i].width for i in batch)
        assert padded <= budget or len(batch) == 1
    assert batches == token_batches(encoded, budget, seed=1, epoch=0)
    assert batches != token_batches(encoded, budget, seed=1, epoch=1)
    real = sum(e.tokens for e in encoded)
    padded = sum(sum(len(encoded[i].inputs) for i in b) * max(encoded[i].width for i in b) for b in batches)
    assert real / padded > 0.9  # lengths bucketed: under 10% padding


# -- training -------------------------------------------------------------------------------------------

def test_training_is_deterministic_learns_and_saves_a_plain_hf_model(tmp_path, snapshot, tiny):
    a = run_folder(tmp_path, snapshot, base=str(tiny["encoder"]), name="a")
    b = run_folder(tmp_path, snapshot, base=str(tiny["encoder"]), name="b")
    figures = train.fit(a, progress=False)
    train.fit(b, progress=False)
    assert_same_weights(a, b, atol=0.0)  # seeded and deterministic on CPU
    assert figures["comparisons"] == 2 * sum(1 for u in training_data.read_snapshot(snapshot, "train") for _ in u.pairs)
    assert not (a / train.CHECKPOINT).exists()

    results = metrics.held_out_metrics(a)
    assert results["validation"]["accuracy"] > 0.7 and results["test"]["accuracy"] > 0.7  # chance is 0.5
    assert set(results["test"]["by_annotator"]) == {f"ann-{i}" for i in range(4)}
    assert (a / metrics.PLOT).read_bytes()[:4] == b"\x89PNG"
    config = json.loads((a / "config.json").read_text())["prefpipe"]
    assert config["data_snapshot"]["hash"] == training_data.describe(training_data.read_snapshot(snapshot))["hash"]
    assert config["reward_stats_split"] == "validation" and config["reward_std"] > 0

    # plain transformers, no custom code, gives prefpipe's rewards; the mean/std match the recorded ones
    tokenizer = AutoTokenizer.from_pretrained(a)
    plain = AutoModelForSequenceClassification.from_pretrained(a).eval()
    held_out = training_data.read_snapshot(snapshot, "validation")
    encoded, _ = encode_annotations(InputBuilder(tokenizer, 512), held_out)
    inputs = [s for e in encoded for s in e.inputs]
    ours = score(load_reward_model(a), inputs, tokenizer.pad_token_id, max_tokens=256)
    by_input = {tuple(s): v for s, v in zip(inputs, ours, strict=True)}
    with torch.inference_mode():
        for text in [render_text(tokenizer, u.prompt, t) for u in held_out[:5] for t in u.texts]:
            ids = tokenizer(text, return_tensors="pt")  # one string, as any other tool would tokenize it
            assert math.isclose(plain(**ids).logits[0, 0].item(), by_input[tuple(ids["input_ids"][0].tolist())],
                                abs_tol=1e-5)
    assert math.isclose(config["reward_mean"], sum(ours) / len(ours), abs_tol=1e-5)


def test_resume_after_a_crash_ends_where_an_uninterrupted_run_ends(tmp_path, snapshot, tiny):
    straight = run_folder(tmp_path, snapshot, base=str(tiny["encoder"]), name="straight", checkpoint_every=3)
    crashed = run_folder(tmp_path, snapshot, base=str(tiny["encoder"]), name="crashed", checkpoint_every=3)
    train.fit(straight, progress=False)

    def crash(step):
        if step == 7:
            raise KeyboardInterrupt  # killed after step 7: the checkpoint of step 6 is on disk

    with pytest.raises(KeyboardInterrupt):
        train.fit(crashed, progress=False, on_step=crash)
    assert torch.load(crashed / train.CHECKPOINT, weights_only=True)["step"] == 6  # tensors and plain values only
    figures = train.fit(crashed, resume=True, progress=False)
    assert figures["resumed_at"] == 6
    assert_same_weights(straight, crashed, atol=1e-6)
    with pytest.raises(InputError, match="no checkpoint"):
        train.fit(crashed, resume=True, progress=False)


class RunsCode:
    """A pickle that runs a command when it is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_checkpoint_is_refused_and_never_runs_code(tmp_path, snapshot, tiny):
    run_dir = run_folder(tmp_path, snapshot, base=str(tiny["encoder"]))
    marker = tmp_path / "pwned"
    torch.save({"step": 1, "fingerprint": RunsCode(marker)}, run_dir / train.CHECKPOINT)
    with pytest.raises(InputError, match=r"checkpoint.pt: not a checkpoint prefpipe wrote \(refused without "
                                         r"running it\)"):
        train.fit(run_dir, resume=True, progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("loss, options", [("bt-margin", {"margin_scale": 0.5}), ("plackett-luce", {}),
                                           ("bt", {"center_coefficient": 0.1})])
def test_every_loss_learns(tmp_path, snapshot, tiny, loss, options):
    run_dir = run_folder(tmp_path, snapshot, base=str(tiny["encoder"]), loss=loss, **options)
    train.fit(run_dir, progress=False)
    results = metrics.held_out_metrics(run_dir)
    assert results["validation"]["accuracy"] > 0.7, results["validation"]
    if options.get("center_coefficient"):
        assert abs(results["reward_mean"]) < 0.5 * results["reward_std"]  # centring keeps rewards near zero


def test_decoder_backbone_trains_and_reloads_with_plain_transformers(tmp_path, snapshot, tiny):
    run_dir = run_folder(tmp_path, snapshot, base=str(tiny["decoder"]), epochs=1)
    train.fit(run_dir, progress=False)
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    plain = AutoModelForSequenceClassification.from_pretrained(run_dir).eval()
    annotation = training_data.read_snapshot(snapshot, "test")[0]
    encoded, _ = encode_annotations(InputBuilder(tokenizer, 512), [annotation])
    ours = score(load_reward_model(run_dir), encoded[0].inputs, tokenizer.pad_token_id)
    with torch.inference_mode():
        ids, mask = pad(encoded[0].inputs, tokenizer.pad_token_id)  # right padding, pad ≠ EOS
        assert torch.allclose(plain(input_ids=ids, attention_mask=mask).logits[:, 0], torch.tensor(ours), atol=1e-5)


def test_bad_options_name_the_flag(tmp_path, tiny):
    with pytest.raises(InputError, match="--loss: must be one of bt, bt-margin, plackett-luce, got 'hinge'"):
        TrainConfig(base=str(tiny["encoder"]), loss="hinge")
    with pytest.raises(InputError, match="--base: not a model folder"):
        TrainConfig(base=str(tmp_path))
    with pytest.raises(InputError, match="--center-coefficient: applies to the pairwise losses"):
        TrainConfig(base=str(tiny["encoder"]), loss="plackett-luce", center_coefficient=0.1)


@pytest.mark.slow
def test_two_process_gloo_run_equals_one_process_accumulating_two(tmp_path, snapshot, tiny):
    """torchrun, 2 CPU processes (gloo): each step averages the same 2 batches as 1 process with accumulate=2."""
    one = run_folder(tmp_path, snapshot, base=str(tiny["encoder"]), name="one", accumulate=2, epochs=1)
    two = run_folder(tmp_path, snapshot, base=str(tiny["encoder"]), name="two", epochs=1)
    train.fit(one, progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
                           f"--master_port={port}", "-m", "prefpipe.train", str(two), "--no-progress"],
                          capture_output=True, text=True, timeout=300, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((two / train.FIGURES).read_text())
    assert figures["processes"] == 2
    assert figures["steps"] == json.loads((one / train.FIGURES).read_text())["steps"]
    # Equal up to float rounding (an all-reduce sums in another order), which Adam amplifies where
    # gradients are near zero: compare the distance between the runs with the distance trained.
    base, w1, w2 = weights(tiny["encoder"]), weights(one), weights(two)
    moved = torch.cat([(w1[k] - base[k]).flatten() for k in w1]).norm()
    apart = torch.cat([(w1[k] - w2[k]).flatten() for k in w1]).norm()
    assert apart < 1e-3 * moved, (apart, moved)


# -- metrics --------------------------------------------------------------------------------------------

def test_pair_metrics_by_hand():
    deltas = [2.0, 0.0, -1.0, 3.0]
    m = metrics.pair_metrics(deltas)
    assert m["accuracy"] == 0.5  # strict: the tie (0.0) counts as wrong
    expected_loss = sum(math.log1p(math.exp(-d)) for d in deltas) / 4
    assert math.isclose(m["log_loss"], expected_loss, rel_tol=1e-12)
    # each pair both ways: p = σ(Δ) true, 1 − p false; 10 bins of p
    s = [1 / (1 + math.exp(-d)) for d in deltas]  # 0.881, 0.5, 0.269, 0.953
    bins = {}
    for p, true in [(p, 1) for p in s] + [(1 - p, 0) for p in s]:
        bins.setdefault(min(int(p * 10), 9), []).append((p, true))
    ece = sum(len(v) / 8 * abs(sum(t for _, t in v) / len(v) - sum(p for p, _ in v) / len(v)) for v in bins.values())
    assert math.isclose(m["ece"], ece, rel_tol=1e-12)
    # a hand check of one bin: 0.5 (the tie, true) and 0.5 (its mirror, false) share bin 5 and are calibrated
    assert bins[5] == [(0.5, 1), (0.5, 0)]
    assert metrics.pair_metrics([]) == {"pairs": 0, "accuracy": None, "log_loss": None, "ece": None}
    assert metrics.expected_calibration_error([0.0] * 10) == 0.0  # σ(0) = 0.5 is right half the time
