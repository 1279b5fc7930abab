"""Synthetic annotation batches in the canonical format, with learnable quality.

Each response has a hidden quality q in [0, 1]; its words are drawn from a good vocabulary with
probability q and from a bad one otherwise, so quality is visible in the words. Annotators rank by
quality plus noise; some tie, drop a response as too hard to rank, or write an edit that is best.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    BertConfig,
    GPT2Config,
    PreTrainedTokenizerFast,
)

from prefpipe.evalsets import Example
from prefpipe.lake import Run, write_results
from prefpipe.registry import register_model
from prefpipe.results import result_tables
from prefpipe.tables import publish_tables
from prefpipe.warehouse import Warehouse

GOOD = ("accurate clear concise correct helpful precise relevant "
        "thorough honest specific structured cited careful complete polite").split()
BAD = ("wrong vague rambling rude irrelevant incorrect evasive "
        "sloppy confusing unsafe repetitive off-topic careless incomplete dismissive").split()
NEUTRAL = ["the", "answer", "explains", "this", "and", "then", "it", "with", "some", "of", "a", "about"]
START = datetime(2026, 11, 2, 9, tzinfo=UTC)  # a Monday
TOPICS = ["python", "taxes", "gardening", "sleep", "travel", "chess", "cooking", "physics", "history", "music"]


def synthetic_batch(path: Path | str, annotations: int = 300, *, seed: int = 0, annotators: int = 4,
                    k: tuple[int, int] = (2, 9), words: int = 10, second_opinions: float = 0.2,
                    bad_lines: int = 3) -> Path:
    """Write a canonical JSONL batch to PATH; `bad_lines` malformed lines are mixed in."""
    rng = random.Random(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        written = 0
        while written < annotations:
            prompt_id = f"p-{seed}-{written}"
            prompt = f"Question {written} about {rng.choice(TOPICS)}?"
            qualities = [rng.random() for _ in range(rng.randint(*k))]
            texts = [_text(rng, q, words) + f" ({written}.{j})" for j, q in enumerate(qualities)]
            judges = rng.sample(range(annotators), 2 if rng.random() < second_opinions else 1)
            for judge in judges[: annotations - written]:
                line = _annotation(rng, prompt_id, prompt, f"ann-{judge}", qualities, texts,
                                   START + timedelta(minutes=90 * written))  # 400 annotations: four weeks
                f.write(json.dumps(line) + "\n")
                written += 1
        for i in range(bad_lines):
            f.write(['{"prompt_id": "broken", "responses": [', '{"prompt_id": "p-bad", "prompt": "x", '
                     '"responses": [{"response_id": "a", "text": "t", "rank": "1"}, '
                     '{"response_id": "b", "text": "u", "rank": 2}]}', '[1, 2, 3]'][i % 3] + "\n")
    return path


def _text(rng: random.Random, quality: float, words: int) -> str:
    return " ".join(rng.choice(GOOD if rng.random() < quality else BAD) if rng.random() < 0.6
                    else rng.choice(NEUTRAL) for _ in range(words))


def _annotation(rng: random.Random, prompt_id: str, prompt: str, annotator: str,
                qualities: list[float], texts: list[str], annotated_at: datetime) -> dict:
    noisy = [q + rng.gauss(0, 0.1) for q in qualities]
    order = sorted(range(len(noisy)), key=lambda j: -noisy[j])
    ranks, rank = {}, 0
    for place, j in enumerate(order):
        tie = place > 0 and rng.random() < 0.1
        rank = rank if tie else rank + 1
        ranks[j] = rank
    responses = [{"response_id": chr(97 + j), "text": texts[j], "rank": ranks[j]} for j in range(len(texts))]
    if len(responses) > 2 and rng.random() < 0.1:
        dropped = rng.choice(responses)
        del dropped["rank"]
        dropped.update(dropped=True, drop_reason="too hard to rank")
    if len(responses) < 9 and rng.random() < 0.1:  # 9: the default max_responses
        best = responses[order[0]]
        responses.append({"response_id": "edit", "text": best["text"] + " " + " ".join(rng.sample(GOOD, 3)),
                          "edited_from": best["response_id"]})
    return {"prompt_id": prompt_id, "prompt": prompt, "annotator_id": annotator,
            "annotation_id": f"{prompt_id}/{annotator}", "responses": responses,
            "metadata": {"annotated_at": annotated_at.isoformat()}}


def tiny_reward_model(path: Path | str, kind: str = "encoder", *, hidden: int = 32, layers: int = 2,
                      positions: int = 512, seed: int = 0) -> Path:
    """A small randomly initialised reward model with a word-level tokenizer of the synthetic vocabulary,
    saved as a Hugging Face folder: `encoder` (BERT) or `decoder` (GPT-2); `causal-lm` is a GPT-2 language
    model instead (a DPO policy or its reference). For tests and benchmarks."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    words = sorted({*GOOD, *BAD, *NEUTRAL, *TOPICS, "question", "about", "user", "assistant", "system",
                    *"0123456789", *":?.()"})
    vocab = {w: i for i, w in enumerate(specials + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(True)])
    if kind == "encoder":
        backend.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
            ("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", eos_token="[SEP]")
    torch.manual_seed(seed)
    size = {"vocab_size": len(vocab), "pad_token_id": 0}
    config = (BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                         intermediate_size=2 * hidden, max_position_embeddings=positions, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0, **size)
              if kind == "encoder" else
              GPT2Config(n_embd=hidden, n_layer=layers, n_head=2, n_positions=positions, resid_pdrop=0.0,
                         embd_pdrop=0.0, attn_pdrop=0.0, eos_token_id=vocab["[SEP]"], bos_token_id=vocab["[CLS]"],
                         **size))
    if kind == "causal-lm":
        AutoModelForCausalLM.from_config(config).save_pretrained(path)
    else:
        config.num_labels = 1
        AutoModelForSequenceClassification.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


JUDGE_CHAT = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
              "{% if add_generation_prompt %}assistant: {% endif %}")


def tiny_judge(path: Path | str, *, hidden: int = 32, layers: int = 2, positions: int = 1024, seed: int = 0,
               vocab_size: int | None = None) -> Path:
    """A small random GPT-2 language model with a chat template and a word-level tokenizer that reads the
    synthetic vocabulary, the judge prompts' words and the verdict tokens "[[", "A", "B", "]]" (cased, decoded
    without spaces, so that a verdict reads "[[A]]"): a generative judge for tests and benchmarks. VOCAB_SIZE:
    its embedding's rows (default: the tokenizer's; GPT-2's is 50257), for a model shaped like a real one."""
    words = sorted({*GOOD, *BAD, *NEUTRAL, *TOPICS, *"0123456789", *":?.()", "[[", "]]", "A", "B", "C", "D"})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[EOS]", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(True)])
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                        eos_token="[EOS]")
    tokenizer.chat_template = JUDGE_CHAT
    torch.manual_seed(seed)
    config = GPT2Config(n_embd=hidden, n_layer=layers, n_head=2, n_positions=positions, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, vocab_size=max(len(vocab), vocab_size or 0), pad_token_id=0,
                        eos_token_id=vocab["[EOS]"], bos_token_id=vocab["[EOS]"])
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


LAKE_SETS = {"bench": ("alpacaeval-easy", "llmbar-natural", "refusals-dangerous", "math-prm"),  # a subset a section
             "house": ("helpfulness", "harmlessness")}  # custom subsets


def synthetic_lake(results: Path | str, models: dict[str, float], nights: list, *, examples: int = 24,
                   drops: dict[tuple[str, str], float] | None = None, sets: dict[str, tuple[str, ...]] = LAKE_SETS,
                   contaminated: dict[tuple[str, str], int] | None = None) -> None:
    """Nightly results of MODELS (id -> skill, about 0-2) on SETS (name -> subsets; `examples` per subset), one
    run per night of NIGHTS (dates). A model's scores are the same every night but rise a little (no
    regression), except that DROPS {(model, set): skill lost} lowers the last night's: a planted regression.
    CONTAMINATED {(model, set): N}: the set's first N examples matched the model's training data (and none of
    the other pairs'); without it, contamination is not known."""
    for name, subsets in sets.items():
        bench = [Example(f"{s}-{i}", s, f"question {i} of {s}", ("a" * (10 + i % 7),), ("b" * (12 - i % 5),))
                 for s in subsets for i in range(examples)]
        for model_id, skill in models.items():
            rng = random.Random(f"{model_id}/{name}")
            base = [(rng.gauss(skill, 1), rng.gauss(0, 1)) for _ in bench]
            for night, day in enumerate(nights):
                lift = 0.05 * night - ((drops or {}).get((model_id, name), 0) if night == len(nights) - 1 else 0)
                run = Run(f"{day:%Y%m%d}-synth", day, model_id, f"hash-{model_id}", name, f"hash-{name}", "synthetic")
                scores = [([c + lift], [r]) for c, r in base]
                matched = None if contaminated is None else [e.example_id for e in
                                                             bench[:contaminated.get((model_id, name), 0)]]
                write_results(results, run, *result_tables(run, bench, scores, "rewardbench", matched))


def synthetic_registry(settings, model_ids: list[str]) -> None:
    """Register MODEL_IDS as if trained here (their records only: config, snapshot, held-out metrics) and
    publish the warehouse tables, for a report's provenance."""
    with Warehouse.open(settings) as wh:
        for i, model_id in enumerate(model_ids):
            config = {"base": "sentence-transformers/all-MiniLM-L6-v2", "loss": "bt", "lr": 1e-4, "epochs": 2,
                      "batch_size": 16, "seed": i}
            snapshot = {"batch_ids": [f"batch-{i:04d}"], "pairs": {"train": 1000 + i}, "hash": f"{i:064x}"}
            metrics = {"test": {"accuracy": 0.7 + i / 1000, "log_loss": 0.6, "ece": 0.05, "pairs": 100}}
            register_model(wh, model_id, settings.models / model_id, config, snapshot, metrics)
        publish_tables(wh.con, settings.tables)
