"""The job configs (prefpipe.config): every bad value is a one-line error naming its flag; a run's config reads
back as it was written; the defaults are the documented ones."""

from __future__ import annotations

import pytest

from prefpipe.config import Combination, TiltConfig, TradeoffConfig, TrainConfig
from prefpipe.errors import InputError


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


@pytest.mark.parametrize("values,message", [
    ({"loss": "hinge"}, "--loss: must be one of bt, bt-margin, plackett-luce, got 'hinge'"),
    ({"epochs": 0}, "--epochs: must be at least 1, got 0"),
    ({"warmup": 1.0}, "--warmup: must be in [0, 1), got 1.0"),
    ({"loss": "plackett-luce", "center_coefficient": 0.01},
     "--center-coefficient: applies to the pairwise losses (bt, bt-margin), not plackett-luce, got 0.01"),
    ({"base": "/nowhere"}, "/nowhere: --base: no such model folder"),
])
def test_a_bad_training_option_is_a_one_line_error_naming_its_flag(values, message):
    with pytest.raises(InputError) as error:
        TrainConfig(**values)
    assert str(error.value) == message


def test_a_training_config_reads_back_as_it_was_written(tmp_path):
    config = TrainConfig(loss="bt-margin", epochs=3, lr=1e-4, margin_scale=0.5)
    config.save(tmp_path)
    assert TrainConfig.load(tmp_path) == config
    with pytest.raises(InputError, match="not a training run folder"):
        TrainConfig.load(tmp_path / "elsewhere")


@pytest.mark.parametrize("values,flag", [({"betas": (0.0,)}, "--beta"), ({"betas": ()}, "--beta"),
                                         ({"ns": (0,)}, "--n"), ({"ns": (2.5,)}, "--n")])
def test_tilt_settings_out_of_range_are_refused(values, flag):
    with pytest.raises(InputError, match=f"^{flag}: "):
        TiltConfig(**values)


def test_a_combination_has_a_weight_and_a_quantile_per_model_and_says_what_it_computes():
    combo = Combination("helpful-and-safe", ("helpful", "safe"), quantiles=(0.9,))
    assert combo.weights == (1.0, 1.0) and combo.quantiles == (0.9, 0.9) and combo.and_of_properties
    assert combo.definition().startswith("1·u(helpful) + 1·u(safe); r_ref per prompt: the 0.9, 0.9 quantile")
    with pytest.raises(InputError, match=r"^--weight: one per model: 2 models, 1 values"):
        Combination("c", ("helpful", "safe"), weights=(1.0,))
    with pytest.raises(InputError, match=r"^--quantile: must be between 0 and 1"):
        Combination("c", ("helpful",), quantiles=(1.0,))
    assert Combination.from_row({"name": "old", "models": ["a", "b"], "quantile": 0.8}).quantiles == (0.8, 0.8)
