"""Sampling from causal LMs (prefpipe.sampling): generate gets exactly the setting, the recorded log-probabilities
are the model's own (and the warped ones the hand-computed ones), seeds repeat, threads do not interfere."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from prefpipe.adaptors import Adaptor, Setting
from prefpipe.dpo import sequence_logprobs
from prefpipe.loading import load_tokenizer
from prefpipe.sampling import Recorder, generation_config, prompt_inputs, reference_samples, sample
from prefpipe.synth import tiny_reward_model


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory):
    """A tiny causal LM whose folder asks for sampling it must not get: generation_config.json with
    top_k 5, temperature 0.3 and a repetition penalty."""
    folder = tiny_reward_model(tmp_path_factory.mktemp("tradeoff") / "lm", "causal-lm", seed=4, positions=128,
                               hidden=64)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        model.lm_head.weight.mul_(2.5)  # (tied to the input embedding) sharper next-token distributions
    model.generation_config.update(do_sample=True, top_k=5, temperature=0.3, repetition_penalty=1.5)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def lm(lm_folder):
    return AutoModelForCausalLM.from_pretrained(lm_folder).eval(), load_tokenizer(lm_folder)


PROMPTS = ["question 1 about chess ?", "the answer", "question 22 about python and music ? explain it"]


def draw(lm, adaptor: str, temperature: float, seed: int = 0, samples: int = 3):
    model, tokenizer = lm
    prompt_ids = prompt_inputs(tokenizer, PROMPTS, 100)
    return prompt_ids, sample(model, prompt_ids, Setting(Adaptor.parse(adaptor), temperature), samples,
                              max_new_tokens=12, seed=seed, eos_id=tokenizer.eos_token_id,
                              pad_id=tokenizer.pad_token_id)  # one batch: the prompts left-padded


def test_generate_receives_exactly_the_setting(lm, monkeypatch):
    model, tokenizer = lm
    config = generation_config(12, tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert (config.do_sample, config.top_k, config.top_p, config.typical_p, config.temperature) == (True, 0, 1.0, 1.0,
                                                                                                     1.0)
    assert (config.epsilon_cutoff, config.eta_cutoff, config.repetition_penalty, config.min_p) == (0.0, 0.0, 1.0, None)
    seen = []
    generate = model.generate
    monkeypatch.setattr(model, "generate", lambda **kw: seen.append(kw) or generate(**kw))
    expected = {("ancestral", 1.0): [], ("ancestral", 0.5): ["TemperatureLogitsWarper"],
                ("top-k=30", 1.0): ["TopKLogitsWarper"], ("nucleus=0.9", 1.25): ["TemperatureLogitsWarper",
                                                                                  "TopPLogitsWarper"],
                ("typical=0.9", 1.0): ["TypicalLogitsWarper"], ("eta=0.0009", 0.75): ["TemperatureLogitsWarper",
                                                                                       "EtaLogitsWarper"]}
    for (adaptor, temperature), warpers in expected.items():
        seen.clear()
        draw(lm, adaptor, temperature)
        for call in seen:
            processors = call["logits_processor"]
            assert [type(p).__name__ for p in processors[1:-1]] == warpers
            assert isinstance(processors[0], Recorder) and isinstance(processors[-1], Recorder)
            assert call["generation_config"].top_k == 0 and call["generation_config"].temperature == 1.0
        assert seen and model.generation_config.top_k == 0  # the folder's generation_config.json is not used
    top_k = Adaptor.parse("top-k=30").warpers(0.5)
    assert top_k[0].temperature == 0.5 and top_k[1].top_k == 30


def test_ancestral_samples_record_the_models_own_log_probabilities(lm):
    """Nothing reshapes ancestral sampling at τ = 1: not generate's default top_k, not the folder's
    generation_config.json. The recorded log p⁺ is the model's, as a plain forward pass gives it."""
    model, tokenizer = lm
    prompt_ids, found = draw(lm, "ancestral", 1.0)
    inputs = [(prompt_ids[s.prompt] + s.tokens, len(prompt_ids[s.prompt])) for s in found]
    forced = sequence_logprobs(model, inputs, tokenizer.pad_token_id)
    for s, expected in zip(found, forced, strict=True):
        assert s.log_aligned == pytest.approx(expected, abs=1e-4)
        assert s.log_aligned_warped == pytest.approx(s.log_aligned, abs=1e-5)
    assert len({t for s in found for t in s.tokens}) > 5  # more tokens than the folder's top_k 5 would allow
    assert len(found) == 9 and [(s.prompt, s.index) for s in found] == [(i, j) for i in range(3) for j in range(3)]


@pytest.mark.parametrize("adaptor,temperature", [("top-k=4", 0.7), ("nucleus=0.8", 1.3), ("typical=0.9", 1.0),
                                                 ("eta=0.0009", 0.5)])
def test_the_warped_log_probability_is_the_hand_computed_one(lm, adaptor, temperature):
    model, _ = lm
    prompt_ids, found = draw(lm, adaptor, temperature)
    warpers = Adaptor.parse(adaptor).warpers(temperature)
    assert max(abs(s.log_aligned_warped - s.log_aligned) for s in found) > 0.1  # the warping changes something
    for s in found:
        ids = torch.tensor([prompt_ids[s.prompt] + s.tokens])
        start = len(prompt_ids[s.prompt])
        with torch.no_grad():
            logits = model(ids).logits[0].float()
        plain = warped = 0.0
        for t in range(start, ids.shape[1]):
            scores = logits[t - 1][None]
            plain += scores.log_softmax(-1)[0, ids[0, t]].item()
            if adaptor.startswith("top-k"):  # by hand: logits / τ, all but the k largest masked
                scaled = scores / temperature
                kept = scaled.masked_fill(scaled < scaled.topk(4).values[:, -1:], -float("inf"))
            else:  # the same processors, applied to the plain forward pass's logits
                kept = scores
                for warper in warpers:
                    kept = warper(ids[:, :t], kept)
            warped += kept.log_softmax(-1)[0, ids[0, t]].item()
        assert s.log_aligned == pytest.approx(plain, abs=1e-4)
        assert s.log_aligned_warped == pytest.approx(warped, abs=1e-4)
        assert s.log_aligned_warped > -float("inf")


def test_the_same_seed_draws_the_same_samples_and_another_seed_others(lm):
    _, first = draw(lm, "nucleus=0.95", 1.0, seed=7)
    _, again = draw(lm, "nucleus=0.95", 1.0, seed=7)
    _, other = draw(lm, "nucleus=0.95", 1.0, seed=8)
    assert first == again and [s.tokens for s in first] != [s.tokens for s in other]


def test_reference_samples_repeat_with_their_seed_are_cached_and_do_not_depend_on_the_other_prompts(
        lm_folder, tmp_path):
    prompts = {f"p{i}": text for i, text in enumerate(PROMPTS)}
    first = reference_samples(str(lm_folder), prompts, 4, seed=3, cache=tmp_path / "a", max_new_tokens=12)
    again = reference_samples(str(lm_folder), prompts, 4, seed=3, cache=tmp_path / "b", max_new_tokens=12)
    other = reference_samples(str(lm_folder), prompts, 4, seed=4, cache=tmp_path / "c", max_new_tokens=12)
    alone = reference_samples(str(lm_folder), {"p1": PROMPTS[1]}, 4, seed=3, cache=tmp_path / "d", max_new_tokens=12)
    assert first == again != other and len(first) == 12 and [k for k, _ in first] == [k for k, _ in other]
    assert alone == [s for s in first if s[0] == "p1"]
    assert len({t for _, t in first}) > 3  # sampled, not one greedy answer
    [cached] = (tmp_path / "d").iterdir()
    assert len(list(cached.iterdir())) == 1
    (next(cached.iterdir())).write_text('["from the cache"] ')  # a second run reads the cache
    assert reference_samples(str(lm_folder), {"p1": PROMPTS[1]}, 4, seed=3, cache=tmp_path / "d",
                             max_new_tokens=12) == [("p1", "from the cache")]


def test_samples_do_not_depend_on_other_threads_sampling_at_the_same_time(lm):
    from concurrent.futures import ThreadPoolExecutor

    settings = [("ancestral", 1.0), ("top-k=4", 0.7), ("nucleus=0.95", 1.3), ("eta=0.0009", 0.5)]
    alone = [draw(lm, *s)[1] for s in settings]
    with ThreadPoolExecutor(4) as pool:  # as the threads of a Dask worker run a run's settings
        together = list(pool.map(lambda s: draw(lm, *s)[1], settings))
    assert together == alone
