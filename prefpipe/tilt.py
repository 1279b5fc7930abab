"""What a reward does to a policy, per prompt over its candidates: the reward-tilted policy and best-of-n.

The KL-regularised optimum of E[r] − β·KL(π‖π_ref) is the tilted policy (Rafailov et al. 2023, eq. 4)

    π*(y|x) = π_ref(y|x) · exp(r(x, y)/β) / Z(x),    so    KL(π*‖π_ref) = E_π*[r]/β − log Z,

with π_ref renormalised over the prompt's candidates. Best-of-n draws n candidates from π_ref and keeps the
best: with F the reward's CDF under π_ref and F⁻ its left limit, a reward value v is the best with
probability F(v)ⁿ − F⁻(v)ⁿ, shared by the candidates tied at v in proportion to π_ref. Its KL is at most
log n − (n−1)/n (Beirami et al. 2024), and its win rate against π_ref (ties ½) at most n/(n+1).

Everything is vectorised over all prompts at once: candidates sorted by prompt, then reward; a prompt is a
run [start, next start), and sums over runs are numpy segment reductions, or matrix products where the runs
have one length (`Segments`). No Python loop over prompts or candidates. What does not depend on β or n
(π_ref, the shift, the tie groups, the CDF) is computed once per `Candidates`. prefpipe.tilt_tables runs this
over pieces of about 65,000 candidates, two at a time, so that a piece's arrays stay in the CPU's cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from prefpipe.errors import InputError


@dataclass(frozen=True)
class Candidates:
    """Candidates sorted by prompt, then by reward (ascending): what both analyses read."""

    prompt: np.ndarray  # int codes, non-decreasing
    reward: np.ndarray  # float64
    log_ref: np.ndarray  # log π_ref, normalised over each prompt's candidates
    starts: np.ndarray  # where each prompt's candidates begin

    @classmethod
    def build(cls, prompt: np.ndarray, reward: np.ndarray, log_ref: np.ndarray | None = None) -> Candidates:
        """From unsorted arrays (PROMPT: int codes); LOG_REF None: π_ref uniform over each prompt's candidates."""
        reward = np.asarray(reward, dtype=np.float64)
        if not np.isfinite(reward).all():
            raise InputError("every reward must be a finite number", field="reward")
        log_ref = np.zeros_like(reward) if log_ref is None else np.asarray(log_ref, dtype=np.float64)
        if not (np.isfinite(log_ref) | (log_ref == -np.inf)).all():
            raise InputError("every reference log-probability must be a number (or -inf)", field="ref_logprob")
        prompt, reward, log_ref = _by_prompt_then_reward(np.asarray(prompt), reward, log_ref)
        starts = np.flatnonzero(np.r_[True, prompt[1:] != prompt[:-1]])
        sizes = np.diff(np.r_[starts, len(reward)])
        norm = segment_logsumexp(log_ref, starts, sizes)
        if not np.isfinite(norm).all():
            raise InputError("every prompt needs a candidate whose reference log-probability is above -inf",
                             field="ref_logprob")
        return cls(prompt, reward, log_ref - np.repeat(norm, sizes), starts)

    @cached_property
    def counts(self) -> np.ndarray:
        return np.diff(np.r_[self.starts, len(self.reward)])

    @cached_property
    def p_ref(self) -> np.ndarray:
        return np.exp(self.log_ref)

    @cached_property
    def full_support(self) -> bool:
        """Whether π_ref gives every candidate some mass (no log π_ref of −inf)."""
        return bool(np.isfinite(self.log_ref).all())

    @cached_property
    def ref_reward(self) -> np.ndarray:
        """E_π_ref[r] per prompt."""
        return self.sum(self.reward, self.p_ref)

    @cached_property
    def segments(self) -> Segments:
        return Segments(self.starts, len(self.reward))

    def sum(self, values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Σ values (or Σ weights·values) over each prompt's candidates."""
        return self.segments.sum(values, weights)

    def per_candidate(self, values: np.ndarray) -> np.ndarray:
        """A per-prompt value repeated for each of the prompt's candidates."""
        return np.repeat(values, self.counts)

    @cached_property
    def below_top(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per prompt, its largest reward and log π_ref; per candidate, how far below them it lies (≤ 0):
        a shift that keeps exp(log π_ref + r/β) in range for every β, found once."""
        top_reward = self.reward[np.r_[self.starts[1:], len(self.reward)] - 1]  # sorted: the last is the largest
        top_ref = np.maximum.reduceat(self.log_ref, self.starts)
        return (top_reward, top_ref, self.reward - self.per_candidate(top_reward),
                self.log_ref - self.per_candidate(top_ref))

    @cached_property
    def ties(self) -> Ties:
        return Ties.of(self)


@dataclass(frozen=True)
class Segments:
    """Consecutive runs of an array of SIZE (a prompt's candidates, or its reward values), beginning at STARTS."""

    starts: np.ndarray
    size: int

    @cached_property
    def width(self) -> int:
        """K when every run has K elements, else 0."""
        k = int(self.starts[1]) if len(self.starts) > 1 else self.size
        return k if k * len(self.starts) == self.size and (np.diff(self.starts) == k).all() else 0

    def sum(self, values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Σ values (or Σ weights·values) over each run. With runs of K, a matrix product over K columns: two
        to four times as fast as np.add.reduceat's runs of K."""
        if self.width:
            rows = values.reshape(-1, self.width)
            if weights is None:
                return rows @ np.ones(self.width)
            return np.einsum("pk,pk->p", weights.reshape(rows.shape), rows)
        return np.add.reduceat(values if weights is None else weights * values, self.starts)


def _by_prompt_then_reward(prompt: np.ndarray, reward: np.ndarray, *more: np.ndarray) -> tuple[np.ndarray, ...]:
    """PROMPT, REWARD and MORE sorted by prompt, then reward. K candidates per prompt, each prompt's together
    (a rewards run of annotations): one argsort per row of a K-column matrix. Otherwise one quicksort of a
    float key (prompt + the reward scaled into [0, ½); equal keys are ties, in any order), five times as
    fast as np.lexsort; the result is checked, and np.lexsort used when two rewards were too close to part."""
    width = _rows_of_equal_width(prompt)
    if width:
        order = (np.argsort(reward.reshape(-1, width), axis=1) + np.arange(0, len(reward), width)[:, None]).ravel()
        return prompt.take(order), reward.take(order), *(m.take(order) for m in more)
    low, span = (float(reward.min()), float(np.ptp(reward))) if len(reward) else (0.0, 0.0)
    key = prompt + ((reward - low) / span * 0.5 if span > 0 else 0.0)
    order = np.argsort(key)
    p, r = prompt.take(order), reward.take(order)
    if not np.all((p[1:] > p[:-1]) | ((p[1:] == p[:-1]) & (r[1:] >= r[:-1]))):
        order = np.lexsort((reward, prompt))
        p, r = prompt.take(order), reward.take(order)
    return p, r, *(m.take(order) for m in more)


def _rows_of_equal_width(prompt: np.ndarray) -> int:
    """K when PROMPT holds each prompt's K candidates together, for one K; else 0."""
    if len(prompt) < 2 or not np.all(prompt[1:] >= prompt[:-1]):
        return 0
    return Segments(np.flatnonzero(np.r_[True, prompt[1:] != prompt[:-1]]), len(prompt)).width


def segment_logsumexp(x: np.ndarray, starts: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
    """log Σ exp(x) over each segment, stable for large and -inf values."""
    sizes = np.diff(np.r_[starts, len(x)]) if sizes is None else sizes
    top = np.maximum.reduceat(x, starts)
    safe = np.where(np.isfinite(top), top, 0.0)
    return safe + np.log(np.add.reduceat(np.exp(x - np.repeat(safe, sizes)), starts))


@dataclass(frozen=True)
class Tilted:
    """The tilted policy at one β, per prompt (and π* per candidate, on demand)."""

    beta: float
    log_z: np.ndarray
    kl: np.ndarray
    expected_reward: np.ndarray
    ref_reward: np.ndarray
    effective_candidates: np.ndarray  # exp(H(π*))
    candidates: Candidates

    @property
    def probability(self) -> np.ndarray:
        """π* of each candidate, in the Candidates' order."""
        c = self.candidates
        return np.exp(c.log_ref + c.reward / self.beta - c.per_candidate(self.log_z))


def tilt(c: Candidates, beta: float) -> Tilted:
    """π* per prompt, from sums of the unnormalised weights w = exp(log π_ref + r/β − shift): Z = Σw·e^shift,
    E_π*[r] = Σw·r / Σw, and, with E_π*[log π_ref], KL = E_π*[r]/β − log Z and H = log Z − E_π*[log π_ref]
    − E_π*[r]/β (both from log π* = log π_ref + r/β − log Z). No per-candidate π* is made."""
    if not beta > 0:
        raise InputError(f"must be above 0, got {beta}", field="--beta")
    with np.errstate(over="ignore"):
        overflows = not np.isfinite(c.reward / beta).all()
    if overflows:
        raise InputError(f"β = {beta!r} is too small for these rewards: r/β overflows", field="--beta")
    weights, shift, total = _weights(c, beta)
    log_z = shift + np.log(total)
    expected = c.sum(c.reward, weights) / total
    log_ref = c.log_ref if c.full_support else np.where(weights > 0, c.log_ref, 0.0)  # 0 · log 0 = 0
    ref_mean = c.sum(log_ref, weights) / total
    kl = np.maximum(expected / beta - log_z, 0.0)
    entropy = np.maximum(log_z - ref_mean - expected / beta, 0.0)
    return Tilted(beta, log_z, kl, expected, c.ref_reward, np.exp(entropy), c)


def _weights(c: Candidates, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, shift, Σw per prompt) with w = exp(log π_ref + r/β − shift). The shift is the bound max r/β +
    max log π_ref, from `below_top` (no maximum to find per β); where it lies so far above the largest logit
    that Σw nears underflow, the largest logit itself."""
    top_reward, top_ref, reward_gap, ref_gap = c.below_top
    logits = reward_gap / beta
    logits += ref_gap
    weights = np.exp(logits, out=logits)
    total = c.sum(weights)
    if (total > 1e-250).all():
        return weights, top_reward / beta + top_ref, total
    logits = c.reward / beta + c.log_ref
    shift = np.maximum.reduceat(logits, c.starts)
    weights = np.exp(logits - c.per_candidate(shift))
    return weights, shift, np.add.reduceat(weights, c.starts)


PADDING = 1.25  # the tie groups' rows are padded when that makes them at most this many times as long


@dataclass(frozen=True, eq=False)
class Ties:
    """The reward values of each prompt (its candidates tied at one reward form a group), with π_ref's mass
    on each value and its CDF: what best-of-n needs, for every n.

    The groups lie in rows, a row per prompt (`segments`). When most prompts have about as many groups as
    the one with most, each row is padded to that many slots (F repeated, no mass), so that sums over a row
    are matrix products; `slot` says where each group lies."""

    groups: np.ndarray  # where each group begins, in the candidates
    slot: np.ndarray  # where each group lies, in the rows
    segments: Segments  # the rows
    value: np.ndarray  # the group's reward (0 in padding)
    p_equal: np.ndarray  # π_ref(R = v) (0 in padding)
    f: np.ndarray  # F(v) = π_ref(R ≤ v) (the row's last F in padding)

    @property
    def f_below(self) -> np.ndarray:
        """F⁻(v) = π_ref(R < v): F of the prompt's group below, 0 for its first."""
        return self.below(self.f)

    def below(self, per_group: np.ndarray) -> np.ndarray:
        """PER_GROUP's value at the prompt's group below each group, 0 for a prompt's first group."""
        shifted = np.empty_like(per_group)
        shifted[1:] = per_group[:-1]
        shifted[self.segments.starts] = 0.0
        return shifted

    @cached_property
    def log_f(self) -> np.ndarray:
        """log F, for Fⁿ = exp(n·log F): numpy's ** with an integer takes 50 times as long."""
        with np.errstate(divide="ignore"):
            return np.log(self.f)

    @cached_property
    def log_p_equal(self) -> np.ndarray:
        """log π_ref(R = v), 0 where that is 0 (there best-of-n has no mass either)."""
        return np.log(self.p_equal, out=np.zeros_like(self.p_equal), where=self.p_equal > 0)

    @cached_property
    def win_weight(self) -> np.ndarray:
        """P(a draw of π_ref loses to v, ties ½)."""
        return self.f_below + self.p_equal / 2

    @classmethod
    def of(cls, c: Candidates) -> Ties:
        new = np.r_[True, (c.prompt[1:] != c.prompt[:-1]) | (c.reward[1:] != c.reward[:-1])]
        groups = np.flatnonzero(new)
        p_equal = np.add.reduceat(c.p_ref, groups)
        group_prompt = c.prompt[groups]
        first_group = np.flatnonzero(np.r_[True, group_prompt[1:] != group_prompt[:-1]])
        sizes = np.diff(np.r_[first_group, len(groups)])
        cumulative = np.cumsum(p_equal)
        f = np.clip(cumulative - np.repeat(cumulative[first_group] - p_equal[first_group], sizes), 0.0, 1.0)
        value, width = c.reward[groups], int(sizes.max()) if len(sizes) else 0
        if width * len(sizes) > PADDING * len(groups):  # too much padding: rows as they are
            return cls(groups, np.arange(len(groups)), Segments(first_group, len(groups)), value, p_equal, f)
        slot = np.arange(len(groups)) + np.repeat(np.arange(len(sizes)) * width - first_group, sizes)
        padded = [np.zeros(width * len(sizes)) for _ in range(2)] + [np.repeat(f[first_group + sizes - 1], width)]
        for row, x in zip(padded, (value, p_equal, f), strict=True):
            row[slot] = x
        return cls(groups, slot, Segments(np.arange(0, len(padded[0]), width), len(padded[0])), *padded)


@dataclass(frozen=True)
class BestOfN:
    """Best-of-n at one n, per prompt (and its probability per candidate, on demand)."""

    n: int
    kl: np.ndarray
    kl_bound: float  # log n − (n−1)/n
    expected_reward: np.ndarray
    win_rate: np.ndarray  # against π_ref, ties ½
    candidates: Candidates
    best: np.ndarray  # per slot of the tie groups' rows: the probability that the best of n has its reward

    @property
    def probability(self) -> np.ndarray:
        """Per candidate: the group's probability, shared in proportion to π_ref."""
        c, ties = self.candidates, self.candidates.ties
        sizes = np.diff(np.r_[ties.groups, len(c.reward)])
        p_equal = np.repeat(ties.p_equal[ties.slot], sizes)
        share = np.divide(c.p_ref, p_equal, out=np.zeros_like(c.p_ref), where=c.p_ref > 0)
        return share * np.repeat(self.best[ties.slot], sizes)


TINY = np.finfo(np.float64).tiny


def best_of_n(c: Candidates, n: int) -> BestOfN:
    if not (isinstance(n, int | np.integer) and n >= 1):
        raise InputError(f"must be a whole number of at least 1, got {n}", field="--n")
    ties = c.ties
    power = np.exp(n * ties.log_f)  # Fⁿ
    best = power - ties.below(power)  # Fⁿ − F⁻ⁿ: P(the best of n has reward v)
    log_best = np.log(np.maximum(best, TINY))  # where best is 0, best·log(best) is 0 (and best·log TINY is)
    log_best -= ties.log_p_equal
    kl, expected, win = (ties.segments.sum(x, best) for x in (log_best, ties.value, ties.win_weight))
    return BestOfN(int(n), np.maximum(kl, 0.0), float(np.log(n) - (n - 1) / n), expected, win, c, best)
