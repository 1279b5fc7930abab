"""Export curated pairs for training elsewhere (TRL RewardTrainer, RewardBench): JSON Lines or Parquet."""

from __future__ import annotations

import os
from pathlib import Path

from prefpipe.errors import InputError
from prefpipe.sql import run_script
from prefpipe.warehouse import Warehouse

SPLITS = ("train", "validation", "test")
SUFFIXES = {".jsonl": "json", ".parquet": "parquet"}


LAYOUTS = ("pairwise", "rewardbench")


def export_pairs(wh: Warehouse, out: Path, split: str | None = "train", layout: str = "pairwise") -> int:
    """Write the pairs of SPLIT (None: all) to OUT (.jsonl or .parquet) atomically; return the row count.

    pairwise: TRL's layout (prompt, chosen, rejected, margin, ...). rewardbench: an evaluation set
    (id, prompt, chosen, rejected, subset = curated-SPLIT), chosen and rejected plain strings."""
    out = Path(out)
    if split is not None and split not in SPLITS:
        raise InputError(f"must be one of {', '.join(SPLITS)} or all, got {split!r}", field="--split")
    if out.suffix not in SUFFIXES:
        raise InputError(f"the output must end in {' or '.join(SUFFIXES)}", file=out)
    if not out.parent.is_dir():
        raise InputError("no such folder", file=out.parent)
    if layout not in LAYOUTS:
        raise InputError(f"must be one of {', '.join(LAYOUTS)}, got {layout!r}", field="--format")
    wh.set_variables(split=split)
    run_script(wh.con, "export/pairwise.sql")
    conversational = wh.con.execute("SELECT bool_or(prompt_is_messages) FROM export_rows").fetchone()[0]
    chosen = ("[{'role': 'assistant', 'content': chosen_text}] AS chosen, "
              "[{'role': 'assistant', 'content': rejected_text}] AS rejected" if conversational
              and layout == "pairwise" else "chosen_text AS chosen, rejected_text AS rejected")
    prompt = "prompt_messages" if conversational else "prompt_text"
    columns = ("margin, weight, split, prompt_id, annotator_id" if layout == "pairwise"
               else "'curated-' || split AS subset")
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    rows = wh.con.execute(f"COPY (SELECT id, {prompt} AS prompt, {chosen}, {columns} FROM export_rows ORDER BY id) "
                          f"TO ? (FORMAT {SUFFIXES[out.suffix]})", [str(temporary)]).fetchone()[0]  # its row count
    temporary.replace(out)
    return rows
