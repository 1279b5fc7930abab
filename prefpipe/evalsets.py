"""Evaluation sets: RewardBench rows read into one shape; any bad row fails naming its file, line and field.

Formats (JSON Lines, a JSON array, or Parquet):
- rewardbench: {id, prompt, chosen, rejected, subset}, chosen and rejected strings, prompt a string or
  a list of {role, content} messages;
- rewardbench2: the same with chosen and rejected lists (best-of-N; the `Ties` subset has several chosen).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from prefpipe.errors import InputError
from prefpipe.rewardbench import ties_problems

FORMATS = ("rewardbench", "rewardbench2")


@dataclass(frozen=True)
class Example:
    example_id: str
    subset: str
    prompt: str | list[dict]
    chosen: tuple[str, ...]
    rejected: tuple[str, ...]


Scores = list[tuple[list[float], list[float]]]  # (chosen scores, rejected scores) per example


def read_evalset(path: Path | str, fmt: str = "auto") -> list[Example]:
    """The examples of PATH; any bad row fails with its file, line, field and reason."""
    return read_evalset_format(path, fmt)[1]


def read_evalset_format(path: Path | str, fmt: str = "auto") -> tuple[str, list[Example]]:
    """The format of PATH (auto: rewardbench2 when the first row's chosen is a list) and its examples."""
    path = Path(path)
    if fmt not in ("auto", *FORMATS):
        raise InputError(f"must be auto or one of {', '.join(FORMATS)}, got {fmt!r}", field="--format")
    examples, seen = [], {}
    for line, row in _rows(path):
        if not isinstance(row, dict):
            raise InputError(f"must be an object with id, prompt, chosen, rejected, subset, got {type(row).__name__}",
                             file=path, line=line)
        missing = [k for k in ("id", "prompt", "chosen", "rejected", "subset") if row.get(k) is None]
        if missing:
            raise InputError("missing or null", file=path, line=line, field=", ".join(missing))
        if fmt == "auto":
            fmt = "rewardbench2" if isinstance(row["chosen"], list) else "rewardbench"
        example = Example(str(row["id"]), str(row["subset"]), _prompt(row["prompt"], path, line),
                          _texts(row, "chosen", fmt, path, line), _texts(row, "rejected", fmt, path, line))
        if example.example_id in seen:
            raise InputError(f"duplicate id {example.example_id!r} (first on line {seen[example.example_id]})",
                             file=path, line=line, field="id")
        seen[example.example_id] = line
        examples.append(example)
    if not examples:
        raise InputError("no examples", file=path)
    if fmt == "rewardbench2":
        _check_ties([e for e in examples if e.subset == "Ties"], seen, path)
    return fmt, examples


def _check_ties(ties: list[Example], lines: dict[str, int], path: Path) -> None:
    """Refuse the Ties rows that RewardBench 2's formula cannot score, naming the first and counting the rest."""
    problems = ties_problems([(e.example_id, len(e.chosen) + len(e.rejected), len(e.chosen)) for e in ties])
    if problems:
        i, field, reason = problems[0]
        more = f" ({len(problems) - 1} more Ties rows like it)" if len(problems) > 1 else ""
        raise InputError(reason + more, file=path, line=lines[ties[i].example_id], field=field)


def _rows(path: Path):
    if not path.is_file():
        raise InputError("no such file", file=path)
    if path.suffix == ".parquet":
        try:
            yield from enumerate(pq.read_table(path).to_pylist(), start=1)
        except (OSError, pa.ArrowException) as e:
            raise InputError(f"not a readable Parquet file: {e}", file=path) from None
        return
    data = path.read_bytes()
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        raise InputError(f"not valid UTF-8 (byte {e.start - line_start + 1} of the line)", file=path,
                         line=data.count(b"\n", 0, e.start) + 1) from None
    if text.lstrip().startswith("["):
        yield from enumerate(_json(text, path, 1), start=1)
        return
    for line, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            yield line, _json(raw, path, line)


def _json(text: str, path: Path, line: int) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON: {e.msg}", file=path, line=line + e.lineno - 1) from None
    except RecursionError:
        raise InputError("not a readable row: JSON nested too deeply", file=path, line=line) from None


def _prompt(value: object, path: Path, line: int) -> str | list[dict]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                 and isinstance(m.get("content"), str) for m in value):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise InputError("must be a non-empty string or a list of {role, content} messages", file=path, line=line,
                     field="prompt")


def _texts(row: dict, key: str, fmt: str, path: Path, line: int) -> tuple[str, ...]:
    value = row[key]
    if fmt == "rewardbench" and isinstance(value, str):
        return (value,)
    if fmt == "rewardbench2" and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    wanted = "a string" if fmt == "rewardbench" else "a non-empty list of strings"
    raise InputError(f"must be {wanted} in the {fmt} format, got {type(value).__name__}", file=path, line=line,
                     field=key)
