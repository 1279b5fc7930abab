"""Models and evaluation sets published beside a bucket's results, for workers that share no disk with the
machine that registered them: uploaded once under their content hash, fetched once per machine and checked."""

from __future__ import annotations

import json
import shutil
import uuid
from contextlib import suppress
from pathlib import Path

from prefpipe import store
from prefpipe.files import content_hash, folder_hash, sweep_staging
from prefpipe.lake import MANIFEST
from prefpipe.store import Bucket

PUBLISHED = ".published"  # under a bucket's results: the models and sets that its workers fetch


def publish_model(results: Bucket, folder: Path) -> str:
    """A model folder published beside a bucket's results, for workers that share no disk: its URL, named by
    its content hash (what `evaluate_model` records as the model's version)."""
    return str(publish(folder, results / PUBLISHED / "models" / folder_hash(folder)))


def publish_file(results: Bucket, path: Path) -> str:
    """An evaluation set's file published beside a bucket's results: its URL, under its sha256."""
    return str(publish(path, results / PUBLISHED / "evalsets" / content_hash(path)) / path.name)


def local_copy(value: str | None) -> Path | None:
    """What a unit names: a path of this machine as it is, or a published model folder or set file (a URL):
    this machine's copy, fetched once and checked against the hash that names it."""
    if value is None or not str(value).startswith(store.SCHEME):
        return None if value is None else Path(value)
    where = Bucket(str(value))
    if where.parent.parent.name == "evalsets":
        local, digest = fetch(where.parent) / where.name, where.parent.name
        found = content_hash(local)
    else:
        local, digest = fetch(where), where.name
        found = folder_hash(local)
    if found != digest:
        raise store.LakeError(f"{value}: its files hash to {found[:12]}…, not to the hash that names it")
    return local


def publish(local: Path, where: Bucket) -> Bucket:
    """Upload LOCAL (a folder's files, or one file) to WHERE once, for workers that share no disk with this
    machine; WHERE is named by LOCAL's content hash, so what is there already is the same and is kept."""
    files = {p.name: p for p in sorted(local.iterdir()) if p.is_file()} if local.is_dir() else {local.name: local}
    text = json.dumps({"files": {name: {"bytes": p.stat().st_size, "sha256": content_hash(p)}
                                 for name, p in files.items()}}).encode()
    fs = store.filesystem()
    with store.lake_errors(where, "publishing"):
        if not fs.exists(f"{where.key}/{MANIFEST}"):
            fs.put([str(p) for p in files.values()], [f"{where.key}/{name}" for name in files])
            with suppress(FileExistsError):  # published by another machine meanwhile: the same bytes
                fs.pipe_file(f"{where.key}/{MANIFEST}", text, mode="create")
    return where


def fetch(where: Bucket) -> Path:
    """This machine's copy of what `publish` put at WHERE (a folder), fetched once into the cache and checked
    against its manifest's sha256s; staged, then renamed into place, so that units fetching it at once on
    threads or processes of this machine never see half of it."""
    local = store.cache_dir() / "published" / where.key
    if local.is_dir():
        return local
    files = (store.parsed(store.read_bytes(where / MANIFEST)) or {}).get("files")
    if not files:
        raise store.LakeError(f"{where}: not a published model or set (no manifest)")
    local.parent.mkdir(parents=True, exist_ok=True)
    sweep_staging(local.parent)  # what a killed fetch left
    staging = local.parent / f".staging-{uuid.uuid4().hex}"
    try:
        store.get_checked(where, list(files.items()), staging, "its manifest")
        with suppress(OSError):  # another unit put its copy there first: the same bytes
            staging.rename(local)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return local
