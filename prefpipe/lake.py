"""The lake that analysts query: evaluation results as hive-partitioned Parquet under data/results/,
and Parquet copies of the warehouse tables under data/tables/.

    results/evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN/scores.parquet   one row per example
    results/evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN/summary.parquet  subsets, sections, scores

Columns are documented in schemas/results.md. A run's folder is written under a hidden staging folder
and renamed into place in one step, so a killed run leaves no partial partition, and a rerun adds a
new run folder instead of overwriting an old one (history is kept).
"""

from __future__ import annotations

import hashlib
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from prefpipe.rewardbench import best_of_n_credit, best_of_n_scores, pairwise_scores, section_of

if TYPE_CHECKING:
    from prefpipe.evalsets import Example

PACKAGE = Path(__file__).resolve().parent
STALE_STAGING_S = 86_400
SCORING_CODE = ("data.py", "dpo.py", "evalsets.py", "lake.py", "model.py", "rewardbench.py")


def code_version() -> str:
    """The package version and a hash of the scoring code: a change to how scores are made is a new version."""
    digest = hashlib.sha256(b"".join((PACKAGE / name).read_bytes() for name in SCORING_CODE)).hexdigest()[:12]
    return f"{metadata.version('prefpipe')}+{digest}"


def folder_hash(path: Path, pattern: str = "*") -> str:
    """sha256 over the files of a folder (names and bytes), e.g. a model's weights and config."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).glob(pattern) if p.is_file()):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Run:
    """Who and what a set of results belongs to."""

    run_id: str
    run_date: date
    model_id: str
    model_hash: str
    evalset: str
    evalset_hash: str
    code_version: str

    def partition(self) -> str:
        return f"evalset={self.evalset}/model={self.model_id}/run_date={self.run_date.isoformat()}/run_id={self.run_id}"


def result_tables(run: Run, examples: list[Example], scores: list[tuple[list[float], list[float]]],
                  fmt: str) -> tuple[pa.Table, pa.Table]:
    """Per-example rows and summary rows (subset, section, score) of one model on one evaluation set."""
    rows = []
    for e, (chosen, rejected) in zip(examples, scores, strict=True):
        credit = best_of_n_credit(chosen, rejected) if fmt == "rewardbench2" else float(chosen[0] > rejected[0])
        rows.append({"example_id": e.example_id, "subset": e.subset, "section": section_of(e.subset),
                     "chosen_scores": chosen, "rejected_scores": rejected,
                     "margin": max(chosen) - max(rejected), "credit": credit,
                     "chosen_chars": max(map(len, e.chosen)), "rejected_chars": max(map(len, e.rejected))})
    if fmt == "rewardbench2":
        got = best_of_n_scores([(e.subset, e.example_id, c, r)
                                for e, (c, r) in zip(examples, scores, strict=True)])
        summary = [("subset", s, v) for s, v in got["subsets"].items()] + [("score", "score", got["score"])]
    else:
        got = pairwise_scores([(e.subset, c[0], r[0]) for e, (c, r) in zip(examples, scores, strict=True)])
        summary = ([("subset", s, v["accuracy"]) for s, v in got["subsets"].items()]
                   + [("section", s, v) for s, v in got["sections"].items() if v is not None]
                   + [("score", k, got[k]) for k in ("score", "score_with_prior_sets")])
    summary += diagnostics(rows)
    counts = Counter(r["subset"] for r in rows)
    provenance = {k: getattr(run, k) for k in ("run_id", "run_date", "model_id", "model_hash", "evalset",
                                                "evalset_hash", "code_version")}
    scores_table = pa.Table.from_pylist([provenance | r for r in rows])
    per_subset = ("subset", "length_bias")
    summary_table = pa.Table.from_pylist([provenance | {"level": level, "name": name, "value": value,
                                                        "examples": counts.get(name) if level in per_subset else None}
                                          for level, name, value in summary])
    return scores_table, summary_table


def diagnostics(rows: list[dict]) -> list[tuple[str, str, float]]:
    """What the common tools do not report: the margin distribution, the calibration of σ(margin), and per
    subset the accuracy of "always pick the longer answer" (to read beside the model's accuracy)."""
    from prefpipe.metrics import expected_calibration_error

    margins = sorted(r["margin"] for r in rows)
    deciles = statistics.quantiles(margins, n=10) if len(margins) > 1 else margins * 9
    out = [("diagnostic", "margin_p10", deciles[0]), ("diagnostic", "margin_p50", statistics.median(margins)),
           ("diagnostic", "margin_p90", deciles[-1]), ("diagnostic", "ece", expected_calibration_error(margins))]
    longer: dict[str, list[bool]] = {}
    for r in rows:
        longer.setdefault(r["subset"], []).append(r["chosen_chars"] > r["rejected_chars"])
    return out + [("length_bias", subset, sum(v) / len(v)) for subset, v in sorted(longer.items())]


def has_results(results: Path, evalset: str, model_id: str, model_hash: str, evalset_hash: str, code: str) -> bool:
    """Whether a (model, evaluation set, code version) already has results, on any date."""
    for summary in (results / f"evalset={evalset}" / f"model={model_id}").glob("run_date=*/run_id=*/summary.parquet"):
        row = pq.read_table(summary, columns=["model_hash", "evalset_hash", "code_version"]).slice(0, 1).to_pylist()
        if row and row[0] == {"model_hash": model_hash, "evalset_hash": evalset_hash, "code_version": code}:
            return True
    return False


def write_results(results: Path, run: Run, scores: pa.Table, summary: pa.Table) -> Path:
    """Write the run's folder atomically (staged, then renamed); return it."""
    final = results / run.partition()
    if final.exists():
        raise FileExistsError(f"{final}: results of run {run.run_id} are already there")

    def write(staging: Path) -> None:
        pq.write_table(scores, staging / "scores.parquet")
        pq.write_table(summary, staging / "summary.parquet")

    return write_whole(results, final, write)


def write_whole(parent: Path, final: Path, write: Callable[[Path], None]) -> Path:
    """WRITE a folder's files into a hidden staging folder of PARENT (one per writer: units run
    concurrently), then rename it to FINAL in one step: the folder appears whole or not at all."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep_staging(parent)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    try:
        write(staging)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def sweep_staging(folder: Path, older_than_s: float = STALE_STAGING_S) -> None:
    """Remove what killed writers left in FOLDER (hidden staging folders, never read as results). Only old
    ones: a young one may belong to a unit that is writing now, on this machine or another."""
    for staging in folder.glob(".staging-*"):
        if time.time() - staging.stat().st_mtime > older_than_s:
            shutil.rmtree(staging, ignore_errors=True)


def evaluate(model_dir: Path, model_id: str, evalset_path: Path, evalset: str, results: Path, *,
             run_id: str, run_date: date | None = None, force: bool = False, fmt: str = "auto",
             reference: Path | None = None, device: str = "cpu") -> Path | None:
    """Score one model on one evaluation set and write the run folder; None when these results exist
    (same model, set and code version) and not `force`. With REFERENCE, MODEL_DIR is a DPO policy,
    scored by its implicit reward."""
    from prefpipe.evalsets import read_evalset_format, score_distinct, score_examples
    from prefpipe.formats import content_hash
    from prefpipe.model import load_reward_model, load_tokenizer

    fmt, examples = read_evalset_format(evalset_path, fmt)
    model_hash = folder_hash(model_dir)
    if reference is not None:  # the policy and its reference: a change to either is another model
        model_hash = hashlib.sha256(f"{model_hash}:{folder_hash(reference)}".encode()).hexdigest()
    run = Run(run_id, run_date or date.today(), model_id, model_hash, evalset, content_hash(evalset_path),
              code_version())
    if not force and has_results(results, evalset, model_id, run.model_hash, run.evalset_hash, run.code_version):
        return None
    if reference is not None:
        from prefpipe.dpo import ImplicitReward

        scores = score_distinct(examples, ImplicitReward(model_dir, reference, device))
    else:
        model = load_reward_model(model_dir).to(device)
        scores = score_examples(model, load_tokenizer(model_dir), examples, device=device)
    return write_results(results, run, *result_tables(run, examples, scores, fmt))


WAREHOUSE_TABLES = ("batches", "annotations", "responses", "comparisons", "quarantine", "models", "evalsets")


def publish_tables(con, tables: Path, keep: int = 2) -> Path:
    """Copy the warehouse tables to Parquet, so that analysts' SQL reads them without the warehouse's lock.

    Each copy is a new folder, staged and renamed in one step, so a reader sees every table of one
    moment; the `keep` newest copies stay (a query already reading an older one is not cut off)."""
    from prefpipe.sql import literal

    def write(staging: Path) -> None:
        for name in WAREHOUSE_TABLES:
            con.execute(f"COPY {name} TO {literal(staging / f'{name}.parquet')} (FORMAT parquet)")

    final = write_whole(tables, tables / datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ"), write)
    for old in table_copies(tables)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def table_copies(tables: Path) -> list[Path]:
    """The published copies of the warehouse tables, oldest first (staging folders are hidden)."""
    return sorted(p for p in Path(tables).glob("*") if p.is_dir() and not p.name.startswith("."))


def latest_tables(tables: Path) -> Path | None:
    """The newest published copy of the warehouse tables, or None."""
    copies = table_copies(tables)
    return copies[-1] if copies else None


def lake_connection(results: Path, tables: Path | None = None, regression_threshold: float = 0.02):
    """An in-memory DuckDB connection with the analyst views: over the results lake (sql/views/eval.sql)
    and over the latest copy of the warehouse tables (sql/views/warehouse.sql, then the warehouse's own
    pairs and curation views). It never opens the warehouse file, so it never waits for its lock.
    None when there is nothing to read yet."""
    import duckdb

    from prefpipe.sql import run_script

    has_results = any(Path(results).glob("*/*/*/*/summary.parquet"))
    copy = latest_tables(tables) if tables is not None else None
    if not has_results and copy is None:
        return None
    con = duckdb.connect()
    if has_results:
        con.execute("SET VARIABLE results = ?", [str(results)])
        con.execute("SET VARIABLE regression_threshold = ?", [regression_threshold])
        run_script(con, "views/eval.sql")
    if copy is not None:
        con.execute("SET VARIABLE tables = ?", [str(copy)])
        for script in ("views/warehouse.sql", "ddl/002_pairs_view.sql", "ddl/003_curation_views.sql"):
            run_script(con, script)
    return con


READ_ONLY = {"SELECT", "EXPLAIN"}


def read_only_query(con, sql: str) -> tuple[list[str], list[tuple]]:
    """Run analyst SQL that only reads: any statement that could write fails before anything runs."""
    import duckdb

    from prefpipe.errors import InputError

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise InputError(f"not valid SQL: {str(e).splitlines()[0]}", field="sql") from None
    if not statements:
        raise InputError("no SQL statement given", field="sql")
    for statement in statements:
        kind = statement.type.name
        if kind not in READ_ONLY:
            raise InputError(f"prefpipe sql only reads: a {kind} statement would change something; "
                             "use SELECT (or EXPLAIN)", field="sql")
    try:
        for statement in statements[:-1]:
            con.execute(statement)
        cursor = con.execute(statements[-1])
        return [d[0] for d in cursor.description], cursor.fetchall()
    except duckdb.Error as e:
        raise InputError(str(e).splitlines()[0], field="sql") from None
