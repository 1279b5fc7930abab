"""Response-level rules, checked by the Great Expectations suite stored in schemas/.

The suite is data: each expectation's `meta` carries the rule name and the message a quarantine row
shows. Data Docs are written for every validated batch when a docs folder is given.

GX checks the distinct value profiles of a batch's responses (one row per distinct combination of
the checked columns, with a `responses` count), not the responses one by one: every expectation is a
per-row rule, so a response fails exactly when its profile does, and a million-annotation batch has
a few thousand profiles instead of five million rows. sql/ingest/03_rules.sql maps failing profiles
back to the responses that have them.

Great Expectations and pandas are imported inside the functions that use them: GX takes 3.2 s to import, which
`warm_up` spends in a background thread while a batch is read, and which no other command pays.
"""

from __future__ import annotations

import json
import logging
import threading
from functools import cache
from pathlib import Path

import pyarrow as pa

from prefpipe.errors import PrefpipeError

SUITE_PATH = Path(__file__).resolve().parent.parent / "schemas" / "responses.gx.json"
# Only failing rows are turned into Python objects: positional indices, no per-row dicts.
RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False}
NUMBERS = ("text_chars", "rank")  # of the profile columns (sql/ingest/profiles.sql); the others are text


_context_lock = threading.Lock()


def suite_spec() -> dict:
    return json.loads(SUITE_PATH.read_text())


@cache
def _validation(docs_dir: Path | None):
    """A GX context holding the suite and a pandas data source; file-backed when docs are kept."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    if docs_dir is None:
        context = gx.get_context(mode="ephemeral")
    else:
        docs_dir.mkdir(parents=True, exist_ok=True)
        context = gx.get_context(mode="file", project_root_dir=str(docs_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    spec = suite_spec()
    suite = gx.ExpectationSuite(name=spec["name"], expectations=spec["expectations"], meta=spec["meta"])
    if len(suite.expectations) != len(spec["expectations"]):  # GX only logs a bad expectation
        raise PrefpipeError(f"{SUITE_PATH}: an expectation could not be built; check its type and kwargs")
    suite = context.suites.add_or_update(suite)
    source = context.data_sources.add_or_update_pandas("prefpipe")
    asset = source.get_asset("responses") if "responses" in source.get_asset_names() \
        else source.add_dataframe_asset("responses")
    batch = asset.get_batch_definition("whole") if "whole" in [b.name for b in asset.batch_definitions] \
        else asset.add_batch_definition_whole_dataframe("whole")
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name="responses", data=batch, suite=suite))
    return context, definition


def warm_up(docs_dir: Path | None) -> None:
    """Import GX and build its context in a background thread (about 5 s) while a batch is read.

    pandas is imported here first: two threads importing it (GX here, DuckDB's .df() there) can take the
    module locks of pandas and numpy in opposite orders, which Python reports as a _DeadlockError."""
    import pandas  # noqa: F401

    threading.Thread(target=_context, args=(docs_dir,), daemon=True, name="gx-warm-up").start()


def _context(docs_dir: Path | None):
    with _context_lock:  # one build; a caller arriving during the warm-up waits for it
        return _validation(docs_dir)


def failing_profiles(profiles, *, max_chars: int, min_chars: int = 1, run_name: str,
                     docs_dir: Path | None = None) -> pa.Table:
    """Validate a pandas frame of value profiles (sql/ingest/profiles.sql: the checked columns + `responses`).

    Returns one row per failing profile and expectation: the profile's values, the rule and the
    quarantine message (to be prefixed with the response's place, `responses[i].`).
    """
    context, definition = _context(docs_dir)  # first: waits for the warm-up's import of GX to finish
    from great_expectations.core.run_identifier import RunIdentifier

    result = definition.run(batch_parameters={"dataframe": profiles},
                            expectation_parameters={"max_chars": max_chars, "min_chars": min_chars},
                            result_format=RESULT_FORMAT, run_id=RunIdentifier(run_name=run_name))
    if docs_dir is not None:
        context.build_data_docs()
    columns = [c for c in profiles.columns if c != "responses"]
    schema = pa.schema([(c, pa.int64() if c in NUMBERS else pa.string()) for c in columns]
                       + [("rule", pa.string()), ("message", pa.string())])
    rows: dict[str, list] = {name: [] for name in schema.names}
    for check in result.results:
        if check.success:
            continue
        if check.exception_info.get("raised_exception"):
            raise PrefpipeError(f"Great Expectations failed on {check.expectation_config.type}: "
                                f"{check.exception_info.get('exception_message')}")
        meta = check.expectation_config.meta
        for index, value in zip(check.result["unexpected_index_list"], check.result["unexpected_list"],
                                strict=True):
            for column in columns:
                rows[column].append(_plain(profiles[column].iat[index]))
            rows["rule"].append(meta["rule"])
            rows["message"].append(meta["message"].format(value=_plain(value), max_chars=max_chars,
                                                          min_chars=min_chars))
    return pa.table(rows, schema=schema)


def _plain(value: object) -> object:
    """A pandas cell as a plain Python value: NaN/NA -> None, 3.0 -> 3."""
    import pandas as pd

    if value is None or pd.isna(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value.item() if hasattr(value, "item") else value
