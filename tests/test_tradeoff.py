"""The probability–quality trade-off: the corpus identity on an exact synthetic tilt, the toy's statistics
against pandas, the sampling adaptors as generate receives them, and the log-probabilities a sample records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM

from prefpipe.adaptors import Adaptor, Setting
from prefpipe.config import TradeoffConfig
from prefpipe.dpo import sequence_logprobs
from prefpipe.errors import InputError
from prefpipe.model import load_tokenizer
from prefpipe.sampling import Recorder, generation_config, prompt_inputs, reference_samples, sample
from prefpipe.synth import tiny_reward_model
from prefpipe.tradeoff import ToyConfig, corpus_means, draw_counts, pearson, resample, spearman, toy

OUTCOMES, BETA = 40, 0.7


def tilt(seed: int = 0):
    """An exact tilt over a finite set: prior p, reward r, p⁺ = p·exp(r/β)/Z."""
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.ones(OUTCOMES))
    reward = rng.normal(0, 2, OUTCOMES)
    weights = prior * np.exp(reward / BETA)
    return prior, reward, weights / weights.sum(), np.log(weights.sum())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=OUTCOMES, max_size=OUTCOMES).filter(any), st.integers(0, 3))
def test_the_corpus_identity_holds_for_any_corpus(counts, seed):
    prior, reward, aligned, log_z = tilt(seed)
    log_prior, mean_reward, log_aligned = corpus_means(np.array([counts], dtype=float), np.log(prior), reward,
                                                       np.log(aligned))[0]
    assert log_prior + mean_reward / BETA == pytest.approx(log_z + log_aligned, abs=1e-9)


def test_typical_corpora_lie_within_epsilon_of_the_line_and_reward_falls_with_prior_likelihood():
    prior, reward, aligned, log_z = tilt()
    entropy = float(-(aligned * np.log(aligned)).sum())
    rng = np.random.default_rng(1)
    counts = rng.multinomial(400, aligned, size=4000).astype(float)
    means = corpus_means(counts, np.log(prior), reward, np.log(aligned))
    epsilon = 0.01
    typical = np.abs(means[:, 2] + entropy) < epsilon
    assert typical.sum() >= 50  # enough to see the line
    distance = np.abs(means[typical, 0] + means[typical, 1] / BETA - (log_z - entropy))
    assert (distance < epsilon).all()
    assert not (np.abs(means[:, 0] + means[:, 1] / BETA - (log_z - entropy)) < epsilon).all()  # atypical ones stray
    assert spearman(means[typical, 0], means[typical, 1]) < -0.9  # corpus level: the trade-off
    assert pearson(means[typical, 0], means[typical, 1]) < -0.9


def test_the_toy_shows_the_trade_off_at_corpus_level_and_not_at_string_level():
    result = toy(ToyConfig(corpora=200, draws=20_000, epsilon=0.005))  # the paper's distributions, fewer corpora
    figures = result.figures()
    assert figures["entropy_aligned"] == pytest.approx(5.01, abs=0.005)  # p⁺ and p are the paper's exactly
    assert figures["entropy_prior"] == pytest.approx(6.87, abs=0.005)
    assert figures["string_spearman"] > 0.3 and figures["string_pearson"] > 0.3
    assert figures["corpus_spearman"] < -0.5 and figures["corpus_pearson"] < -0.5
    assert np.abs(result.means[result.typical, 2] + result.entropy_aligned).max() < 0.005
    assert len(result.resampled) % 100 == 0 and set(result.resampled) <= set(np.flatnonzero(result.typical))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5000), st.integers(2, 300), st.floats(0.05, 5))
def test_drawn_counts_are_numpys_choice_draws(seed, draws, outcomes, alpha):
    p = np.random.RandomState(seed % 1000).dirichlet([alpha] * outcomes)
    expected = np.bincount(np.random.RandomState(seed).choice(outcomes, draws, p=p), minlength=outcomes)
    assert draw_counts(p, draws, seed).tolist() == expected.tolist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-50_000, 0).map(lambda i: i / 1000), min_size=2, max_size=80), st.integers(1, 12),
       st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_resampling_equals_pandas_cut_then_groupby_sample(values, bins, per_bin, seed):
    x = np.array(values)
    config = ToyConfig(bins=bins, per_bin=per_bin, seed=seed)
    ours = resample(x, np.ones(len(x), dtype=bool), config)
    frame = pd.DataFrame({"x": x, "bin": pd.cut(x, bins=bins)})
    theirs = frame.groupby("bin", observed=True).sample(n=per_bin, replace=True, random_state=seed).index
    assert ours.tolist() == theirs.tolist()


@pytest.mark.filterwarnings("ignore:An input array is constant")
@settings(max_examples=60, deadline=None)
@example([(0, 0.0), (0, 0.0), (1, 2.225073858507e-311)])  # subnormal deviations: no underflow to "constant"
@given(st.lists(st.tuples(st.integers(-5, 5), st.floats(-1e6, 1e6, allow_nan=False)), min_size=3, max_size=50))
def test_correlations_equal_pandas_with_ties(pairs):
    x, y = np.array([p[0] for p in pairs], dtype=float), np.array([p[1] for p in pairs])
    frame = pd.DataFrame({"x": x, "y": y})
    for ours, method in ((spearman(x, y), "spearman"), (pearson(x, y), "pearson")):
        theirs = frame["x"].corr(frame["y"], method=method)
        assert (np.isnan(ours) and np.isnan(theirs)) or ours == pytest.approx(theirs, abs=1e-9)


# -- sampling from a tiny causal LM --------------------------------------------------------------------

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


@pytest.mark.parametrize("given,reason", [
    ({"temperatures": (0.5, 0)}, "--temperature: every temperature must be a finite number of at least 0.0001, got 0"),
    ({"temperatures": (-1,)}, "--temperature: every temperature must be a finite number of at least 0.0001, got -1"),
    ({"temperatures": (1e-300,)}, "--temperature: every temperature must be a finite number of at least 0.0001"),
    ({"temperatures": (float("inf"),)}, "--temperature: every temperature must be a finite number of at least"),
    ({"adaptors": ("nucleus=1.5",)}, "--adaptor: nucleus's p must be in (0, 1], got 1.5"),
    ({"adaptors": ("nucleus=0",)}, "--adaptor: nucleus's p must be in (0, 1], got 0"),
    ({"adaptors": ("beam=4",)}, "--adaptor: must be one of ancestral, top-k, nucleus, typical, eta"),
    ({"adaptors": ("top-k=0",)}, "--adaptor: top-k's k must be at least 1, got 0"),
    ({"adaptors": ("top-k=2.5",)}, "--adaptor: top-k needs =k, a whole number, got 'top-k=2.5'"),
    ({"adaptors": ("ancestral=1",)}, "--adaptor: ancestral sampling takes no value"),
    ({"adaptors": ("top-k=30", "top-k=30")}, "--adaptor: each one once, got top-k=30, top-k=30"),
    ({"samples": 0}, "--samples: must be a whole number of at least 1, got 0"),
    ({"prompts": 0}, "--prompts: must be a whole number of at least 1, got 0"),
    ({"max_new_tokens": 0}, "--max-new-tokens: must be a whole number of at least 1, got 0"),
])
def test_bad_settings_fail_in_one_line(given, reason):
    with pytest.raises(InputError) as caught:
        TradeoffConfig(**given)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_the_default_grid_is_the_issues():
    names = [s.name for s in TradeoffConfig().settings]
    assert len(names) == 35 and names[:5] == [f"ancestral τ={t}" for t in ("0.5", "0.75", "1", "1.25", "1.5")]
    assert {n.split(" ")[0] for n in names} == {"ancestral", "top-k=30", "top-k=50", "nucleus=0.9", "nucleus=0.95",
                                                "typical=0.9", "eta=0.0009"}
