"""Ingest one batch file: read -> validate -> load, as three plain functions.

The state between the steps lives in temp tables of the warehouse connection (stage_*, valid_*),
so a batch larger than memory spills to disk instead of failing. The Prefect tasks in tasks/ call
these functions one by one; benchmarks and tests call them directly.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prefpipe import contamination, dedup
from prefpipe.errors import InputError
from prefpipe.expectations import failing_profiles, warm_up
from prefpipe.files import content_hash
from prefpipe.formats import FORMATS, check_format, detect_format, sample, stage_lines
from prefpipe.migrate import migrate
from prefpipe.settings import Settings
from prefpipe.sql import registered, run_script, sql
from prefpipe.text import format_table
from prefpipe.warehouse import Warehouse

SUMMARY_COLUMNS = ["source", "status", "rows_in", "loaded", "replaced", "quarantined", "skipped", "pairs",
                   "ties", "identical_texts", "contaminated", "quarantined_by_rule", "skipped_by_reason", "batch_id"]


@dataclass
class BatchSummary:
    """What happened to one batch file. rows_in = loaded + quarantined + skipped, always."""

    source: str
    format: str
    batch_id: str
    status: str = "read"  # read -> validated -> loaded; or skipped / failed
    rows_in: int = 0
    loaded: int = 0
    replaced: int = 0
    quarantined: int = 0
    skipped: int = 0
    pairs: int = 0
    ties: int = 0
    identical_texts: int = 0
    contaminated: int = 0  # new prompts and responses that match a registered evaluation set
    dedup_seconds: float = 0.0  # of `seconds`: clustering prompts and checking them against the evaluation sets
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter, repr=False)

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.loaded + self.quarantined + self.skipped

    def as_row(self) -> dict:
        row = asdict(self)
        del row["started"]
        row["batch_id"] = self.batch_id[:12]
        row["quarantined_by_rule"] = ", ".join(f"{k} {v}" for k, v in self.quarantined_by_rule.items())
        row["skipped_by_reason"] = ", ".join(f"{k} {v}" for k, v in self.skipped_by_reason.items())
        return row

    def summary_row(self) -> dict:
        """The batch's outcome in the summary's columns (SUMMARY_COLUMNS)."""
        row = self.as_row()
        return {k: row[k] for k in SUMMARY_COLUMNS}

    def line(self) -> str:
        """The batch's outcome in one line of the run's log."""
        if self.status == "skipped":
            return (f"{self.source}: skipped, identical to batch {self.batch_id[:12]} ingested before "
                    f"({self.rows_in} rows)")
        if self.status == "failed":
            return self.message
        matched = f"; {self.contaminated} prompts or responses match an evaluation set" if self.contaminated else ""
        return (f"{self.source}: {self.rows_in} rows = {self.loaded} loaded ({self.replaced} replaced) + "
                f"{self.quarantined} quarantined + {self.skipped} skipped; {self.pairs} pairs, {self.ties} ties, "
                f"{self.identical_texts} identical texts{matched} ({self.seconds:.1f} s, {self.dedup_seconds:.1f} s "
                "of it near-duplicates and contamination)")

    def _skip_all(self, reason: str) -> None:
        kept = self.rows_in - self.quarantined - self.skipped
        self.skipped_by_reason[reason] = kept
        self.loaded, self.skipped = 0, self.skipped + kept
        self.seconds = time.perf_counter() - self.started


def summary_table(summaries: list[BatchSummary]) -> str:
    """Every batch's outcome, for a terminal."""
    columns = SUMMARY_COLUMNS[:-1]
    return format_table(columns, [tuple(s.summary_row()[c] for c in columns) for s in summaries])


def batch_files(paths: list[str | Path]) -> list[Path]:
    """The batch files named: files as given, folders expanded to their files (sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError("no such file or folder", file=p)
    if not files:
        raise InputError("no batch files found in " + ", ".join(map(str, paths)))
    return files


def read_batch(wh: Warehouse, path: Path, fmt: str, settings: Settings) -> BatchSummary:
    """Stage the lines of PATH; a file whose exact bytes were ingested before is skipped."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", file=path)
    found = sample(path)  # the layout and first records, read once
    fmt = detect_format(path, found) if fmt == "auto" else fmt
    check_format(path, fmt, found)
    summary = BatchSummary(source=str(path), format=fmt, batch_id=content_hash(path))
    previous = wh.batch_rows(summary.batch_id)
    if previous is not None:
        summary.status, summary.rows_in = "skipped", previous
        summary._skip_all("batch already ingested")
        return summary
    warm_up(_docs_dir(settings))
    stage_lines(wh.con, path, fmt, found)
    return summary


def validate_batch(wh: Warehouse, summary: BatchSummary, settings: Settings) -> BatchSummary:
    """Parse, check every rule (GX suite + per-annotation SQL), build the pairs; load nothing."""
    if summary.status != "read":
        return summary
    train, validation, _ = settings.splits
    wh.set_variables(max_responses=settings.max_responses, train_share=train, validation_share=validation)
    con = wh.con
    run_script(con, "ingest/02_shape.sql")
    failed = failing_profiles(con.execute(sql("ingest/profiles.sql")).df(), max_chars=settings.max_chars,
                              min_chars=FORMATS[summary.format].min_chars,
                              docs_dir=_docs_dir(settings),
                              run_name=f"{Path(summary.source).name} {summary.batch_id[:12]}")
    with registered(con, failed=failed):
        run_script(con, "ingest/failing_profiles.sql")
    run_script(con, "ingest/03_rules.sql")
    run_script(con, "ingest/04_pairs.sql")

    [(summary.rows_in, skipped, quarantined, summary.loaded, summary.pairs, summary.ties, summary.identical_texts,
      first)] = con.execute(sql("ingest/05_summary.sql")).fetchall()
    summary.skipped_by_reason, summary.quarantined_by_rule = dict(skipped or []), dict(quarantined or [])
    summary.skipped = sum(summary.skipped_by_reason.values())
    summary.quarantined = sum(summary.quarantined_by_rule.values())
    annotations = summary.loaded + summary.quarantined
    if annotations and summary.quarantined / annotations > settings.max_quarantined_share:
        summary.status = "failed"
        summary.message = (f"{summary.source}: {summary.quarantined} of {annotations} annotations "
                           f"quarantined ({summary.quarantined / annotations:.0%}), above the "
                           f"{settings.max_quarantined_share:.0%} allowed; nothing loaded. First: {first}")
        summary.pairs = summary.ties = summary.identical_texts = 0
        summary._skip_all("batch failed")
    else:
        started = time.perf_counter()
        dedup.cluster_batch(con, settings.dedup)  # each prompt's cluster, and so its split
        contamination.stage_batch(con, settings.dedup)
        summary.dedup_seconds = time.perf_counter() - started
        [(summary.contaminated,)] = con.execute(sql("contamination/batch_matched.sql")).fetchall()
        summary.status = "validated"
    return summary


def load_batch(wh: Warehouse, summary: BatchSummary) -> BatchSummary:
    """Write the validated batch in one transaction: annotations, responses, pairs, quarantine."""
    if summary.status != "validated":
        return summary
    with wh.transaction() as con:
        wh.set_variables(batch_id=summary.batch_id, source=summary.source, format=summary.format,
                         rows_in=summary.rows_in, skipped=summary.skipped)
        run_script(con, "ingest/06_load.sql")
    [(summary.replaced,)] = wh.con.table("replaced_keys").count("*").fetchall()
    summary.status = "loaded"
    summary.seconds = time.perf_counter() - summary.started
    return summary


def ingest_file(wh: Warehouse, path: Path, settings: Settings, fmt: str = "auto") -> BatchSummary:
    """migrate (when due) -> read -> validate -> load one file, without Prefect."""
    for message in migrate(wh, settings.dedup):
        print(message)
    return load_batch(wh, validate_batch(wh, read_batch(wh, path, fmt, settings), settings))


def _docs_dir(settings: Settings) -> Path | None:
    return settings.docs_dir.resolve() if settings.data_docs else None
