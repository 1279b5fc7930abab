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

import numpy as np

from prefpipe.config import METHODS, TRANSFORMS, Combination, check_quantile
from prefpipe.errors import InputError


def log_sigmoid(d: np.ndarray) -> np.ndarray:
    """log σ(d) = −log(1 + e^−d), stable: −1000 gives −1000 (not −inf); 40 gives −4e−18 (not 0, as log(σ(40))
    does). Beyond about 745, −e^−d is nearer 0 than any double: it is rounded down to the first double below
    0 (−5e−324), so that u < 0 holds for every d, as it does exactly, and the order of rewards is kept."""
    return np.minimum(-np.logaddexp(0.0, -np.asarray(d, dtype=np.float64)), -TINIEST)


TINIEST = np.nextafter(0.0, 1.0)  # the smallest positive double, 5e−324


def lsc(reward: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """u = log σ(r − r_ref)."""
    return log_sigmoid(np.asarray(reward, dtype=np.float64) - np.asarray(reference, dtype=np.float64))


def reference_reward(rewards: np.ndarray, q: float, method: str = "empirical", weights: np.ndarray | None = None
                     ) -> float:
    """r_ref: the Q-quantile of REWARDS (a prompt's reference responses): empirical (numpy's linear
    interpolation), or normal: mean + Φ⁻¹(q)·std (the sample std). With WEIGHTS (π_ref's probabilities of the
    references, to any common scale): the Q-quantile of the distribution they give the rewards, the smallest
    reward whose cumulative weight reaches Q (normal: the weighted mean and std)."""
    check_quantile(q)
    values = np.asarray(rewards, dtype=np.float64)
    if method not in METHODS:
        raise InputError(f"must be one of {', '.join(METHODS)}, got {method!r}", field="--method")
    if weights is None:
        if method == "empirical":
            return float(np.quantile(values, q))
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        return float(np.mean(values)) + statistics.NormalDist().inv_cdf(q) * std
    p = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    if method == "empirical":
        order = np.argsort(values, kind="stable")
        reached = np.cumsum(p[order]) >= q - 1e-12  # a cumulative sum that should reach q exactly may fall short
        return float(values[order][np.argmax(reached)])
    mean = float(np.dot(p, values))
    return mean + statistics.NormalDist().inv_cdf(q) * float(np.sqrt(np.dot(p, (values - mean) ** 2)))


def reference_rewards(prompt: np.ndarray, reward: np.ndarray, q: float, method: str = "empirical",
                      min_references: int = 4, too_few: str = "global", logprob: np.ndarray | None = None,
                      source: str = "candidates") -> tuple[dict, float, dict, dict]:
    """r_ref per prompt from the rewards of its reference responses (PROMPT, REWARD: one entry per reference;
    LOGPROB: π_ref's log-probability of each, NaN where unknown: a prompt whose references all have one takes
    the π_ref-weighted quantile). A prompt with fewer than MIN_REFERENCES takes what TOO_FEW says: `global`,
    the quantile over every reference, or `error`. SOURCE `global` gives every prompt the global one.
    Returns {prompt: r_ref}, the global r_ref, {prompt: references} and {prompt: source of its r_ref}."""
    prompt, reward = np.asarray(prompt), np.asarray(reward, np.float64)
    if not len(reward):
        raise InputError("no reference responses to take a reference reward from", field="--references")
    logprob = np.full(len(reward), np.nan) if logprob is None else np.asarray(logprob, np.float64)
    global_ref = reference_reward(reward, q, method)
    order = np.argsort(prompt, kind="stable")
    names, starts, counts = np.unique(prompt[order], return_index=True, return_counts=True)
    values, logs = reward[order], logprob[order]
    refs, sources = {}, {}
    for name, s, n in zip(names.tolist(), starts, counts, strict=True):
        if source == "global" or n < min_references:
            if source != "global" and too_few == "error":
                raise InputError(f"prompt {name}: {n} reference responses, fewer than --min-references "
                                 f"{min_references} (--too-few global takes the global quantile for it)",
                                 field="--references")
            refs[name], sources[name] = global_ref, "global"
            continue
        known = logs[s:s + n]
        weights = np.exp(known - known.max()) if not np.isnan(known).any() else None
        refs[name] = reference_reward(values[s:s + n], q, method, weights)
        sources[name] = source + (" (π_ref-weighted)" if weights is not None else "")
    return refs, global_ref, dict(zip(names.tolist(), counts.tolist(), strict=True)), sources


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
                is_reference: np.ndarray | None = None, outside: dict[str, tuple[list, list]] | None = None,
                logprob: np.ndarray | None = None) -> tuple[np.ndarray, list[dict]]:
    """COMBO's score of every item (PROMPTS: each item's prompt key; REWARDS: each model's reward of the
    items), and its reference rewards: a row per prompt and model with r_ref, how many references it had and
    its source. The references of a prompt are its items (`prompt`, `global`; π_ref-weighted with LOGPROB,
    π_ref's log-probability of each item), those of IS_REFERENCE (`candidates`), or OUTSIDE ones, per model
    (prompts, rewards) (`warehouse`, `samples`). Each model has its own quantile."""
    missing = [m for m in combo.models if m not in rewards]
    if missing:
        raise InputError(f"no rewards of {', '.join(missing)}", field="--model", file=combo.name)
    prompts = np.asarray(prompts, dtype=object)
    chosen = np.ones(len(prompts), dtype=bool) if is_reference is None else np.asarray(is_reference, dtype=bool)
    logprob = np.full(len(prompts), np.nan) if logprob is None else np.asarray(logprob, np.float64)
    source = {"prompt": "candidates", "candidates": "candidates"}.get(combo.references, combo.references)
    per_model, rows = [], []
    for model, q in zip(combo.models, combo.quantiles, strict=True):
        if combo.references in ("warehouse", "samples"):
            ref_prompts, ref_rewards = (outside or {}).get(model, ([], []))
            ref_logprob = None
        else:
            ref_prompts, ref_rewards, ref_logprob = prompts[chosen], rewards[model][chosen], logprob[chosen]
        refs, global_ref, counts, sources = reference_rewards(
            np.asarray(ref_prompts, dtype=object), np.asarray(ref_rewards), q, combo.method, combo.min_references,
            combo.too_few, ref_logprob, source)
        for prompt in dict.fromkeys(prompts.tolist()):  # a prompt with no reference at all: too few as well
            if prompt not in refs:
                if combo.too_few == "error":
                    raise InputError(f"prompt {prompt}: no reference responses (--too-few global takes the global "
                                     "quantile for it)", field="--references")
                refs[prompt], sources[prompt] = global_ref, "global"
        per_model.append(np.array([refs[p] for p in prompts]))
        rows += [{"combo": combo.name, "prompt": prompt, "model_id": model, "quantile": q, "r_ref": refs[prompt],
                  "references": counts.get(prompt, 0), "r_ref_source": sources[prompt]}
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
