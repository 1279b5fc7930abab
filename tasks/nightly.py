"""Prefect tasks of the nightly evaluation: read the registry, score one unit (a model or a registered
combination, on one set), publish the leaderboard and write the morning report."""

from __future__ import annotations

import traceback
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from prefpipe import evaluation, published, registry, store, tables
from prefpipe.analyst import analyst_connection
from prefpipe.config import Combination
from prefpipe.errors import PrefpipeError
from prefpipe.judges import JudgeSettings
from prefpipe.lake import KINDS
from prefpipe.report import write_report
from prefpipe.settings import Settings
from prefpipe.sql import sql
from prefpipe.store import Bucket, Location, read_table
from prefpipe.training_data import model_contamination
from prefpipe.warehouse import Warehouse
from tasks import retry_unless_input_error


@dataclass(frozen=True)
class Contender:
    """What the nightly scores on every set: a registered model (its folder, and a DPO policy's reference or a
    generative judge's settings), or a combination of models (COMBO, with each component's folders).
    CONTAMINATED: per set, the examples that its training data matched (None: not known)."""

    id: str
    contaminated: dict[str, list[str]] | None
    path: str | None = None
    reference: str | None = None
    judge: JudgeSettings | None = None
    combo: Combination | None = None
    components: dict[str, tuple[Path, Path | None]] | None = None

    @property
    def is_combo(self) -> bool:
        return self.combo is not None


@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_unless_input_error,
      cache_policy=NO_CACHE)
def read_registry(settings: Settings) -> tuple[list[Contender], list[dict]]:
    """Every active model and combination, and the latest version of every evaluation set. The warehouse is
    closed again, and its tables are published to Parquet, so analysts' SQL sees tonight's registry."""
    with Warehouse.open(settings) as wh:
        tables.publish_tables(wh.con, settings.tables)
        evalsets = registry.latest_evalsets(wh)
        contenders = [Contender(model_id, model_contamination(wh.con, Path(path), evalsets), path, reference, judge)
                      for model_id, path, reference, judge in registry.active_models(wh)]
        for combo in registry.combos(wh, active_only=True):  # what any of its models trained on
            components = registry.model_folders(wh, list(combo.models))
            seen = [model_contamination(wh.con, folder, evalsets) for folder, _ in components.values()]
            contaminated = None if None in seen else {e["name"]: sorted({x for s in seen for x in s[e["name"]]})
                                                      for e in evalsets}
            contenders.append(Contender(combo.name, contaminated, combo=combo, components=components))
    if isinstance(settings.results, Bucket):
        return publish_units(settings.results, contenders, evalsets)
    return contenders, evalsets


@task(cache_policy=NO_CACHE)
def sweep_leftovers(settings: Settings) -> list[str]:
    """In a bucket lake, remove the run folders (results, rewards, analyses, table copies) that killed writers left
    uncommitted a day ago or more (one listing of every object of each root: it runs beside the units). On a disk
    each writer sweeps its own staging folder."""
    depths = {getattr(settings, kind.root): len(kind.levels) for kind in KINDS} | {settings.tables: 1}
    roots = {root: depth for root, depth in depths.items() if isinstance(root, Bucket)}
    swept = [root / folder for root, depth in roots.items() for folder in store.sweep(root, depth)]
    for folder in swept:
        print(f"removed {folder}: a run that was never committed, left a day ago or more")
    return [str(folder) for folder in swept]


def publish_units(results: Bucket, contenders: list[Contender], evalsets: list[dict]
                  ) -> tuple[list[Contender], list[dict]]:
    """The units' models (a combination's reference LM too) and sets published beside a bucket's results (once:
    named by their hashes), and named by URL, so that a worker needs only the bucket and its credentials
    (`localized` fetches them there)."""
    model = cache(lambda folder: None if folder is None else published.publish_model(results, Path(folder)))
    contenders = [replace(c, path=model(c.path), reference=model(c.reference), components=None if c.components is None
                          else {m: (model(f), model(r)) for m, (f, r) in c.components.items()},
                          combo=c.combo and replace(c.combo, reference_lm=model(c.combo.reference_lm)))
                  for c in contenders]
    return contenders, [e | {"path": published.publish_file(results, Path(e["path"]))} for e in evalsets]


def localized(contender: Contender, evalset: dict) -> tuple[Contender, dict]:
    """The unit with this machine's copies of what it names by URL (a path of this machine stays as it is)."""
    copy = published.local_copy
    lm = contender.combo and contender.combo.reference_lm
    combo = contender.combo and replace(contender.combo, reference_lm=lm and str(copy(lm)))
    return replace(contender, path=copy(contender.path), reference=copy(contender.reference), combo=combo,
                   components=None if contender.components is None else {
                       m: (copy(f), copy(r)) for m, (f, r) in contender.components.items()}), evalset | {
        "path": copy(evalset["path"])}


@task(cache_policy=NO_CACHE, task_run_name="score {contender.id} on {evalset[name]}")
def score_unit(results: Location, contender: Contender, evalset: dict, run_id: str, run_date: date, force: bool,
               started: float, tables_dir: Location) -> str:
    """One model or combination on one set: a new run folder in the lake, or skipped when these results exist."""
    contender, evalset = localized(contender, evalset)
    run = {"run_id": run_id, "run_date": run_date, "force": force, "fmt": evalset["format"], "started": started,
           "contaminated": None if contender.contaminated is None else contender.contaminated[evalset["name"]]}
    unit = f"{contender.id} on {evalset['name']}: {evalset['examples']} examples"
    if contender.is_combo:
        print(f"{unit}; {contender.combo.definition()}")
        folder = evaluation.evaluate_combo(contender.combo, contender.components, Path(evalset["path"]),
                                           evalset["name"], results, tables=tables_dir, **run)
        if folder is not None:
            sources = Counter(read_table(folder / "references.parquet", columns=["r_ref_source"])
                              .column(0).to_pylist())
            print(f"{contender.id} on {evalset['name']}: r_ref of each prompt and model from "
                  + ", ".join(f"{source} ({n})" for source, n in sorted(sources.items())))
    else:
        reference, judge = contender.reference, contender.judge
        print(unit + (f" (DPO policy against {reference})" if reference else "")
              + (f" (generative judge: {judge.template} template, {judge.scoring})" if judge else ""))
        folder = evaluation.evaluate_model(Path(contender.path), contender.id, Path(evalset["path"]),
                                           evalset["name"], results, judge=judge,
                                           reference=None if reference is None else Path(reference), **run)
        if folder is not None and judge is not None:
            too_long = sum(read_table(folder / "judgments.parquet", columns=["too_long"]).column(0).to_pylist())
            if too_long:
                print(f"{contender.id} on {evalset['name']}: {too_long} prompt(s) too long for the judge's context "
                      "even with the answers cut, scored as ties (judgments.parquet: too_long)")
    return "skipped (results exist for this model, set and code version)" if folder is None else str(folder)


@task(cache_policy=NO_CACHE)
def publish_leaderboard(settings: Settings, threshold: float, run_id: str, contenders: list[Contender]
                        ) -> tuple[list[dict], list[dict]]:
    """The leaderboard and the regressions beyond THRESHOLD against the previous night, from the lake, as
    Prefect artifacts too."""
    con, runs, foreign = analyst_connection(settings.results, regression_threshold=threshold)
    for path in foreign:
        print(f"skipped {path}: not a result partition (evalset=NAME/model=ID/run_date=YYYY-MM-DD/run_id=RUN)")
    if not runs:
        return [], []
    board = con.sql(sql("queries/leaderboard.sql")).to_arrow_table().to_pylist()
    regressions = con.sql(sql("queries/regressions.sql")).to_arrow_table().to_pylist()
    definitions = "".join(f"; {c.id} = {c.combo.definition()}" for c in contenders if c.is_combo)
    create_table_artifact(key="leaderboard", table=[{k: str(v) if k == "run_date" else v for k, v in r.items()}
                                                    for r in board],
                          description=f"Latest run per model and set ({run_id}){definitions}")
    if regressions:
        lines = [f"- **{r['model_id']}** on {r['evalset']}, {r['level']} {r['name']}: {r['previous']:.4f} -> "
                 f"{r['latest']:.4f} ({r['change']:+.4f}; {r['previous_date']} -> {r['latest_date']})"
                 for r in regressions]
        create_markdown_artifact(key="nightly-regressions", markdown=f"# Regressions beyond {threshold}\n\n"
                                 + "\n".join(lines))
    return board, regressions


@task(cache_policy=NO_CACHE)
def write_morning_report(settings: Settings, threshold: float, run_id: str) -> tuple[Path | None, str | None]:
    """The morning report and its link artifact; or why it could not be written (the scores are in the lake:
    the run fails at its end, with its other problems)."""
    try:
        report = write_report(settings, threshold=threshold)
    except PrefpipeError as error:
        return None, str(error)
    except Exception as error:  # a defect, or the disk: its traceback goes to the run's log
        print(traceback.format_exc())
        return None, f"{type(error).__name__}: {error}"
    create_link_artifact(key="morning-report", link=report.resolve().as_uri(), link_text="The morning report",
                         description=f"The leaderboard, models, regressions and analyses after run {run_id}")
    print(f"The morning report: {report}")
    return report, None
