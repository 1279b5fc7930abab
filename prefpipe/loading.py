"""Loading models from local folders, every kind in one place: reward models (sequence classification),
causal LMs (DPO policies and their references, aligned and prior LMs, reference LMs) and their tokenizers;
the causal LMs and tokenizers that sampling reuses are cached per process. Nothing is fetched from a hub."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from prefpipe.model_files import model_config

# transformers builds a model under process-wide patches (weights first made on the "meta" device): two
# threads loading at once (nightly units on the thread runner) can get each other's meta tensors.
LOADING = threading.Lock()

def load_reward_model(path: str | Path) -> PreTrainedModel:
    """A reward model (num_labels = 1) from a local folder; never from a hub. A backbone without a head
    gets a new scalar one (transformers' load report about it is silenced)."""
    model_config(path)
    with LOADING, quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, local_files_only=True)
    if model.config.pad_token_id is None and model.config.eos_token_id is not None:
        model.config.pad_token_id = model.config.eos_token_id
    return model


QUIET = {"lock": threading.Lock(), "depth": 0, "verbosity": None}  # transformers' verbosity is global


@contextmanager
def quiet_transformers():
    """Silence transformers' warnings that prefpipe answers itself (a new head; long texts it truncates), and
    its progress bars of loading weights (a log line each, for folders read in a blink). The verbosity is
    global: it comes back when the last thread in a quiet block leaves it (the nightly's units run on threads,
    and one leaving must not make another loud)."""
    with QUIET["lock"]:
        if QUIET["depth"] == 0:
            QUIET["verbosity"] = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        QUIET["depth"] += 1
    try:
        yield
    finally:
        with QUIET["lock"]:
            QUIET["depth"] -= 1
            if QUIET["depth"] == 0:
                hf_logging.set_verbosity(QUIET["verbosity"])


def load_tokenizer(path: str | Path):
    """The model folder's tokenizer (local only); a missing pad token becomes EOS, as for the model."""
    model_config(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(path: Path | str) -> PreTrainedModel:
    model_config(path)
    with LOADING, quiet_transformers():
        return AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).eval()


def loaded_lm(path: str, device: str):
    """A causal LM, loaded once per process while its folder is unchanged (the trade-off's settings and a
    combination's references on one worker share it)."""
    return _loaded_lm(path, device, _written(path))


def loaded_tokenizer(path: str):
    return _loaded_tokenizer(path, _written(path))


@lru_cache(maxsize=2)
def _loaded_lm(path: str, device: str, written: float):
    return load_causal_lm(path).to(device)


@lru_cache(maxsize=2)
def _loaded_tokenizer(path: str, written: float):
    return load_tokenizer(path)


def _written(path: str) -> float:
    """When the folder's files last changed (a model rewritten in place is loaded again)."""
    return max((f.stat().st_mtime for f in Path(path).iterdir() if f.is_file()), default=0.0)
