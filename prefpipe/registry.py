"""The `models` table: which reward models exist, what they learned from, how good they are."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from prefpipe.config import Combination
from prefpipe.contamination import check_set
from prefpipe.dpo import check_pair
from prefpipe.errors import InputError
from prefpipe.evalsets import read_evalset_format
from prefpipe.export import export_pairs
from prefpipe.files import content_hash
from prefpipe.judges import JudgeSettings, check_judge
from prefpipe.model_files import is_causal_lm, model_config
from prefpipe.settings import HELD_OUT
from prefpipe.sql import sql
from prefpipe.warehouse import Warehouse

HEADLINE = ("accuracy", "log_loss", "ece", "pairs")


def register_model(wh: Warehouse, model_id: str, path: Path, config: dict, snapshot: dict, metrics: dict,
                   reference: Path | None = None, *, judge: JudgeSettings | None = None, replace: bool = False) -> None:
    """Add the model (a DPO policy with REFERENCE, a generative judge with JUDGE, else a classifier). An id that
    is registered already is refused, so that its training record (loss, pairs, metrics, data hash) is never
    erased silently; REPLACE replaces it (a resumed run does)."""
    path = Path(path).resolve()
    with wh.transaction() as con:
        is_model, is_combo, held_path, loss, pairs = _names(con, model_id)
        if is_combo:
            raise InputError("a combination has this name; choose another --name", field="--name", file=model_id)
        if is_model and not replace:
            trained = f", trained with {loss} on {pairs} pairs" if pairs is not None else ""
            raise InputError(f"already registered (the model at {held_path}{trained}); choose another --name, or "
                             "pass --replace to replace it and its record", field="--name", file=model_id)
        con.execute(sql("registry/delete_model.sql"), [model_id])
        headline = {split: {k: metrics[split][k] for k in HEADLINE} for split in HELD_OUT
                    if split in metrics}
        con.execute(sql("registry/insert_model.sql"),
                    [model_id, str(path), config["base"], config["loss"], json.dumps(config),
                     snapshot["batch_ids"], snapshot["pairs"]["train"], snapshot["hash"], json.dumps(headline),
                     None if reference is None else str(Path(reference).resolve()),
                     json.dumps(snapshot["excluded"]) if snapshot.get("excluded") else None,
                     "judge" if judge else "dpo" if reference else "classifier", judge and judge.as_json()])


def list_models(wh: Warehouse) -> tuple[list[str], list[tuple]]:
    return wh.query(sql("registry/models.sql"))


# -- evaluation sets ------------------------------------------------------------------------------------

def register_evalset(wh: Warehouse, home: Path, path: Path, name: str, fmt: str = "auto",
                     source: str | None = None) -> tuple[dict, bool]:
    """Register PATH as (a new version of) evaluation set NAME: validated, copied, recorded.
    Returns the version's row and whether it is new (an unchanged file is the same version). NAME was checked
    by the caller (prefpipe.names.check_name), as every name is, once, where it enters."""
    fmt, examples = read_evalset_format(path, fmt)
    version = content_hash(path)
    columns, held = wh.query(sql("registry/evalset_version.sql"), [name, version])
    if held:
        return dict(zip(columns, held[0], strict=True)), False
    stored = home / "evalsets" / name / f"{version[:16]}{Path(path).suffix}"
    stored.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, stored)
    with wh.transaction() as con:
        con.execute(sql("registry/insert_evalset.sql"),
                    [name, version, str(stored.resolve()), source or str(Path(path).resolve()), fmt, len(examples),
                     sorted({e.subset for e in examples})])
    check_set(wh, name, version, str(stored.resolve()))  # its matches in the whole warehouse
    return latest_evalsets(wh, name)[0], True


def register_split(wh: Warehouse, home: Path, split: str, name: str) -> tuple[dict, bool]:
    """The warehouse's curated pairs of SPLIT, as (a new version of) evaluation set NAME."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}-{split}.jsonl"
        export_pairs(wh, path, split, layout="rewardbench")
        return register_evalset(wh, home, path, name, source=f"warehouse:{split}")


def latest_evalsets(wh: Warehouse, name: str | None = None) -> list[dict]:
    """The latest version of every registered set (or of NAME), with how many of its examples match the
    warehouse (`contaminated`: by prompt or a response; prefpipe.contamination)."""
    columns, rows = wh.query(sql("registry/latest_evalsets.sql"), [name])
    return [dict(zip(columns, r, strict=True)) for r in rows]


# -- models trained elsewhere ---------------------------------------------------------------------------

def add_model(wh: Warehouse, path: Path, model_id: str, reference: Path | None = None, *,
              judge: JudgeSettings | None = None, replace: bool = False) -> None:
    """Register a model trained elsewhere (active): a Hugging Face sequence-classification folder, a DPO policy
    (a causal LM) with its REFERENCE, scored by its implicit reward, or a generative judge (a causal LM with a
    chat template) with JUDGE's settings, checked as the nightly will load it (no weights read). An id in use is
    refused unless REPLACE."""
    if judge is not None and reference is not None:
        raise InputError("a judge has no reference model; give --judge or --reference, not both", field="--judge")
    if judge is not None:
        check_judge(path, judge)
        using = [name for (name,) in wh.con.execute(sql("registry/combos_using.sql"), [model_id]).fetchall()]
        if judge.scoring != "logprob" and using:
            raise InputError(f"the combination(s) {', '.join(using)} use this model: a judge that scores by "
                             "generation gives them no reward of one completion", field="--judge-scoring",
                             file=model_id)
    elif reference is not None:
        check_pair(path, reference)
    else:
        values = model_config(path)
        config = Path(path) / "config.json"
        if is_causal_lm(values):
            raise InputError("a causal LM, not a reward model: to score a DPO policy, give its --reference; to "
                             "score it as a generative judge, --judge", file=config)
        labels = len(values.get("id2label") or {"0": "score"})
        if labels != 1:
            raise InputError(f"a reward model has one output (num_labels 1), this one has {labels}", file=config)
    register_model(wh, model_id, path, {"base": str(Path(path).resolve()), "loss": "dpo" if reference else None},
                   {"batch_ids": [], "pairs": {"train": None}, "hash": None}, {}, reference, judge=judge,
                   replace=replace)


def set_active(wh: Warehouse, model_id: str, active: bool) -> None:
    with wh.transaction() as con:
        if not _names(con, model_id)[0]:
            raise InputError("no such model in the registry (see `prefpipe models`)", file=model_id)
        con.execute(sql("registry/set_active.sql"), [model_id, active])


def active_models(wh: Warehouse) -> list[tuple[str, str, str | None, JudgeSettings | None]]:
    """(model id, folder, reference folder of a DPO policy or None, a judge's settings or None) of every active
    model."""
    return [(m, path, ref, JudgeSettings.from_json(judge))
            for m, path, ref, judge in wh.con.execute(sql("registry/active_models.sql")).fetchall()]


# -- combinations of models ---------------------------------------------------------------------------------

def add_combo(wh: Warehouse, combo: Combination, *, replace: bool = False) -> None:
    """Register COMBO (active): its models must be registered and reward each completion (`model_folders`), and
    its name must not be a model's."""
    model_folders(wh, list(combo.models), file=combo.name)
    with wh.transaction() as con:
        is_model, is_combo, *_ = _names(con, combo.name)
        if is_model:
            raise InputError("a model has this name; a combination is scored under its own", field="NAME",
                             file=combo.name)
        if is_combo and not replace:
            raise InputError("already registered; pass --replace to replace it", field="NAME", file=combo.name)
        con.execute(sql("registry/delete_combo.sql"), [combo.name])
        con.execute(sql("registry/insert_combo.sql"),
                    [combo.name, list(combo.models), list(combo.weights), combo.transform, combo.references,
                     combo.quantiles[0], list(combo.quantiles), combo.method, combo.min_references, combo.too_few,
                     combo.reference_lm, combo.samples, combo.seed])


def combos(wh: Warehouse, name: str | None = None, active_only: bool = False) -> list[Combination]:
    """The registered combinations (or NAME), as Combination."""
    columns, rows = wh.query(sql("registry/combos.sql"), [name, active_only])
    return [Combination.from_row(dict(zip(columns, row, strict=True))) for row in rows]


def model_folders(wh: Warehouse, model_ids: list[str], file: str | None = None
                  ) -> dict[str, tuple[Path, Path | None]]:
    """(folder, DPO reference or None) of each model of MODEL_IDS, which reward each completion (a judge by its
    expected rating: `prefpipe.scoring.scorer`); a judge that scores by generation gives no such reward."""
    rows = wh.con.execute(sql("registry/model_folders.sql"), [model_ids]).fetchall()
    missing = [m for m in model_ids if m not in {row[0] for row in rows}]
    if missing:
        raise InputError(f"no such model in the registry: {', '.join(missing)} (see `prefpipe models`)",
                         field="--model", file=file)
    for model_id, _, _, judge in rows:
        if (settings := JudgeSettings.from_json(judge)) is not None and settings.scoring != "logprob":
            raise InputError("a judge that scores by generation gives no reward of one completion; register the "
                             "folder again with --judge-scoring logprob (under another --name)", field="--model",
                             file=model_id)
    return {m: (Path(path), Path(ref) if ref else None) for m, path, ref, _ in rows}


def register_normalised(wh: Warehouse, source_id: str, model_id: str, path: Path, record: dict) -> None:
    """MODEL_ID: the normalised copy at PATH of SOURCE_ID, with its training record and metrics (a positive
    affine map changes no comparison) and the normalisation (reference set, size, bias, scale)."""
    with wh.transaction() as con:
        check_free_name(con, model_id)
        con.execute(sql("registry/insert_normalised.sql"),
                    [model_id, str(Path(path).resolve()), json.dumps({"normalised_from": source_id} | record),
                     source_id])


def check_free_name(con, model_id: str, folder: Path | None = None) -> None:
    """MODEL_ID names no model or combination yet (and FOLDER, where the new model would go, does not exist)."""
    is_model, is_combo, *_ = _names(con, model_id)
    if is_model or is_combo:
        raise InputError("already names a model or a combination; choose another --name", field="--name",
                         file=model_id)
    if folder is not None and folder.exists():
        raise InputError(f"{folder} exists already; choose another --name", field="--name", file=model_id)


def model_record(wh: Warehouse, model_id: str) -> dict:
    """The registry row of MODEL_ID."""
    columns, rows = wh.query(sql("registry/model.sql"), [model_id])
    if not rows:
        raise InputError("no such model in the registry (see `prefpipe models`)", file=model_id)
    return dict(zip(columns, rows[0], strict=True))


def _names(con, model_id: str) -> tuple[bool, bool, str | None, str | None, int | None]:
    """Whether a model and whether a combination has the id MODEL_ID, and the model's path, loss and pairs."""
    return con.execute(sql("registry/name.sql"), [model_id]).fetchall()[0]
