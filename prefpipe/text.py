"""What commands print: aligned plain-text tables (for a terminal and for logs alike)."""

from __future__ import annotations

LEADERBOARD_EMPTY = "(no results: register models and evaluation sets first)"


def format_table(columns: list[str], rows: list[tuple]) -> str:
    cells = [[str(c) for c in columns]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_records(records: list[dict], empty: str) -> str:
    """Rows of dicts (one key order) as a table, or EMPTY when there are none."""
    return format_table(list(records[0]), [tuple(r.values()) for r in records]) if records else empty
