"""Model inputs of (prompt, response): the text a reward model or a policy reads, as token ids that fit.

The tokenizer's chat template when it has one (the prompt's messages, then the response as the
assistant's turn). Otherwise a plain transcript, one block per message, the response last (a string
prompt is one user message):

    User: How do I boil an egg?

    Assistant: Put it in boiling water for eight minutes.

with the tokenizer's own special tokens around it ([CLS] … [SEP] for BERT). An input that fits in
`max_length` is kept whole; a longer one keeps the response and the end of the prompt (the prompt is cut
from the left first), and a response longer than the room keeps its start.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefpipe.errors import InputError
from prefpipe.loading import quiet_transformers
from prefpipe.model import max_positions
from prefpipe.training_data import RankedAnnotation

ROLES = {"user": "User", "assistant": "Assistant", "system": "System"}


def transcript(messages: list[dict]) -> str:
    return "\n\n".join(f"{ROLES.get(m['role'], m['role'].title())}: {m['content']}" for m in messages)


def prompt_and_response(tokenizer, prompt: str | list[dict], response: str) -> tuple[str, str]:
    """The input text in two parts, prompt first: their concatenation is the whole input."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if not getattr(tokenizer, "chat_template", None):
        return transcript(messages) + "\n\nAssistant:", " " + response
    head = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": response}], tokenize=False)
    # the longest common start: templates that rewrite earlier turns still split cleanly
    cut = next((i for i, (a, b) in enumerate(zip(head, full, strict=False)) if a != b), min(len(head), len(full)))
    return full[:cut], full[cut:]


def render_text(tokenizer, prompt: str | list[dict], response: str) -> str:
    """The whole input as one string (without the tokenizer's special tokens)."""
    return "".join(prompt_and_response(tokenizer, prompt, response))


@dataclass
class Encoded:
    """An annotation as token ids: its distinct inputs, and pairs and ranking groups that index into them."""

    inputs: list[list[int]]
    pairs: list[tuple[int, int, int, float]]
    groups: list[list[int]]  # for Plackett-Luce: best first, tied inputs together
    annotation: RankedAnnotation

    @property
    def width(self) -> int:
        return max(map(len, self.inputs))

    @property
    def tokens(self) -> int:
        return sum(map(len, self.inputs))


class InputBuilder:
    """Token ids of (prompt, response) inputs with at most `max_length` tokens, each text tokenized once."""

    def __init__(self, tokenizer, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length
        if getattr(tokenizer, "chat_template", None):
            self.prefix, self.suffix = [], []  # the template writes its own special tokens
        else:
            plain = tokenizer("x", add_special_tokens=False)["input_ids"]
            marked = tokenizer("x")["input_ids"]
            start = next(i for i in range(len(marked)) if marked[i:i + len(plain)] == plain)
            self.prefix, self.suffix = marked[:start], marked[start + len(plain):]
        self.room = max_length - len(self.prefix) - len(self.suffix)
        if self.room < 2:
            raise InputError(f"must leave room for text after {len(self.prefix) + len(self.suffix)} special tokens, "
                             f"got {max_length}", field="max_length")

    def build(self, pairs: list[tuple[str | list[dict], str]]) -> list[list[int]]:
        return [ids for ids, _ in self.build_with_start(pairs)]

    def build_with_start(self, pairs: list[tuple[str | list[dict], str]]) -> list[tuple[list[int], int]]:
        """The token ids of each input, and where its response starts."""
        parts = [prompt_and_response(self.tokenizer, p, r) for p, r in pairs]
        ids = self._tokenize([text for part in parts for text in part])
        return [self.truncate(ids[2 * i], ids[2 * i + 1]) for i in range(len(parts))]

    def truncate(self, prompt: list[int], response: list[int]) -> tuple[list[int], int]:
        """An input that fits is kept whole; else the prompt keeps its end, and a response longer than the
        room keeps its start (and no prompt)."""
        response = response[: self.room]
        keep = min(len(prompt), self.room - len(response))
        head = self.prefix + prompt[len(prompt) - keep:]
        return head + response + self.suffix, len(head)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        distinct = list(dict.fromkeys(texts))  # a prompt shared by K responses is tokenized once
        with quiet_transformers():  # "longer than the maximum length": truncate() cuts next
            ids = dict(zip(distinct, self.tokenizer(distinct, add_special_tokens=False, verbose=False)["input_ids"],
                           strict=True))
        return [ids[t] for t in texts]


def builder_for(tokenizer, model, max_length: int) -> InputBuilder:
    """Inputs of at most MAX_LENGTH tokens, and never longer than the model's position embeddings allow."""
    return InputBuilder(tokenizer, min(max_length, max_positions(model) or max_length))


def encode_annotations(builder: InputBuilder, annotations: list[RankedAnnotation]) -> tuple[list[Encoded], int]:
    """Encoded annotations and the number of pairs left out because both inputs became identical."""
    ids = builder.build([(u.prompt, text) for u in annotations for text in u.texts])
    encoded, identical, offset = [], 0, 0
    for u in annotations:
        rows, slot = [], {}
        for seq in ids[offset: offset + len(u.texts)]:
            rows.append(slot.setdefault(tuple(seq), len(slot)))
        offset += len(u.texts)
        pairs = [(rows[c], rows[r], m, w) for c, r, m, w in u.pairs if rows[c] != rows[r]]
        identical += len(u.pairs) - len(pairs)
        if not pairs:
            continue
        groups: dict[int, list[int]] = {}
        placed = set()  # an input shared by two responses is ranked once, at the better rank
        for rank, row in sorted(zip(u.ranks, rows, strict=True)):
            if row not in placed:
                placed.add(row)
                groups.setdefault(rank, []).append(row)
        encoded.append(Encoded([list(s) for s in slot], pairs, [groups[k] for k in sorted(groups)], u))
    return encoded, identical
