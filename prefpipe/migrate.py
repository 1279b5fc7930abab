"""The warehouse's one-time steps, run on purpose and never by opening it: cluster its prompts by
near-duplicates when it never was (made before prefpipe 0.4) or was clustered with other dedup settings, and
check against the whole warehouse the registered sets that never were. The ingest and set registration run
them first; `prefpipe migrate` runs them alone; readers (`stats`, `sql`, `export`) only say they are due."""

from __future__ import annotations

from prefpipe import contamination, dedup
from prefpipe.dedup import Params


def migrate(wh, params: Params) -> list[str]:
    """Run what is due on the warehouse WH (prefpipe.warehouse); a message for each step that changed it."""
    return [m for m in (dedup.recluster(wh, params), *contamination.check_registered(wh)) if m]


def due(wh, params: Params) -> list[str]:
    """What `migrate` would do to WH, in words; nothing is computed or written."""
    found = []
    [(annotations,)] = wh.con.table("annotations").count("*").fetchall()
    if annotations and (why := dedup.recluster_reason(wh.con, params)):
        found.append(f"cluster the prompts by near-duplicates ({why})")
    if unchecked := [name for name, *_ in contamination.unchecked_sets(wh.con)]:
        found.append(f"check {', '.join(unchecked)} against the whole warehouse")
    return found
