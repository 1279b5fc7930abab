"""Export curated pairs for training elsewhere (TRL RewardTrainer, RewardBench): JSON Lines or Parquet."""

from __future__ import annotations

import os
from pathlib import Path

from prefpipe.contamination import exclude_matches
from prefpipe.errors import InputError
from prefpipe.settings import SPLITS
from prefpipe.sql import run_script, sql
from prefpipe.warehouse import Warehouse

SUFFIXES = {".jsonl": "export/to_jsonl.sql", ".parquet": "export/to_parquet.sql"}


LAYOUTS = ("pairwise", "rewardbench")


def export_pairs(wh: Warehouse, out: Path, split: str | None = "train", layout: str = "pairwise",
                 exclude: list[str] | None = None) -> int:
    """Write the pairs of SPLIT (None: all) to OUT (.jsonl or .parquet) atomically, less the annotations that
    match the evaluation sets EXCLUDE (prefpipe.contamination); return the row count.

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
    exclude_matches(wh.con, exclude or [])
    wh.set_variables(split=split)
    run_script(wh.con, "export/pairs.sql")
    [(messages,)] = wh.con.table("export_has_messages").fetchall()
    wh.con.table(f"export_{layout}_{'messages' if messages else 'text'}").create_view("export_out")
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    [(rows,)] = wh.con.execute(sql(SUFFIXES[out.suffix]), [str(temporary)]).fetchall()  # COPY's row count
    temporary.replace(out)
    return rows
