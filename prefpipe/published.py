"""Models and evaluation sets published beside a bucket's results, for workers that share no disk with the
machine that registered them: uploaded once under their content hash, fetched once per machine and checked."""

from __future__ import annotations

from pathlib import Path

from prefpipe import store
from prefpipe.files import content_hash, folder_hash
from prefpipe.lake import MANIFEST
from prefpipe.store import Bucket

PUBLISHED = ".published"  # under a bucket's results: the models and sets that its workers fetch


def publish_model(results: Bucket, folder: Path) -> str:
    """A model folder published beside a bucket's results, for workers that share no disk: its URL, named by
    its content hash (what `evaluate_model` records as the model's version)."""
    return str(store.publish(folder, results / PUBLISHED / "models" / folder_hash(folder), MANIFEST))


def publish_file(results: Bucket, path: Path) -> str:
    """An evaluation set's file published beside a bucket's results: its URL, under its sha256."""
    return str(store.publish(path, results / PUBLISHED / "evalsets" / content_hash(path), MANIFEST) / path.name)


def local_copy(value: str | None) -> Path | None:
    """What a unit names: a path of this machine as it is, or a published model folder or set file (a URL):
    this machine's copy, fetched once and checked against the hash that names it."""
    if value is None or not str(value).startswith(store.SCHEME):
        return None if value is None else Path(value)
    where = Bucket(str(value))
    if where.parent.parent.name == "evalsets":
        local, digest = store.fetch(where.parent, MANIFEST) / where.name, where.parent.name
        found = content_hash(local)
    else:
        local, digest = store.fetch(where, MANIFEST), where.name
        found = folder_hash(local)
    if found != digest:
        raise store.LakeError(f"{value}: its files hash to {found[:12]}…, not to the hash that names it")
    return local
