"""Readers: each batch format becomes canonical JSON lines, parsed into the temp table stage_parsed.

A reader yields lines (line, raw, read_rule, read_error): `raw` is one canonical annotation as JSON
text; `read_error` is set when the reader itself could not read that line (it is quarantined).
Files are streamed in blocks, never loaded whole.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe.errors import InputError
from prefpipe.sql import run_script

FORMATS = ("canonical", "csv", "parquet")
LONG_COLUMNS = ("prompt_id", "prompt", "annotator_id", "annotation_id", "response_id", "text", "rank",
                "dropped", "drop_reason", "edited_from")
REQUIRED_LONG_COLUMNS = ("prompt_id", "prompt", "response_id", "text")
BLOCK_BYTES = 32 << 20
# CSV cells are text: a whole number or true/false becomes a JSON number or boolean (anything else
# stays a string, and so fails the rank and dropped rules); a prompt may be a JSON list of messages.
_CSV_SCALAR = ("CASE WHEN trim({0}) = '' THEN NULL WHEN regexp_full_match(trim({0}), '-?[0-9]{{1,18}}') "
               "OR lower(trim({0})) IN ('true', 'false') THEN lower(trim({0}))::JSON ELSE to_json({0}) END")
CSV_CELLS = {"rank": _CSV_SCALAR, "dropped": _CSV_SCALAR,
             "prompt": "CASE WHEN left(ltrim({0}), 1) = '[' AND json_valid({0}) THEN {0}::JSON "
                       "ELSE to_json({0}) END"}
LINES_SCHEMA = pa.schema([("line", pa.int64()), ("raw", pa.large_string()),
                          ("read_rule", pa.string()), ("read_error", pa.string())])


def detect_format(path: Path) -> str:
    """The format of a batch file from its name (.jsonl[.gz], .json, .csv[.gz], .parquet)."""
    name = path.name.lower().removesuffix(".gz")
    for suffix, fmt in ((".jsonl", "canonical"), (".json", "canonical"), (".ndjson", "canonical"),
                        (".csv", "csv"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return fmt
    raise InputError(f"cannot tell the format from the name; pass --format ({'|'.join(FORMATS)})",
                     file=path)


def content_hash(path: Path) -> str:
    """sha256 of the file's bytes: a batch's id, so a re-sent file is recognised and skipped."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def stage_lines(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> None:
    """Read PATH as FMT and parse its lines into the temp table stage_parsed (sql/ingest/01_parse.sql)."""
    if fmt == "canonical":
        stream = pa.RecordBatchReader.from_batches(
            LINES_SCHEMA, (b for table in canonical_blocks(path) for b in table.to_batches()))
        con.register("lines_source", stream)
    elif fmt in ("csv", "parquet"):
        _stage_long_table(con, path, fmt)
        con.execute("CREATE OR REPLACE TEMP VIEW lines_source AS SELECT * FROM long_lines")
    else:
        raise InputError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}", file=path)
    try:
        run_script(con, "ingest/01_parse.sql")
    finally:
        if fmt == "canonical":
            con.unregister("lines_source")


def _open(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def canonical_blocks(path: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.Table]:
    """The lines of a JSON Lines file (optionally gzip), numbered from 1, in Arrow tables."""
    next_line, tail = 1, b""
    try:
        with _open(path) as f:
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
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InputError(f"cannot read: {e}", file=path) from None


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
    return pa.table([numbers, raw, rules, errors], schema=LINES_SCHEMA)


def _stage_long_table(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> None:
    """One row per response -> one canonical line per annotation (sql/ingest/00_long_table.sql)."""
    if fmt == "csv":  # every cell is read as text; ranks, booleans and message lists are recognised
        source, first_row, cells = "read_csv({}, all_varchar = true, header = true)", 2, CSV_CELLS
    else:
        source, first_row, cells = "read_parquet({})", 1, {}
    quoted = "'" + str(path).replace("'", "''") + "'"
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW long_source AS SELECT * FROM {source.format(quoted)}")
        columns = [d[0].lower() for d in con.execute("SELECT * FROM long_source LIMIT 0").description]
    except duckdb.Error as e:
        raise InputError(f"not a readable {fmt} file: {str(e).splitlines()[0]}", file=path) from None
    missing = [c for c in REQUIRED_LONG_COLUMNS if c not in columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; a long table has one row per response "
                         f"with columns {', '.join(LONG_COLUMNS)}", file=path)
    select = ", ".join((cells.get(c, "to_json({})") if c in columns else "NULL::JSON").format(f'"{c}"')
                       + f" AS {c}" for c in LONG_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP VIEW long_cells AS "
                f"SELECT row_number() OVER () + {first_row - 1} AS row, {select} FROM long_source")
    try:
        run_script(con, "ingest/00_long_table.sql")
    except duckdb.Error as e:
        raise InputError(f"not a readable {fmt} file: {str(e).splitlines()[0]}", file=path) from None
