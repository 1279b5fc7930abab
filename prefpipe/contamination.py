"""Contamination: which warehouse prompts and responses match a registered evaluation set's examples.

Three kinds of match (table `contamination`, sql/ddl/007_clusters.sql):
- exact: the example's prompt and a warehouse prompt have one normalised form (prefpipe.dedup);
- near: their forms are near-duplicates, found through the warehouse's MinHash LSH buckets and verified by true
  Jaccard, as clusters are;
- ngram13: a warehouse response shares a 13-gram of words with one of the example's completions (lower-cased,
  ASCII punctuation stripped; the GPT-3 decontamination's n), so a copied answer under another prompt is caught.

A set is checked against the whole warehouse when it is registered (and once, for the sets registered before
prefpipe 0.4); a batch is checked against every set's latest version as it is ingested. A model's training
snapshot then says which examples it saw (`contaminated_examples`), and `--exclude-evalset` leaves them out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from prefpipe import dedup
from prefpipe.errors import InputError
from prefpipe.evalsets import read_evalset
from prefpipe.sql import sql

ALL = "all"
RESPONSES = "dedup/response_matches.sql"


def latest_sets(con) -> list[tuple[str, str, str]]:
    """(name, version, stored path) of the latest version of every registered set."""
    return con.execute("SELECT name, version, path FROM evalsets "
                       "QUALIFY row_number() OVER (PARTITION BY name ORDER BY registered_at DESC) = 1 "
                       "ORDER BY name").fetchall()


def stage_sets(con, sets: list[tuple[str, str, str]]) -> list[tuple]:
    """Temp table eval_grams (evalset, version, example_id, gram): the 13-grams of SETS' completions; returns
    (evalset, version, example_id, normalised prompt) per example."""
    examples, completions = [], []
    for name, version, path in sets:
        for e in read_evalset(path):
            examples.append((name, version, e.example_id, dedup.normalise_prompt(e.prompt)))
            completions += [(name, version, e.example_id, t) for t in e.chosen + e.rejected]
    columns = ("evalset", "version", "example_id", "text")
    con.register("completions", pa.table(list(zip(*completions, strict=True)) if completions else [[]] * 4,
                                         names=list(columns)))
    con.execute("CREATE OR REPLACE TEMP TABLE eval_grams AS SELECT DISTINCT evalset, version, example_id, "
                "unnest(grams13(text)) AS gram FROM completions")
    con.unregister("completions")
    return examples


def prompt_matches(con, examples: list[tuple], params: dedup.Params, bands: str, forms: str) -> pa.Table:
    """Exact and near matches of the EXAMPLES' prompts among the warehouse forms FORMS (a table or view with
    prompt_seq, prompt_key, normalised, batch_id), found through their LSH buckets BANDS."""
    hashed = dedup.buckets([form for *_, form in examples], params)
    con.register("eval_bands", pa.table({"example": np.repeat(np.arange(len(examples)), params.bands),
                                         "band": np.tile(np.arange(params.bands, dtype=np.uint8), len(examples)),
                                         "bucket": hashed.reshape(-1)}))
    found = con.execute(f"""
        SELECT e.example, f.prompt_key, f.normalised, f.batch_id
        FROM (SELECT DISTINCT e.example, b.prompt_seq FROM eval_bands e JOIN {bands} b USING (band, bucket)) e
        JOIN {forms} f USING (prompt_seq) ORDER BY ALL""").fetchall()
    con.unregister("eval_bands")
    rows = []
    for example, key, normalised, batch in found:
        name, version, example_id, form = examples[example]
        if not form or not normalised:  # only spaces or punctuation: an empty form says nothing, and matches nothing
            continue
        similarity = dedup.jaccard(form, normalised, params.ngram)
        if similarity >= params.threshold:
            rows.append((name, version, example_id, "exact" if form == normalised else "near", key, None, None, batch,
                         similarity))
    return _matches(rows)


def _matches(rows: list[tuple]) -> pa.Table:
    names = ("evalset", "version", "example_id", "kind", "prompt_key", "annotation_id", "response_id", "batch_id",
             "similarity")
    types = [pa.string()] * 8 + [pa.float64()]
    return pa.table([pa.array([r[i] for r in rows], t) for i, t in enumerate(types)], names=list(names))


def stage_batch(con, params: dedup.Params) -> None:
    """stage_contamination: the validated batch's new forms (stage_new_prompts) and responses (valid_responses)
    against the latest version of every registered set (batch_id left NULL: the load fills it)."""
    sets = latest_sets(con)
    examples = stage_sets(con, sets)
    con.execute("CREATE OR REPLACE TEMP VIEW batch_new_forms AS SELECT prompt_seq, prompt_key, normalised, "
                "NULL::VARCHAR AS batch_id FROM stage_new_prompts")
    con.register("prompt_matches", prompt_matches(con, examples, params, "stage_bands", "batch_new_forms"))
    con.execute("CREATE OR REPLACE TEMP VIEW checked_responses AS SELECT a.annotation_id, r.response_id, r.text "
                "FROM valid_responses r JOIN valid_annotations a USING (entry)")
    con.execute("CREATE OR REPLACE TEMP TABLE stage_contamination AS SELECT * FROM prompt_matches"
                + (f" UNION ALL SELECT * FROM ({sql(RESPONSES)})" if sets else ""))
    con.unregister("prompt_matches")


def check_set(wh, name: str, version: str, path: str) -> int:
    """Record the matches of one set's version in the whole warehouse WH (prefpipe.warehouse), once, in one
    transaction; returns how many (-1: checked before)."""
    con = wh.con
    if con.execute("SELECT count(*) FROM contamination_checks WHERE evalset = ? AND version = ?",
                   [name, version]).fetchall()[0][0]:
        return -1
    params = dedup.stored_params(con)
    examples = stage_sets(con, [(name, version, path)])
    con.register("prompt_matches", prompt_matches(con, examples, params, "prompt_bands", "prompt_clusters"))
    con.execute("CREATE OR REPLACE TEMP VIEW checked_responses AS SELECT a.annotation_id, r.response_id, r.text "
                "FROM responses r JOIN annotations a USING (annotation_seq)")
    try:
        with wh.transaction():
            con.execute("DELETE FROM contamination WHERE evalset = ? AND version = ?", [name, version])
            con.execute("INSERT INTO contamination BY NAME SELECT * FROM prompt_matches")
            con.execute(f"INSERT INTO contamination BY NAME SELECT m.* REPLACE (a.batch_id AS batch_id) "
                        f"FROM ({sql(RESPONSES)}) m JOIN annotations a USING (annotation_id)")
            [(found,)] = con.execute("SELECT count(*) FROM contamination WHERE evalset = ? AND version = ?",
                                     [name, version]).fetchall()
            con.execute("INSERT INTO contamination_checks VALUES (?, ?, ?, now())", [name, version, found])
    finally:
        con.unregister("prompt_matches")
    return found


def check_registered(wh) -> list[str]:
    """Check every set's latest version that was never checked (registered before prefpipe 0.4)."""
    return [f"{name} (version {version[:12]}): checked once against the whole warehouse: {found} matches "
            "recorded (table contamination)" for name, version, path in latest_sets(wh.con)
            if (found := check_set(wh, name, version, path)) >= 0]


# -- what a model saw, and what training and export leave out ---------------------------------------------

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
    con.execute("""
        CREATE OR REPLACE TEMP TABLE excluded_annotations AS
        WITH matches AS (
            SELECT c.* FROM contamination c
            JOIN (SELECT name, arg_max(version, registered_at) AS version FROM evalsets GROUP BY name) e
              ON e.name = c.evalset AND e.version = c.version
            WHERE list_contains(?, c.evalset))
        SELECT DISTINCT annotation_seq, annotation_id, evalset, example_id
        FROM (SELECT a.annotation_seq, a.annotation_id, m.evalset, m.example_id  -- two equi-joins, not one OR
              FROM annotations a JOIN matches m USING (prompt_key)
              UNION ALL
              SELECT a.annotation_seq, a.annotation_id, m.evalset, m.example_id
              FROM annotations a JOIN matches m USING (annotation_id))""", [chosen])
    per_set = dict(con.execute("SELECT evalset, struct_pack(annotations := count(DISTINCT annotation_seq), "
                               "examples := count(DISTINCT example_id)) FROM excluded_annotations GROUP BY 1"
                               ).fetchall())
    [(annotations,)] = con.execute("SELECT count(DISTINCT annotation_seq) FROM excluded_annotations").fetchall()
    return {"evalsets": {n: per_set.get(n, {"annotations": 0, "examples": 0}) for n in chosen},
            "annotations": annotations} if chosen else {}


def model_contamination(con, model_dir: Path, sets: list[dict]) -> dict[str, list[str]] | None:
    """Per set of SETS (latest versions: name, version), the examples that match the data the model at
    MODEL_DIR trained on (its snapshot's training split, by annotation or by prompt form); None when the model
    has no snapshot (trained elsewhere: unknown)."""
    from prefpipe.units import SNAPSHOT  # units imports this module

    snapshot = Path(model_dir) / SNAPSHOT
    if not snapshot.is_file():
        return None
    rows = [r for r in pq.read_table(snapshot, columns=["annotation_id", "split", "prompt"]).to_pylist()
            if r["split"] == "train"]
    con.register("trained_ids", pa.table({"annotation_id": [r["annotation_id"] for r in rows]}))
    con.register("trained_keys", pa.table({"prompt_key": sorted(
        {dedup.prompt_key(dedup.normalise_prompt(json.loads(r["prompt"]))) for r in rows})}))
    try:
        return {s["name"]: [e for (e,) in con.execute(
            "SELECT DISTINCT example_id FROM contamination WHERE evalset = ? AND version = ? AND "
            "(prompt_key IN (SELECT prompt_key FROM trained_keys) "
            "OR annotation_id IN (SELECT annotation_id FROM trained_ids)) ORDER BY 1",
            [s["name"], s["version"]]).fetchall()] for s in sets}
    finally:
        con.unregister("trained_ids")
        con.unregister("trained_keys")
