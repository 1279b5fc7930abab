"""Response-level rules, checked by the Great Expectations suite stored in schemas/.

The suite is data: each expectation's `meta` carries the rule name and the message a quarantine row
shows. Data Docs are written for every validated batch when a docs folder is given.
"""

from __future__ import annotations

import json
import logging
import os
from functools import cache
from pathlib import Path

import pyarrow as pa

from prefpipe.errors import PrefpipeError

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
SUITE_PATH = Path(__file__).resolve().parent.parent / "schemas" / "responses.gx.json"
COLUMNS = ["response_id_kind", "text_kind", "text_chars", "rank_kind", "rank", "dropped_kind",
           "drop_reason_kind", "edited_from_kind"]
# Only failing rows are turned into Python objects: positional indices, no per-row dicts.
RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False}
ERRORS_SCHEMA = pa.schema([("line", pa.int64()), ("position", pa.int64()),
                           ("rule", pa.string()), ("reason", pa.string())])


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


def response_errors(frame, *, max_chars: int, run_name: str, docs_dir: Path | None = None) -> pa.Table:
    """Validate a pandas frame of responses (columns `line`, `position` and COLUMNS).

    Returns one row (line, position, rule, reason) per failing response and expectation.
    """
    from great_expectations.core.run_identifier import RunIdentifier

    context, definition = _validation(docs_dir)
    result = definition.run(batch_parameters={"dataframe": frame},
                            expectation_parameters={"max_chars": max_chars},
                            result_format=RESULT_FORMAT, run_id=RunIdentifier(run_name=run_name))
    if docs_dir is not None:
        context.build_data_docs()
    lines, positions = frame["line"].to_numpy(), frame["position"].to_numpy()
    rows: dict[str, list] = {name: [] for name in ERRORS_SCHEMA.names}
    for check in result.results:
        if check.success:
            continue
        if check.exception_info.get("raised_exception"):
            raise PrefpipeError(f"Great Expectations failed on {check.expectation_config.type}: "
                                f"{check.exception_info.get('exception_message')}")
        meta = check.expectation_config.meta
        values = check.result["unexpected_list"]
        for index, value in zip(check.result["unexpected_index_list"], values, strict=True):
            position = int(positions[index])
            rows["line"].append(int(lines[index]))
            rows["position"].append(position)
            rows["rule"].append(meta["rule"])
            message = meta["message"].format(value=_shown(value), max_chars=max_chars)
            rows["reason"].append(f"responses[{position}].{message}")
    return pa.table(rows, schema=ERRORS_SCHEMA)


def _shown(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)
