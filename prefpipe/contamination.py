"""Contamination: which warehouse prompts and responses match a registered evaluation set's examples.

Three kinds of match (table `contamination`, sql/ddl/007_clusters.sql):
- exact: the example's prompt and a warehouse prompt have one normalised form (prefpipe.dedup);
- near: their forms are near-duplicates, found through the warehouse's MinHash LSH buckets and verified by true
  Jaccard, as clusters are;
- ngram13: a warehouse response shares a 13-gram of words with one of the example's completions (lower-cased,
  ASCII punctuation stripped; the GPT-3 decontamination's n), so a copied answer under another prompt is caught.

A set is checked against the whole warehouse when it is registered (and, by the migration, the sets registered
before prefpipe 0.4); a batch is checked against every set's latest version as it is ingested. A model's training
snapshot then says which examples it saw (`contaminated_examples`), and `--exclude-evalset` leaves them out.
"""

from __future__ import annotations

import hashlib
import unicodedata
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from prefpipe import dedup
from prefpipe.errors import InputError
from prefpipe.evalsets import read_evalset
from prefpipe.sql import registered, run_script, sql

ALL = "all"
COMPLETIONS = pa.schema([("evalset", pa.string()), ("version", pa.string()), ("example_id", pa.string()),
                         ("text", pa.string())])
CHECKED = pa.schema([("evalset", pa.string()), ("version", pa.string())])
EXAMPLES = pa.schema([("evalset", pa.string()), ("version", pa.string()), ("made_by", pa.string()),
                      ("example", pa.int32()), ("example_id", pa.string()), ("normalised", pa.string())])
MATCHES = pa.schema([("evalset", pa.string()), ("version", pa.string()), ("example_id", pa.string()),
                     ("kind", pa.string()), ("prompt_key", pa.string()), ("annotation_id", pa.string()),
                     ("response_id", pa.string()), ("batch_id", pa.string()), ("similarity", pa.float64())])


def latest_sets(con) -> list[tuple[str, str, str]]:
    """(name, version, stored path) of the latest version of every registered set."""
    return con.table("latest_evalsets").select("name, version, path").order("name").fetchall()


def stage_sets(con, sets: list[tuple[str, str, str]]) -> list[tuple]:
    """Temp tables eval_grams (evalset, version, example_id, gram): the 13-grams of SETS' completions, and
    eval_grams7 (gram): their 7-grams; returns (evalset, version, example_id, normalised prompt) per example.
    Read from what the warehouse keeps of each set version (sql/ddl/010_evalset_grams.sql), made here once when it
    keeps nothing of a set yet, or what it keeps was made by another DuckDB or another prefpipe."""
    made = made_by()
    kept = set(con.execute(sql("contamination/kept_sets.sql"), [made]).fetchall())
    for name, version, path in sets:
        if (name, version) not in kept:
            _keep_set(con, name, version, path, made)
    with registered(con, checked_sets=_table([(name, version) for name, version, _ in sets], CHECKED)):
        run_script(con, "contamination/eval_grams.sql")
        return con.execute(sql("contamination/checked_examples.sql")).fetchall()


def _keep_set(con, name: str, version: str, path: str, made: str) -> None:
    """Read one set version and keep its examples' normalised prompts and its completions' grams."""
    examples, completions = [], []
    for i, e in enumerate(read_evalset(path)):
        examples.append((name, version, made, i, e.example_id, dedup.normalise_prompt(e.prompt)))
        completions += [(name, version, e.example_id, t) for t in e.chosen + e.rejected]
    with registered(con, completions=_table(completions, COMPLETIONS), examples=_table(examples, EXAMPLES)):
        run_script(con, "contamination/keep_set.sql")


def _table(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    columns = list(zip(*rows, strict=True)) or [()] * len(schema)  # columnar: no dict per row
    return pa.table([pa.array(c, t) for c, t in zip(columns, schema.types, strict=True)], schema=schema)


@cache
def made_by() -> str:
    """What makes a set's kept grams and forms: DuckDB's version (its hash() may change between releases), the
    Unicode version of the normal form (NFKC and case folding change with it), and a hash of the SQL and the code of
    the normal form. Rows made by another are made again."""
    sources = sql("ingest/00_macros.sql") + sql("contamination/keep_set.sql") + Path(dedup.__file__).read_text()
    return (f"duckdb {duckdb.__version__} unicode {unicodedata.unidata_version} "
            f"{hashlib.sha256(sources.encode()).hexdigest()[:12]}")


def prompt_matches(con, examples: list[tuple], params: dedup.Params | None) -> pa.Table:
    """Exact and near matches of the EXAMPLES' prompts among the forms of the temp views match_forms and
    match_bands (sql/contamination/*_targets.sql), found through their LSH buckets. PARAMS None: the warehouse
    was never clustered, so it holds no form to match."""
    if params is None:
        return MATCHES.empty_table()
    hashed = dedup.buckets([form for *_, form in examples], params)
    with registered(con, eval_bands=pa.table({"example": np.repeat(np.arange(len(examples)), params.bands),
                                              "band": np.tile(np.arange(params.bands, dtype=np.uint8), len(examples)),
                                              "bucket": hashed.reshape(-1)})):
        found = con.execute(sql("contamination/prompt_candidates.sql")).fetchall()
    rows = []
    for example, key, normalised, batch in found:
        name, version, example_id, form = examples[example]
        if not form or not normalised:  # only spaces or punctuation: an empty form says nothing, and matches nothing
            continue
        similarity = dedup.jaccard(form, normalised, params.ngram)
        if similarity >= params.threshold:
            rows.append((name, version, example_id, "exact" if form == normalised else "near", key, None, None, batch,
                         similarity))
    return _table(rows, MATCHES)


def stage_batch(con, params: dedup.Params) -> None:
    """stage_contamination: the validated batch's new forms (stage_new_prompts) and responses (valid_responses)
    against the latest version of every registered set (batch_id left NULL: the load fills it)."""
    examples = stage_sets(con, latest_sets(con))
    run_script(con, "contamination/batch_targets.sql")
    run_script(con, "contamination/response_matches.sql")
    with registered(con, prompt_matches=prompt_matches(con, examples, params)):
        run_script(con, "contamination/stage_batch.sql")


def check_set(wh, name: str, version: str, path: str) -> int:
    """Record the matches of one set's version in the whole warehouse WH (prefpipe.warehouse), once, in one
    transaction; returns how many (-1: checked before)."""
    con = wh.con
    if con.execute(sql("contamination/checked.sql"), [name, version]).fetchall()[0][0]:
        return -1
    examples = stage_sets(con, [(name, version, path)])
    run_script(con, "contamination/warehouse_targets.sql")
    run_script(con, "contamination/response_matches.sql")
    wh.set_variables(evalset=name, version=version)
    with registered(con, prompt_matches=prompt_matches(con, examples, dedup.stored_params(con))), wh.transaction():
        run_script(con, "contamination/record_set.sql")
    return con.execute(sql("contamination/matches.sql"), [name, version]).fetchall()[0][0]


def unchecked_sets(con) -> list[tuple[str, str, str]]:
    """(name, version, stored path) of the latest versions never checked against the whole warehouse (sets
    registered before prefpipe 0.4)."""
    return [(name, version, path) for name, version, path in latest_sets(con)
            if not con.execute(sql("contamination/checked.sql"), [name, version]).fetchall()[0][0]]


def check_registered(wh) -> list[str]:
    """Check every set's latest version that was never checked; a message for each."""
    return [f"{name} (version {version[:12]}): checked once against the whole warehouse: "
            f"{check_set(wh, name, version, path)} matches recorded (table contamination)"
            for name, version, path in unchecked_sets(wh.con)]


# -- what training and export leave out -----------------------------------------------------------------------

def set_names(con, names: list[str]) -> list[str]:
    """NAMES of registered sets (`all`: every one); an unknown name is a one-line error."""
    registered = [name for name, *_ in latest_sets(con)]
    if ALL in names:
        return registered
    unknown = [n for n in names if n not in registered]
    if unknown:
        raise InputError(f"no such evaluation set: {', '.join(unknown)} (registered: "
                         f"{', '.join(registered) or 'none'}; see `prefpipe evalset list`)", field="--exclude-evalset")
    return list(dict.fromkeys(names))


def exclude_matches(con, names: list[str]) -> dict:
    """Temp table excluded_annotations: the annotations whose prompt or a response matches the latest version
    of a set of NAMES (`all`: every registered set); returns what it holds, for the record."""
    chosen = set_names(con, names) if names else []
    con.execute("SET VARIABLE exclude = ?", [chosen])
    run_script(con, "contamination/exclude.sql")
    per_set = {s: {"annotations": a, "examples": e} for s, a, e in con.table("excluded_per_set").fetchall()}
    [(annotations,)] = con.table("excluded_annotations").aggregate("count(DISTINCT annotation_seq)").fetchall()
    return {"evalsets": {n: per_set.get(n, {"annotations": 0, "examples": 0}) for n in chosen},
            "annotations": annotations} if chosen else {}
