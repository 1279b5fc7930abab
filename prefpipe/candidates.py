"""Candidates: the responses a policy could give to each prompt, for the analyses of what a reward does.

A candidates file (JSON Lines, optionally gzip, or Parquet), one candidate per row:

    {"prompt_id": "optional", "prompt": "text, or {role, content} messages", "response_id": "optional",
     "response": "text", "ref_logprob": -12.5 (optional: log π_ref of the response), "reference": false}

`prompt_id` defaults to a hash of the prompt, `response_id` to a hash of the response. Or the warehouse's
candidates: every comparable response of every annotation of a split (an annotation's K ranked responses
are exactly a candidate set). A prompts file (the trade-off's) has the same rows with only `prompt` needed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from prefpipe.errors import InputError
from prefpipe.settings import SPLITS
from prefpipe.sql import run_script


@dataclass(frozen=True)
class Candidate:
    prompt_id: str
    prompt: str | list[dict]
    response_id: str
    response: str
    reference: bool = False
    ref_logprob: float | None = None


def read_candidates(path: Path | str) -> list[Candidate]:
    """The candidates of a file; any bad row fails naming its file, line and field."""
    path = Path(path)
    found, seen, prompts = [], {}, {}
    for line, row in _rows(path):
        candidate = _candidate(row, path, line)
        key = (candidate.prompt_id, candidate.response_id)
        if key in seen:
            raise InputError(f"prompt {key[0]!r} already has a response {key[1]!r} (line {seen[key]})", file=path,
                             line=line, field="response_id")
        first = prompts.setdefault(candidate.prompt_id, (line, candidate))
        _check_same_prompt(first, candidate, path, line)
        seen[key] = line
        found.append(candidate)
    if not found:
        raise InputError("no candidates", file=path)
    return found


def _check_same_prompt(first: tuple[int, Candidate], candidate: Candidate, path: Path, line: int) -> None:
    """The rows of one prompt_id hold one prompt, and give π_ref's log-probability on all rows or none: a prompt
    with some would mix two definitions of π_ref."""
    first_line, earlier = first
    if candidate.prompt != earlier.prompt:
        raise InputError(f"prompt_id {candidate.prompt_id!r} has another prompt on line {first_line}", file=path,
                         line=line, field="prompt")
    if (candidate.ref_logprob is None) != (earlier.ref_logprob is None):
        raise InputError(f"prompt_id {candidate.prompt_id!r}: ref_logprob on some of its rows only (line "
                         f"{first_line} {'has' if earlier.ref_logprob is not None else 'has none'}); give it on all "
                         "or none", file=path, line=line, field="ref_logprob")


def read_prompts(path: Path | str) -> list[tuple[str, str | list[dict]]]:
    """The distinct prompts of a file (JSON Lines, optionally gzip, or Parquet; a row needs `prompt`, and
    may give `prompt_id`; other fields are ignored), as (prompt_id, prompt) in the file's order."""
    path = Path(path)
    found: dict[str, str | list[dict]] = {}
    for line, row in _rows(path):
        prompt_id, prompt = _prompt(row, _bad(path, line), "a prompt")
        found.setdefault(prompt_id, prompt)
    if not found:
        raise InputError("no prompts", file=path)
    return list(found.items())


def split_candidates(wh, split: str) -> list[Candidate]:
    """Every comparable response of every annotation of SPLIT in the warehouse, once per prompt."""
    if split not in SPLITS:
        raise InputError(f"must be one of {', '.join(SPLITS)}, got {split!r}", field="--from-split")
    wh.set_variables(split=split)
    run_script(wh.con, "analysis/split_candidates.sql")
    rows = wh.con.table("split_candidates").fetchall()
    if not rows:
        raise InputError(f"the warehouse has no comparable responses in the {split} split", field="--from-split")
    return [Candidate(prompt_id, json.loads(prompt), response_id, text)
            for prompt_id, prompt, response_id, text in rows]


def candidates_table(candidates: list[Candidate]) -> pa.Table:
    return pa.table({"prompt_id": [c.prompt_id for c in candidates],
                     "prompt": [json.dumps(c.prompt) for c in candidates],
                     "response_id": [c.response_id for c in candidates],
                     "response": [c.response for c in candidates],
                     "reference": [c.reference for c in candidates],
                     "ref_logprob": pa.array([c.ref_logprob for c in candidates], pa.float64())})


def stable_id(prefix: str, value: object) -> str:
    return f"{prefix}-{hashlib.md5(json.dumps(value).encode()).hexdigest()[:16]}"


def _rows(path: Path):
    if path.is_dir():
        raise InputError("is a folder, not a file", file=path)
    if not path.is_file():
        raise InputError("no such file", file=path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        try:
            yield from enumerate(pq.read_table(path).to_pylist(), start=1)
        except (OSError, pa.ArrowException) as e:
            raise InputError(f"not a readable Parquet file: {e}", file=path) from None
        return
    try:
        data = gzip.decompress(path.read_bytes()) if magic[:2] == b"\x1f\x8b" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise InputError(f"not a readable gzip file: {e}", file=path) from None
    for line, raw in enumerate(data.split(b"\n"), start=1):
        if raw.strip():
            try:
                yield line, json.loads(raw, object_pairs_hook=_unique_keys)
            except UnicodeDecodeError as e:
                raise InputError(f"not valid UTF-8 (byte {e.start + 1} of the line)", file=path, line=line) from None
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON: {e.msg}", file=path, line=line) from None
            except RecursionError:
                raise InputError("not a readable row: JSON nested too deeply", file=path, line=line) from None
            except DuplicateKey as e:
                raise InputError("the key appears twice (readers disagree on which value wins)", file=path,
                                 line=line, field=str(e)) from None


class DuplicateKey(ValueError):
    """An object of a JSON row holds a key twice."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise DuplicateKey(next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i])))
    return found


def _bad(path: Path, line: int):
    """The error of a bad FIELD of a row, for REASON."""
    return lambda field, reason: InputError(reason, file=path, line=line, field=field)


def _candidate(row: object, path: Path, line: int) -> Candidate:
    bad = _bad(path, line)
    prompt_id, prompt = _prompt(row, bad, "prompt and response")
    response = row.get("response")
    if not isinstance(response, str) or not response:
        raise bad("response", "missing" if response is None else
                  "must not be empty" if response == "" else f"must be a string, got {type(response).__name__}")
    response_id = _id(row, "response_id", stable_id("response", response), bad)
    logprob = row.get("ref_logprob")
    if logprob is not None and (isinstance(logprob, bool) or not isinstance(logprob, int | float)
                                or not math.isfinite(logprob) or logprob > 0):
        raise bad("ref_logprob", f"must be a log-probability (a number at most 0), got {logprob!r}")
    reference = row.get("reference", False)
    if not isinstance(reference, bool):
        raise bad("reference", f"must be true or false, got {reference!r}")
    return Candidate(prompt_id, prompt, response_id, response, reference,
                     None if logprob is None else float(logprob))


def _prompt(row: object, bad, needs: str) -> tuple[str, str | list[dict]]:
    """(prompt_id, prompt) of a row: a non-empty string or {role, content} messages, its id given or hashed."""
    if not isinstance(row, dict):
        raise bad("", f"must be an object with {needs}, got {type(row).__name__}")
    prompt = row.get("prompt")
    if prompt is None:
        raise bad("prompt", "missing")
    if not ((isinstance(prompt, str) and prompt) or (isinstance(prompt, list) and prompt and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in prompt))):
        raise bad("prompt", "must be a non-empty string or a list of {role, content} messages")
    if isinstance(prompt, list):
        prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
    return _id(row, "prompt_id", stable_id("prompt", prompt), bad), prompt


def _id(row: dict, field: str, default: str, bad) -> str:
    value = row.get(field)
    if value is not None and (isinstance(value, bool) or not isinstance(value, str | int) or str(value) == ""):
        raise bad(field, f"must be a non-empty string, got {value!r}")
    return default if value is None else str(value)
