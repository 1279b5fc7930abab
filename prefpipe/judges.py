"""Generative judges: a local causal LM prompted to choose between two answers, as RewardBench prompts its
generative reward models, judged in both orders.

Upstream strings and rules (tests/test_judges.py pins them): rewardbench 0.1.4 (PyPI; its latest release),
rewardbench/generative.py: `prompt_v2` (the system prompt) and `MTBENCH_V2["prompt_template"]` (MT-Bench's
pairwise judge, "pair-v2"); `process_judgement`, its default branch: "[[A]]" is looked for first, then "[[B]]",
anything else is no verdict ("error"); `ratings_prompt` and the rating parse of `_get_single_rating` (a trailing
whole number 1-10, else -1); rewardbench/generative_v2.py: `ratings_prompt_ties`.

How a pair is scored:
- Each pair is judged twice: the chosen answer first as A, then as B. The credit is 1 when both orders pick the
  chosen answer, 0 when both pick the other, and 0.5 when they disagree or a verdict is missing. Upstream
  (scripts/run_generative.py) judges one random order and counts a missing verdict as 0.5 (a tie): both orders
  make the credit deterministic and cancel position bias, so a judge that always says A scores 0.5 exactly.
- `logprob`: one forward pass per order, the next-token log-probabilities of "A" and "B" after the judge's
  prompt and the verdict's opening "[["; the verdict is the likelier letter (equal: none), the score gap the mean
  over the two orders of log p(chosen's letter) - log p(other's letter).
- `generate`: greedy decoding with settings stated in full (`do_sample=False`, one beam, `max_new_tokens`;
  nothing from the model's generation config), the verdict parsed from the text; the log-probabilities are
  computed as in `logprob` and stored beside it. The score gap is (votes for chosen - votes for the other) / 2.
- A prompt that does not fit the model's context even with both answers cut to nothing is not judged: a
  tie (0.5), counted (`too_long`), as rewardbench counts a judge's error.

RewardBench 2 sets (rewardbench 0.1.4, scripts/run_generative_v2.py with `--score_w_ratings`, and
rewardbench/generative_v2.py `_get_single_rating`): each answer is rated on its own, the rating prompt as the only
(user) message (`ratings_prompt_ties` in the Ties subset); an unreadable rating is -1. The ratings are the answers'
scores: the best-of-n credit (prefpipe.rewardbench) splits a tie at the top as upstream does, 0.25 when all four
are -1, and the Ties subset is scored from them by its own formula, as upstream returns its ratings to it.
- `generate`: the rating is read from the greedy text.
- `logprob`: the expected rating under the next-token distribution over the rating tokens ("1" ... "10", those the
  tokenizer reads as one token), renormalised, right after the prompt: a continuous score (as G-Eval reads a
  judge's score), which is also a judge's reward of one completion (`rewards score`, `analyse tilt`, combinations).
- An answer whose prompt does not fit is rated -1, counted (`too_long`).
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import torch
from transformers import GenerationConfig

from prefpipe.dpo import check_causal_lm
from prefpipe.errors import InputError
from prefpipe.evalsets import Example
from prefpipe.inputs import transcript
from prefpipe.lake import Run
from prefpipe.loading import load_causal_lm, load_tokenizer
from prefpipe.model import SCORE_TOKENS, length_batches, max_positions, pad
from prefpipe.results import result_tables

# rewardbench 0.1.4, rewardbench/generative.py: prompt_v2 and MTBENCH_V2["prompt_template"]
PAIRWISE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to "
    "the user question displayed below. You should choose the assistant that follows the user's instructions and "
    "answers the user's question better. Your evaluation should consider factors such as the helpfulness, "
    "relevance, accuracy, depth, creativity, and level of detail of their responses. Begin your evaluation by "
    "comparing the two responses and provide a short explanation. Avoid any position biases and ensure that the "
    "order in which the responses were presented does not influence your decision. Do not allow the length of the "
    "responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective as "
    "possible. After providing your explanation, output your final verdict by strictly following this format: "
    '"[[A]]" if assistant A is better, "[[B]]" if assistant B is better.'
)
PAIRWISE_USER = (
    "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's "
    "Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)
# rewardbench 0.1.4: generative.py ratings_prompt; generative_v2.py ratings_prompt_ties (RewardBench 2's Ties)
_RATING = (
    "\n### Task Description\nPlease act as an impartial judge and evaluate the quality of the response provided by "
    "an\nAI assistant to the user query displayed below.\n\nNotes:\n1- Your evaluation should consider factors such "
    "as the helpfulness, relevance, {factors} of the response.\n2- Begin your evaluation by providing a short "
    "explanation.\n3- Be as objective as possible. After providing your explanation, please rate the response on a "
    "scale of 1 to 10. For your rating, only give a number between 1 and 10 (inclusive), do not use any markdown, "
    "and do not put any text after your final rating.\n\n[Query]\n{{prompt}}\n\n[Response]\n{{completion}}\n\n"
    "[Your judgement]"
)
RATING_USER = _RATING.format(factors="accuracy, depth, creativity, and level of detail")
RATING_USER_TIES = _RATING.format(factors="and accuracy of the response, but need not consider depth or level of "
                                          "detail")
VERDICT_OPENING = "[["  # of "[[A]]": the logprob mode reads the letter that follows it
LETTERS = ("A", "B")
RATINGS = tuple(str(k) for k in range(1, 11))
SCORINGS = ("logprob", "generate")


@dataclass(frozen=True)
class Template:
    """A judge's prompt: its system message and its user message (formatted with question, answer_a, answer_b)."""

    name: str
    system: str
    user: str


TEMPLATES = {"rewardbench": Template("rewardbench", PAIRWISE_SYSTEM, PAIRWISE_USER)}


def template(name: str) -> Template:
    if name not in TEMPLATES:
        raise InputError(f"unknown judge template {name!r}; known: {', '.join(TEMPLATES)}", field="--judge-template")
    return TEMPLATES[name]


@dataclass(frozen=True)
class JudgeSettings:
    """How a judge is prompted and read: its template, its scoring (logprob | generate) and, for generate, the
    most new tokens. The registry keeps them (models.judge); they are part of the judge's model hash."""

    template: str = "rewardbench"
    scoring: str = "logprob"
    max_new_tokens: int = 512

    def __post_init__(self) -> None:
        template(self.template)
        if self.scoring not in SCORINGS:
            raise InputError(f"must be one of {', '.join(SCORINGS)}, got {self.scoring!r}", field="--judge-scoring")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise InputError(f"must be a whole number of at least 1, got {self.max_new_tokens!r}",
                             field="--max-new-tokens")

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> JudgeSettings | None:
        return None if text is None else cls(**json.loads(text))


def check_judge(path: Path | str, settings: JudgeSettings, field: str = "PATH"):
    """PATH's tokenizer, with the token ids of "A", "B" and the ratings it reads as one token each; or a one-line
    error unless PATH is a causal LM whose tokenizer has a chat template and reads A, B and 1-9 as one token each.
    Loads no weights: the registry checks a judge with it before it records one."""
    check_causal_lm(path, field, "judges")
    tokenizer = load_tokenizer(path)
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(f"the judge's tokenizer has no chat template; the {settings.template} template needs one "
                         "(a system and a user message)", file=path, field=field)
    single = {t: ids[0] for t in LETTERS + RATINGS if len(ids := tokenizer.encode(t, add_special_tokens=False)) == 1}
    if any(t not in single for t in LETTERS + RATINGS[:9]) or single["A"] == single["B"]:
        raise InputError("the judge's tokenizer must read A, B and the ratings 1-9 as one token each",
                         file=path, field=field)
    return tokenizer, [single[t] for t in LETTERS], {int(t): single[t] for t in RATINGS if t in single}


def verdict(text: str) -> str | None:
    """The answer a judge's text picks, "A" or "B", or None (rewardbench's "error"): its `process_judgement`."""
    return "A" if "[[A]]" in text else "B" if "[[B]]" in text else None


def rating(text: str) -> int:
    """A rating judge's score, 1-10, or -1 when its text does not end with one (rewardbench's parse)."""
    found = re.search(r"\b([1-9]|10)\b\s*$", text.strip())
    return int(found.group(1)) if found else -1


def pair_credit(first: str | None, second: str | None) -> float:
    """RewardBench's credit of a pair judged in both orders: FIRST with the chosen answer as A, SECOND as B."""
    picked = (first == "A") + (second == "B")
    against = (first == "B") + (second == "A")
    return 1.0 if picked == 2 else 0.0 if against == 2 else 0.5


@dataclass(frozen=True)
class Rating:
    """One answer rated on its own: the judge's text (generate mode), its rating (1-10, -1 when unreadable or not
    rated), the expected rating under the rating tokens' next-token distribution, and whether it did not fit."""

    text: str | None
    rating: int
    expected: float | None
    too_long: bool = False

    def score(self, scoring: str) -> float:
        return float(self.rating) if scoring == "generate" or self.too_long else self.expected


@dataclass(frozen=True)
class Judgment:
    """One pair judged in both orders (chosen as A, then as B): each order's raw text (generate mode) and verdict,
    its (log p(A), log p(B)) after the verdict's opening, the pair's credit, and its scores (the chosen answer's,
    the other's): the mean log-probability of each one's letter (logprob mode) or half its votes (generate)."""

    texts: tuple[str | None, str | None]
    verdicts: tuple[str | None, str | None]
    logprobs: tuple[tuple[float, float], tuple[float, float]] | None
    credit: float
    scores: tuple[float, float]
    too_long: bool = False

    @property
    def score_gap(self) -> float:
        return self.scores[0] - self.scores[1]

    def row(self) -> dict:
        """The judgment as a row of the run's `judgments` table."""
        (a1, b1), (a2, b2) = self.logprobs or ((None, None), (None, None))
        return {"verdict_chosen_a": self.verdicts[0], "verdict_chosen_b": self.verdicts[1],
                "text_chosen_a": self.texts[0], "text_chosen_b": self.texts[1], "logp_a_chosen_a": a1,
                "logp_b_chosen_a": b1, "logp_a_chosen_b": a2, "logp_b_chosen_b": b2, "credit": self.credit,
                "too_long": self.too_long}


class Judge:
    """A local causal LM as a judge of (prompt, chosen, rejected) pairs."""

    def __init__(self, path: Path | str, settings: JudgeSettings = JudgeSettings(), *, device: str = "cpu",
                 field: str = "PATH") -> None:
        self.template = template(settings.template)
        self.tokenizer, self.letters, self.ratings = check_judge(path, settings, field)
        self.model, self.device = load_causal_lm(path).to(device), device
        self.model.generation_config = GenerationConfig()  # nothing inherited: `generate` states every setting
        self.scoring, self.max_new_tokens = settings.scoring, settings.max_new_tokens
        self.trims = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def room(self, after: str = VERDICT_OPENING) -> int:
        """The most prompt tokens: the model's positions less what the judge's answer needs after them (AFTER, the
        text read before the logprob mode's token)."""
        need = self.max_new_tokens if self.scoring == "generate" else len(self._ids(after))
        return (max_positions(self.model) or 1 << 30) - need

    def judge(self, pairs: list[tuple[str | list[dict], str, str]], *, max_tokens: int = SCORE_TOKENS
              ) -> list[Judgment]:
        """Every (prompt, chosen, rejected) judged in both orders, in order."""
        prompts = [[self.prompt(p, c, r), self.prompt(p, r, c)] for p, c, r in pairs]
        fits = [i for i, both in enumerate(prompts) if None not in both]
        flat = [ids for i in fits for ids in prompts[i]]
        logprobs = self.letter_logprobs(flat, max_tokens=max_tokens)
        texts = [self.generate(ids) for ids in flat] if self.scoring == "generate" else [None] * len(flat)
        judged: list[Judgment] = [Judgment((None, None), (None, None), None, 0.5, (0.0, 0.0), True)] * len(pairs)
        for k, i in enumerate(fits):
            (a1, b1), (a2, b2) = logprobs[2 * k], logprobs[2 * k + 1]
            if self.scoring == "generate":
                first, second = (verdict(t) for t in texts[2 * k:2 * k + 2])
                scores = (((first == "A") + (second == "B")) / 2, ((first == "B") + (second == "A")) / 2)
            else:
                first, second = _likelier(a1, b1), _likelier(a2, b2)
                scores = ((a1 + b2) / 2, (b1 + a2) / 2)
            judged[i] = Judgment((texts[2 * k], texts[2 * k + 1]), (first, second), ((a1, b1), (a2, b2)),
                                 pair_credit(first, second), scores)
        return judged

    def prompt(self, question: str | list[dict], answer_a: str, answer_b: str) -> list[int] | None:
        """The token ids of the judge's pairwise prompt (chat template, generation prompt), the answers cut from
        their ends as far as needed to fit the model; None when even empty answers do not fit."""
        return self._fitted(question, [answer_a, answer_b], lambda q, a, b: [
            {"role": "system", "content": self.template.system},
            {"role": "user", "content": self.template.user.format(question=q, answer_a=a, answer_b=b)}])

    def rating_prompt(self, question: str | list[dict], answer: str, ties: bool = False) -> list[int] | None:
        """The token ids of RewardBench 2's rating prompt of one answer (the Ties subset's with TIES), as `prompt`
        fits it; the rating prompt is the only message, as upstream sends it."""
        user = RATING_USER_TIES if ties else RATING_USER
        return self._fitted(question, [answer], lambda q, a: [
            {"role": "user", "content": user.format(prompt=q, completion=a)}], after="")

    def _fitted(self, question: str | list[dict], answers: list[str], messages, after: str = VERDICT_OPENING
                ) -> list[int] | None:
        text = question if isinstance(question, str) else transcript(question)
        room, ids, cut = self.room(after), self._render(messages(text, *answers)), None
        while (over := len(ids) - room) > 0:
            cut = cut or [self._ids(a) for a in answers]
            if not any(cut):
                return None
            longer = max(range(len(cut)), key=lambda j: len(cut[j]))  # the longer answer gives up tokens first
            cut[longer] = cut[longer][:max(0, len(cut[longer]) - over)]
            ids = self._render(messages(text, *(self.tokenizer.decode(a) for a in cut)))
        return ids

    def _render(self, messages: list[dict]) -> list[int]:
        return self._ids(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def letter_logprobs(self, prompts: list[list[int]], *, max_tokens: int = SCORE_TOKENS
                        ) -> list[tuple[float, float]]:
        """(log p(A), log p(B)) of the token after each prompt and the verdict's opening."""
        opening = self._ids(VERDICT_OPENING)
        return [tuple(row) for row in self.next_token_logprobs([ids + opening for ids in prompts], self.letters,
                                                               max_tokens=max_tokens)]

    def expected_ratings(self, prompts: list[list[int]], *, max_tokens: int = SCORE_TOKENS) -> list[float]:
        """The expected rating after each prompt: sum of k p(k) over the rating tokens, renormalised."""
        rows = self.next_token_logprobs(prompts, list(self.ratings.values()), max_tokens=max_tokens)
        if not rows:
            return []
        values = torch.tensor(list(self.ratings), dtype=torch.float64)
        return (torch.tensor(rows, dtype=torch.float64).softmax(-1) @ values).tolist()

    def next_token_logprobs(self, inputs: list[list[int]], tokens: list[int], *, max_tokens: int = SCORE_TOKENS
                            ) -> list[list[float]]:
        """The log-probabilities of TOKENS as the token after each of INPUTS, in batches sorted by length and
        right-padded (a real position never attends to a pad: a value does not depend on its batch)."""
        out: list[list[float]] = [[]] * len(inputs)
        with torch.inference_mode():
            for batch in length_batches([len(ids) for ids in inputs], max_tokens):
                ids, mask = (t.to(self.device) for t in pad([inputs[i] for i in batch], self.tokenizer.pad_token_id))
                last = mask.sum(-1) - 1
                keep = torch.unique(last)  # the vocabulary projection of the positions read only
                if self.trims:
                    logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
                    column = torch.searchsorted(keep, last)
                else:
                    logits, column = self.model(input_ids=ids, attention_mask=mask).logits, last
                rows = logits[torch.arange(len(batch), device=ids.device), column].float().log_softmax(-1)
                for i, row in zip(batch, rows[:, tokens].tolist(), strict=True):
                    out[i] = row
        return out

    def rate(self, items: list[tuple[str | list[dict], str, bool]], *, generate: bool | None = None,
             max_tokens: int = SCORE_TOKENS) -> list[Rating]:
        """Every (prompt, answer, Ties subset or not) rated on its own, in order; the text generated when GENERATE
        (default: in generate mode)."""
        generate = self.scoring == "generate" if generate is None else generate
        prompts = [self.rating_prompt(p, a, ties) for p, a, ties in items]
        fits = [i for i, ids in enumerate(prompts) if ids is not None]
        expected = self.expected_ratings([prompts[i] for i in fits], max_tokens=max_tokens)
        rated = [Rating(None, -1, None, True)] * len(items)
        for i, value in zip(fits, expected, strict=True):
            text = self.generate(prompts[i]) if generate else None
            rated[i] = Rating(text, rating(text) if text is not None else -1, value)
        return rated

    def __call__(self, items: list[tuple[str | list[dict], str]]) -> list[float]:
        """A scorer (prefpipe.scoring): each (prompt, response)'s expected rating, the logprob mode's reward of one
        completion; -1 for one that does not fit."""
        return [r.score("logprob") for r in self.rate([(p, a, False) for p, a in items], generate=False)]

    def generate(self, prompt: list[int]) -> str:
        """The judge's greedy answer to one prompt (alone: no padding can change it)."""
        settings = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=self.max_new_tokens,
                                    pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        ids = torch.tensor([prompt], device=self.device)
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=settings)
        return self.tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True)


def _likelier(a: float, b: float) -> str | None:
    return "A" if a > b else "B" if b > a else None


def judge_tables(run: Run, examples: list[Example], judge: Judge, fmt: str, contaminated: list[str] | None = None
                 ) -> tuple[pa.Table, pa.Table, pa.Table]:
    """A judge's run on a set: the scores and summary tables as a scorer's (`result_tables`) and its `judgments`.
    A pairwise set (RewardBench v1 format, custom subsets too): every pair judged in both orders, with the judge's
    credits; a RewardBench 2 set: every answer rated, the ratings as scores, one judgment row per answer."""
    if fmt == "rewardbench2":
        rated = iter(judge.rate([(e.prompt, text, e.subset == "Ties") for e in examples
                                 for text in e.chosen + e.rejected]))
        scores, rows = [], []
        for e in examples:
            chosen, rejected = [next(rated) for _ in e.chosen], [next(rated) for _ in e.rejected]
            scores.append(([r.score(judge.scoring) for r in chosen], [r.score(judge.scoring) for r in rejected]))
            rows += [{"example_id": e.example_id, "answer": k, "chosen": k < len(chosen), "text": r.text,
                      "rating": r.rating, "expected_rating": r.expected, "too_long": r.too_long}
                     for k, r in enumerate(chosen + rejected)]
        return (*result_tables(run, examples, scores, fmt, contaminated),
                pa.Table.from_pylist([run.provenance() | row for row in rows]))
    judged = judge.judge([(e.prompt, e.chosen[0], e.rejected[0]) for e in examples])
    scores, summary = result_tables(run, examples, [([j.scores[0]], [j.scores[1]]) for j in judged], fmt,
                                    contaminated, credits=[j.credit for j in judged])
    rows = [run.provenance() | {"example_id": e.example_id} | j.row() for e, j in zip(examples, judged, strict=True)]
    return scores, summary, pa.Table.from_pylist(rows)
