"""Reward transforms and combinations (Wang et al. 2024, "Transforming and Combining Rewards").

Log-sigmoid-centred rewards: u(x, y) = log σ(r(x, y) − r_ref(x)), with r_ref(x) a per-prompt reference
reward, the q-quantile of the model's rewards over the prompt's reference responses. For a Bradley-Terry
model σ(r − r_ref) is the probability that y beats the reference, so Σᵢ uᵢ = log Πᵢ σ(rᵢ − r_ref,ᵢ) is the
log-probability of being good on every property at once: a soft AND, where no property can make up for
another one that fails. The usual baselines: Σ wᵢ·rᵢ (raw) and Σ wᵢ·(rᵢ − r_ref,ᵢ) (centred).

Normalisation (InstructGPT §3.5): the Bradley-Terry loss does not see a shift, so a bias is chosen that
gives a reference set mean reward 0 (and, with a scale, std 1).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

import numpy as np

from prefpipe.errors import InputError

if TYPE_CHECKING:
    from prefpipe.config import Combination

TRANSFORMS = ("lsc", "raw", "centered")
METHODS = ("empirical", "normal")


def log_sigmoid(d: np.ndarray) -> np.ndarray:
    """log σ(d) = −log(1 + e^−d), stable: −1000 gives −1000 (not −inf); 40 gives −4e−18 (not 0, as log(σ(40))
    does). Beyond about 745, −e^−d is nearer 0 than any double: it is rounded down to the first double below
    0 (−5e−324), so that u < 0 holds for every d, as it does exactly, and the order of rewards is kept."""
    return np.minimum(-np.logaddexp(0.0, -np.asarray(d, dtype=np.float64)), -TINIEST)


TINIEST = np.nextafter(0.0, 1.0)  # the smallest positive double, 5e−324


def lsc(reward: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """u = log σ(r − r_ref)."""
    return log_sigmoid(np.asarray(reward, dtype=np.float64) - np.asarray(reference, dtype=np.float64))


def check_quantile(q: float) -> float:
    if not 0 < q < 1:
        raise InputError(f"must be between 0 and 1 (both excluded), got {q}", field="--quantile")
    return q


def reference_reward(rewards: np.ndarray, q: float, method: str = "empirical") -> float:
    """r_ref: the Q-quantile of REWARDS (a prompt's reference responses): empirical (numpy's linear
    interpolation), or normal: mean + Φ⁻¹(q)·std (the sample std)."""
    check_quantile(q)
    values = np.asarray(rewards, dtype=np.float64)
    if method == "empirical":
        return float(np.quantile(values, q))
    if method == "normal":
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        return float(np.mean(values)) + statistics.NormalDist().inv_cdf(q) * std
    raise InputError(f"must be one of {', '.join(METHODS)}, got {method!r}", field="--method")


def reference_rewards(prompt: np.ndarray, reward: np.ndarray, q: float, method: str = "empirical",
                      min_references: int = 4) -> tuple[dict, float, dict]:
    """r_ref per prompt from the rewards of its reference responses (PROMPT, REWARD: one entry per reference);
    a prompt with fewer than MIN_REFERENCES takes the quantile of all references (the global one). Returns
    {prompt: r_ref}, the global r_ref and {prompt: references}; the caller flags the prompts that took the
    global one."""
    prompt, reward = np.asarray(prompt), np.asarray(reward, np.float64)
    if not len(reward):
        raise InputError("no reference responses to take a reference reward from", field="--references")
    global_ref = reference_reward(reward, q, method)
    order = np.argsort(prompt, kind="stable")
    names, starts, counts = np.unique(prompt[order], return_index=True, return_counts=True)
    values = reward[order]
    refs = {name: (reference_reward(values[s:s + n], q, method) if n >= min_references else global_ref)
            for name, s, n in zip(names.tolist(), starts, counts, strict=True)}
    return refs, global_ref, dict(zip(names.tolist(), counts.tolist(), strict=True))


def combine(transform: str, rewards: list[np.ndarray], references: list[np.ndarray], weights: list[float]
            ) -> np.ndarray:
    """Σ wᵢ·uᵢ (lsc), Σ wᵢ·rᵢ (raw) or Σ wᵢ·(rᵢ − r_ref,ᵢ) (centered) of several models' rewards."""
    if transform not in TRANSFORMS:
        raise InputError(f"must be one of {', '.join(TRANSFORMS)}, got {transform!r}", field="--transform")
    total = np.zeros(len(rewards[0]), dtype=np.float64)
    for r, ref, w in zip(rewards, references, weights, strict=True):
        r = np.asarray(r, dtype=np.float64)
        total += w * (lsc(r, ref) if transform == "lsc" else r if transform == "raw" else r - np.asarray(ref))
    return total


def combination(combo: Combination, prompts: np.ndarray, rewards: dict[str, np.ndarray],
                is_reference: np.ndarray | None = None, outside: dict[str, tuple[list, list]] | None = None
                ) -> tuple[np.ndarray, list[dict]]:
    """COMBO's score of every item (PROMPTS: each item's prompt key; REWARDS: each model's reward of the
    items), and its reference rewards: a row per prompt and model with r_ref, how many references it had
    and whether it took the global quantile. The references of a prompt are its items (`prompt`), those of
    IS_REFERENCE (`candidates`), or OUTSIDE ones, per model (prompts, rewards) (`warehouse`)."""
    missing = [m for m in combo.models if m not in rewards]
    if missing:
        raise InputError(f"no rewards of {', '.join(missing)}", field="--model", file=combo.name)
    prompts = np.asarray(prompts, dtype=object)
    chosen = np.ones(len(prompts), dtype=bool) if is_reference is None else np.asarray(is_reference, dtype=bool)
    per_model, rows = [], []
    for model in combo.models:
        if combo.references == "warehouse":
            ref_prompts, ref_rewards = (outside or {}).get(model, ([], []))
        else:
            ref_prompts, ref_rewards = prompts[chosen], rewards[model][chosen]
        refs, global_ref, counts = reference_rewards(np.asarray(ref_prompts, dtype=object), np.asarray(ref_rewards),
                                                     combo.quantile, combo.method, combo.min_references)
        per_model.append(np.array([refs.get(p, global_ref) for p in prompts]))
        rows += [{"combo": combo.name, "prompt": prompt, "model_id": model, "r_ref": refs.get(prompt, global_ref),
                  "references": counts.get(prompt, 0),
                  "r_ref_source": "prompt" if counts.get(prompt, 0) >= combo.min_references else "global"}
                 for prompt in dict.fromkeys(prompts.tolist())]
    return combine(combo.transform, [rewards[m] for m in combo.models], per_model, list(combo.weights)), rows


def normalisation(rewards: np.ndarray, scale: bool = False) -> tuple[float, float]:
    """(bias, scale) that give REWARDS mean 0 (and std 1 with SCALE): r' = (r + bias) · scale."""
    values = np.asarray(rewards, dtype=np.float64)
    if len(values) == 0:
        raise InputError("the reference set holds no response", field="--to")
    std = float(np.std(values))
    if scale and not std > 0:
        raise InputError("the reference set's rewards are all equal: nothing to scale by", field="--scale")
    return -float(np.mean(values)), (1.0 / std if scale else 1.0)
