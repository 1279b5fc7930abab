"""Readers: every batch format becomes canonical annotations, parsed into the temp table stage_parsed.

Canonical JSON Lines are streamed straight into sql/ingest/01_parse.sql. Every other format is read
as source records (lines of a JSON Lines file, items of a JSON array, rows of a table) and turned into
canonical annotations by its adapter in sql/adapters/, so the same rules, quarantine and pairs apply.
Files are streamed in blocks, never loaded whole; what does not fit in memory spills to disk.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.errors import InputError
from prefpipe.sql import run_script, sql

LONG_COLUMNS = ("prompt_id", "prompt", "annotator_id", "annotation_id", "response_id", "text", "rank",
                "dropped", "drop_reason", "edited_from")
# The long-table formats: the SQL that turns a table's rows into cells (sql/adapters/), and the columns it
# needs (a tuple: any one of them). Every other format is read as records by sql/adapters/FORMAT.sql.
LONG_TABLES = {"csv": ("adapters/long_table.sql", ("prompt_id", "prompt", "response_id", "text")),
               "parquet": ("adapters/long_table.sql", ("prompt_id", "prompt", "response_id", "text")),
               "ratings": ("adapters/ratings_table.sql", ("prompt", "score", ("text", "response")))}
BLOCK_BYTES = 32 << 20
SNIFF_BYTES = 1 << 20
LINES_SCHEMA = pa.schema([("entry", pa.int64()), ("line", pa.int64()), ("raw", pa.large_string()),
                          ("read_rule", pa.string()), ("read_error", pa.string()), ("skip_reason", pa.string())])


@dataclass(frozen=True)
class Format:
    name: str
    expects: str  # what a file of this format holds, for the wrong-format message
    min_chars: int = 1  # shortest response text allowed (hh-rlhf: an empty last turn is an answer)

    def matches(self, sample: Sample) -> bool:
        keys, first = sample.keys, sample.first
        match self.name:
            case "canonical":
                return sample.kind in ("jsonl", "array") and ("responses" in keys or (
                    "prompt_id" in keys and not keys & {"completions", "chosen", "message_id"}))
            case "csv" | "parquet":
                return sample.kind == self.name and {"response_id", "text"} <= keys and "score" not in keys
            case "hh-rlhf":
                return ({"chosen", "rejected"} <= keys and "prompt" not in keys
                        and isinstance(first.get("chosen"), str) and "\n\nAssistant:" in first["chosen"])
            case "pairwise":
                return {"chosen", "rejected"} <= keys and ("prompt" in keys or isinstance(first.get("chosen"), list))
            case "oasst":
                return {"message_tree_id", "prompt"} <= keys or {"message_id", "role", "text"} <= keys
            case "pandalm":
                return {"response1", "response2"} <= keys and any(k.startswith("annotator") for k in keys)
            case "ratings":
                return "completions" in keys or (sample.kind in ("csv", "parquet") and "score" in keys)
        return False


FORMATS = {f.name: f for f in (
    Format("canonical", "JSON Lines annotations {prompt_id, prompt, responses: [...]}"),
    Format("csv", "a long CSV table, one row per response: " + ", ".join(LONG_COLUMNS)),
    Format("parquet", "a long Parquet table, one row per response: " + ", ".join(LONG_COLUMNS)),
    Format("hh-rlhf", 'rows {chosen, rejected} holding whole "\\n\\nHuman: ... \\n\\nAssistant: ..." dialogues',
           min_chars=0),
    Format("oasst", "OpenAssistant message trees {message_tree_id, prompt: {..., replies}} "
                    "or messages {message_id, parent_id, role, text, rank}"),
    Format("pandalm", "PandaLM items {idx, instruction, input, response1, response2, annotator1..3}",
           min_chars=0),
    Format("pairwise", "rows {prompt, chosen, rejected} (strings or message lists), "
                       "or chosen/rejected conversations sharing a prefix"),
    Format("ratings", "rows {prompt, completions: [{response, score}]} or a long table with a score column"),
)}


@dataclass(frozen=True)
class Sample:
    """How a file is laid out (jsonl, array, csv, parquet) and its first record (or its columns)."""

    kind: str
    records: tuple[dict, ...]  # the first records that could be read (a table: one, of its columns)

    @property
    def keys(self) -> set[str]:
        return {k for r in self.records for k in r}

    @property
    def first(self) -> dict:
        """The first value seen of every key."""
        values: dict = {}
        for record in self.records:
            values = record | values
        return values

    def describe(self) -> str:
        keys = ", ".join(sorted(self.keys)[:12]) or "nothing"
        return {"jsonl": f"JSON Lines with keys {keys}", "array": f"a JSON array of objects with keys {keys}",
                "csv": f"a CSV table with columns {keys}", "parquet": f"a Parquet table with columns {keys}"}[self.kind]


def sample(path: Path) -> Sample:
    """The layout and first record of PATH, read from its first megabyte (or the table's header)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        return Sample("parquet", (dict.fromkeys(_table_columns(path, "parquet")),))
    with _read_errors(path), _open(path) as f:
        head = f.read(SNIFF_BYTES).removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace").lstrip()
    if head.startswith("["):
        first = _first_array_item(path)
        return Sample("array", (first,) if isinstance(first, dict) else ())
    if head.startswith("{"):
        return Sample("jsonl", tuple(_objects(head.splitlines()[:50])))
    if not head:
        raise InputError("the file is empty", file=path)
    return Sample("csv", (dict.fromkeys(_table_columns(path, "csv")),))


def _objects(lines: list[str]) -> Iterator[dict]:
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # quarantined by the ingest like any other such line
            continue
        if isinstance(record, dict):
            yield record


def detect_format(path: Path, found: Sample | None = None) -> str:
    """The one format whose layout the file's first record has; unsure -> ask for --format."""
    found = found or sample(path)
    names = [f.name for f in FORMATS.values() if f.matches(found)]
    if found.kind in ("csv", "parquet") and not names:  # a long table; its reader names the missing columns
        names = [found.kind]
    if len(names) != 1:
        raise InputError(f"cannot tell the format of {found.describe()}; pass --format "
                         f"({'|'.join(FORMATS)})", file=path)
    return names[0]


def check_format(path: Path, fmt: str, found: Sample) -> None:
    """Fail at once, loading nothing, when PATH (sampled as FOUND) does not look like FMT."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; expected auto or one of {', '.join(FORMATS)}", file=path)
    if not FORMATS[fmt].matches(found) and not (fmt in ("csv", "parquet") and found.kind in ("csv", "parquet")):
        raise InputError(f"not a {fmt} file: expected {FORMATS[fmt].expects}; found {found.describe()}", file=path)


def stage_lines(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, found: Sample) -> None:
    """Read PATH (sampled as FOUND) as FMT into the temp table stage_parsed: one annotation per entry."""
    kind = found.kind
    direct = fmt == "canonical" and kind == "jsonl"  # the file's own lines; an adapter's are checked as records
    con.execute("SET VARIABLE check_repeated_keys = ?", [direct])
    if direct:
        with _lines_stream(con, "lines_source", path):
            run_script(con, "ingest/01_parse.sql")
        return
    con.execute("SET VARIABLE source_path = ?", [str(path)])  # bound, never pasted into the SQL
    con.execute("SET VARIABLE layout = ?", [kind])
    if kind in ("csv", "parquet"):
        _read(con, path, kind, f"readers/{kind}.sql")
    if fmt in LONG_TABLES and kind in ("csv", "parquet"):
        cells, required = LONG_TABLES[fmt]
        missing = [" or ".join(c) if isinstance(c, tuple) else c for c in required
                   if not set(c if isinstance(c, tuple) else (c,)) & found.keys]
        if missing:
            raise InputError(f"missing column(s) {', '.join(missing)}; expected {FORMATS[fmt].expects}", file=path)
        _read(con, path, fmt, "adapters/long_columns.sql", cells, "adapters/long_lines.sql")
    else:
        _stage_records(con, path, kind)
        _read(con, path, fmt, "adapters/records.sql", f"adapters/{fmt.replace('-', '_')}.sql", "adapters/entries.sql")
        run_script(con, "adapters/lines_source.sql")
    run_script(con, "ingest/01_parse.sql")


def _read(con: duckdb.DuckDBPyConnection, path: Path, what: str, *scripts: str) -> None:
    """Run SCRIPTS on PATH's rows; a file that DuckDB cannot read as WHAT fails in one line."""
    try:
        for script in scripts:
            run_script(con, script)
    except duckdb.Error as e:
        raise InputError(f"not a readable {what} file: {str(e).splitlines()[0]}", file=path) from None


@contextmanager
def _lines_stream(con: duckdb.DuckDBPyConnection, name: str, path: Path):
    """The lines of PATH as the Arrow stream NAME, for the SQL run inside the block. A read error in the
    stream (a truncated gzip, bytes after its end) reaches DuckDB as a bare abort: it is raised here as the
    one-line InputError it was."""
    failed: list[InputError] = []

    def batches():
        try:
            for table in canonical_blocks(path):
                yield from table.to_batches()
        except InputError as e:
            failed.append(e)
            raise

    con.register(name, pa.RecordBatchReader.from_batches(LINES_SCHEMA, batches()))
    try:
        yield
    except duckdb.Error:
        if failed:
            raise failed[0] from None
        raise
    finally:
        con.unregister(name)
    if failed:
        raise failed[0]


def _stage_records(con: duckdb.DuckDBPyConnection, path: Path, kind: str) -> None:
    """source_records(line, raw, read_rule, read_error): the lines of a JSON Lines file, the items of a
    JSON array (`line` = the item's number) or the rows of a table, for an adapter to turn into annotations."""
    if kind == "jsonl":
        with _lines_stream(con, "source_stream", path):
            run_script(con, "readers/jsonl_records.sql")
        return
    _read(con, path, kind, "readers/array.sql" if kind == "array" else "readers/table_records.sql")


def _first_array_item(path: Path) -> object:
    try:
        with duckdb.connect() as con:  # its own: the module's default connection belongs to the caller
            row = (con.execute(sql("readers/first_array_item.sql"), [str(path)]).fetchall() or [None])[0]
    except duckdb.Error as e:
        raise InputError(f"not a readable JSON array: {str(e).splitlines()[0]}", file=path) from None
    try:
        return json.loads(row[0]) if row else {}
    except RecursionError:  # too deep for Python: not a record layout to detect (the ingest quarantines it)
        return {}


def _table_columns(path: Path, kind: str) -> list[str]:
    try:
        with duckdb.connect() as con:  # its own: the module's default connection belongs to the caller
            table = con.read_parquet(str(path)) if kind == "parquet" else con.read_csv(str(path), header=True,
                                                                                       all_varchar=True)
            return [c.lower() for c in table.columns]
    except duckdb.Error as e:
        raise InputError(f"not a readable table: {str(e).splitlines()[0]}", file=path) from None


def _open(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def canonical_blocks(path: Path, block_bytes: int | None = None) -> Iterator[pa.Table]:
    """The lines of a JSON Lines file (optionally gzip), numbered from 1, in Arrow tables."""
    block_bytes = block_bytes or BLOCK_BYTES
    next_line, tail = 1, b""
    with _read_errors(path), _open(path) as f:
        while block := f.read(block_bytes):
            if next_line == 1 and not tail:
                block = block.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
            data = tail + block
            cut = data.rfind(b"\n")
            if cut < 0:  # a line longer than the block: read on
                tail = data
                continue
            table = _lines_table(data[:cut], next_line)
            next_line += table.num_rows
            tail = data[cut + 1:]
            yield table
        if tail:
            yield _lines_table(tail, next_line)


@contextmanager
def _read_errors(path: Path):
    """A file that cannot be read whole fails in one line: a truncated or corrupt gzip, bytes after its end."""
    try:
        yield
    except EOFError as e:  # gzip: "Compressed file ended before the end-of-stream marker was reached"
        raise InputError(f"truncated gzip: {e}", file=path) from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise InputError(f"not a valid gzip stream (corrupt, or bytes after its end): {e}", file=path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", file=path) from None


def _lines_table(chunk: bytes, first_line: int) -> pa.Table:
    """Split and UTF-8-check a block in Arrow; only a block with a bad line is looked at line by line."""
    lines = pc.split_pattern(pa.array([chunk], pa.large_binary()), b"\n").flatten()
    n = len(lines)
    try:
        raw, errors = lines.cast(pa.large_string()), pa.nulls(n, pa.string())
    except pa.ArrowInvalid:
        texts, messages = [], []
        for line in lines.to_pylist():
            try:
                texts.append(line.decode("utf-8"))
                messages.append(None)
            except UnicodeDecodeError as e:
                texts.append(line.decode("utf-8", errors="replace"))
                messages.append(f"line is not valid UTF-8 (byte {e.start + 1}: {line[e.start:e.start + 1]!r})")
        raw, errors = pa.array(texts, pa.large_string()), pa.array(messages, pa.string())
    rules = pc.if_else(pc.is_null(errors), pa.scalar(None, pa.string()), "utf8")
    numbers = pa.array(range(first_line, first_line + n), pa.int64())
    return pa.table([numbers, numbers, raw, rules, errors, pa.nulls(n, pa.string())], schema=LINES_SCHEMA)
