"""Prefect tasks of the nightly evaluation: read the registry, score one unit (a model or a registered
combination, on one set)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from prefpipe import evaluation, registry, tables
from prefpipe.contamination import model_contamination
from prefpipe.settings import Settings
from prefpipe.warehouse import Warehouse
from tasks import retry_unless_input_error


@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_unless_input_error,
      cache_policy=NO_CACHE)
def read_registry(settings: Settings) -> tuple[list[dict], list[dict]]:
    """What to score, each a dict: every active model ({id, path, reference}) and every active combination
    ({id, combo, components}), each with the examples of each set its training data matched (`contaminated`,
    None when unknown); and the latest version of every evaluation set. The warehouse is closed
    again, and its tables are published to Parquet, so analysts' SQL sees tonight's registry."""
    with Warehouse.open(settings) as wh:
        tables.publish_tables(wh.con, settings.tables)
        evalsets = registry.latest_evalsets(wh)
        scored = [{"id": model_id, "path": path, "reference": reference,
                   "contaminated": model_contamination(wh.con, Path(path), evalsets)}
                  for model_id, path, reference in registry.active_models(wh)]
        for combo in registry.combos(wh, active_only=True):  # what any of its models trained on
            components = registry.model_folders(wh, list(combo.models))
            seen = [model_contamination(wh.con, folder, evalsets) for folder, _ in components.values()]
            scored.append({"id": combo.name, "combo": combo, "components": components, "contaminated": None
                           if None in seen else {e["name"]: sorted({x for s in seen for x in s[e["name"]]})
                                                 for e in evalsets}})
        return scored, evalsets


@task(cache_policy=NO_CACHE, task_run_name="score {scored[id]} on {evalset[name]}")
def score_unit(results: Path, scored: dict, evalset: dict, run_id: str, run_date: date, force: bool,
               started: float, tables_dir: Path) -> str:
    """One model or combination on one set: a new run folder in the lake, or skipped when these results exist."""
    run = {"run_id": run_id, "run_date": run_date, "force": force, "fmt": evalset["format"], "started": started,
           "contaminated": None if scored["contaminated"] is None else scored["contaminated"][evalset["name"]]}
    if "combo" in scored:
        combo = scored["combo"]
        print(f"{combo.name} on {evalset['name']}: {evalset['examples']} examples; {combo.definition()}")
        folder = evaluation.evaluate_combo(combo, scored["components"], Path(evalset["path"]), evalset["name"],
                                           results, tables=tables_dir, **run)
        if folder is not None:
            sources = Counter(pq.read_table(folder / "references.parquet", columns=["r_ref_source"])
                              .column(0).to_pylist())
            print(f"{combo.name} on {evalset['name']}: r_ref of each prompt and model from "
                  + ", ".join(f"{source} ({n})" for source, n in sorted(sources.items())))
    else:
        reference = scored["reference"]
        print(f"{scored['id']} on {evalset['name']}: {evalset['examples']} examples"
              f"{f' (DPO policy against {reference})' if reference else ''}")
        folder = evaluation.evaluate(Path(scored["path"]), scored["id"], Path(evalset["path"]), evalset["name"],
                                     results, reference=None if reference is None else Path(reference), **run)
    return "skipped (results exist for this model, set and code version)" if folder is None else str(folder)
