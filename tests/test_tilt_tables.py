"""The tilt analysis as tables (prefpipe.tilt_tables): pieces and row order change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from prefpipe import tilt_tables as tilt_tables_module
from prefpipe.config import TiltConfig
from prefpipe.tilt_tables import tilt_tables

BETAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
NS = (1, 2, 4, 8, 16, 32)


def sorted_rows(tables) -> list[list[dict]]:
    key = lambda r: (r["kind"], r["beta"] or 0, r["n"] or 0, r.get("prompt_id", ""))  # noqa: E731
    return [sorted(t.to_pylist(), key=key) for t in tables]


@pytest.mark.parametrize("piece_rows", [1, 7, 64])
def test_tables_do_not_depend_on_pieces_or_order(monkeypatch, piece_rows):
    """tilt_tables cuts the candidates into pieces between prompts, two at a time: any cut, and any order of
    the rows, gives the same tables as one piece."""
    rng = np.random.default_rng(piece_rows)
    sizes = rng.integers(1, 9, 50)
    prompt = np.repeat([f"p{i}" for i in range(50)], sizes)
    reward, log_ref = np.round(rng.normal(0, 2, len(prompt))), rng.normal(0, 1.5, len(prompt))
    config = TiltConfig(BETAS, NS)
    whole = sorted_rows(tilt_tables(prompt, reward, log_ref, config, "file"))
    monkeypatch.setattr(tilt_tables_module, "PIECE_ROWS", piece_rows)
    order = rng.permutation(len(prompt))
    cut = sorted_rows(tilt_tables(prompt[order], reward[order], log_ref[order], config, "file"))
    assert [len(rows) for rows in whole] == [50 * 12, 12] and whole[1][0]["prompts"] == 50
    for a, b in zip(whole, cut, strict=True):
        for x, y in zip(a, b, strict=True):
            numbers = [k for k, v in x.items() if isinstance(v, float)]
            assert {k: v for k, v in x.items() if k not in numbers} == {k: v for k, v in y.items() if k not in numbers}
            assert [x[k] for k in numbers] == pytest.approx([y[k] for k in numbers], rel=1e-9)
