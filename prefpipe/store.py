"""Where the lake lives: a local folder, or a bucket (`s3://bucket/prefix` on S3 or any S3-compatible store:
MinIO, Ceph) that GPU workers, analysts' laptops and the scheduler share instead of a disk.

The files go through fsspec's s3fs; the endpoint, region and credentials come from where boto-based tools
read them (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws): prefpipe
never takes, stores or prints a secret. Timeouts are short and retries few, so a bad configuration fails in
one line within seconds (`LakeError`), never after a retry storm.

A bucket has no rename: a run is uploaded file by file and its manifest last, created only if absent
(`If-None-Match: *`), so a run becomes visible in one step and a second writer cannot replace it (prefpipe.lake
owns the protocol). Readers copy whole runs once into a local cache (`mirror`): a run never changes once
its manifest is written, so its files are fetched once per machine and checked against the manifest's sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from prefpipe.errors import InputError, PrefpipeError
from prefpipe.files import STALE_STAGING_S, content_hash, sweep_staging

SCHEME = "s3://"
COMMITS = "_manifests"  # under a lake's root in a bucket: one object per committed run, its manifest
CONNECT_TIMEOUT_S, READ_TIMEOUT_S, ATTEMPTS = 5, 60, 2  # of one request; PREFPIPE_S3_TIMEOUT overrides both
BUCKET_NAME = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"  # S3's rule for bucket names
PREFIX_PART = r"[A-Za-z0-9_][A-Za-z0-9_.=-]*"  # a folder of the prefix: no '..', no spaces, no wildcards


class LakeError(PrefpipeError):
    """The bucket cannot be used as configured (endpoint, credentials, bucket, permission): one line."""


@dataclass(frozen=True)
class Bucket:
    """A folder of a bucket, as `s3://bucket/prefix`; joined with / like a Path. Plain data, so that it
    travels to Dask workers, which reach it with their own credentials."""

    url: str

    def __truediv__(self, part: str) -> Bucket:
        return Bucket(f"{self.url}/{part}")

    def __str__(self) -> str:
        return self.url

    @property
    def key(self) -> str:  # bucket/prefix, as fsspec names it
        return self.url.removeprefix(SCHEME)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> Bucket:
        return Bucket(self.url.rsplit("/", 1)[0])

    def resolve(self) -> Bucket:
        return self


Location = Path | Bucket


def location(value: str | Path | Bucket, field: str = "PREFPIPE_LAKE") -> Location:
    """A local folder, or a bucket's folder when VALUE starts with s3://; any other URL is refused."""
    if isinstance(value, Bucket | Path):
        return value
    text = str(value)
    if text.startswith(SCHEME):
        bucket, _, prefix = text.removeprefix(SCHEME).rstrip("/").partition("/")
        if not re.fullmatch(BUCKET_NAME, bucket):
            raise InputError(f"{bucket!r} is not a bucket name (3-63 of a-z, 0-9, '.', '-')", field=field, file=text)
        parts = prefix.split("/") if prefix else []
        if not all(re.fullmatch(PREFIX_PART, p) for p in parts):
            raise InputError("a bucket's prefix holds folder names of letters, digits, '_', '.', '=', '-' "
                             "(no '..', no wildcards)", field=field, file=text)
        return Bucket(SCHEME + "/".join([bucket, *parts]))
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise InputError("the lake is a local folder or s3://bucket/prefix", field=field, file=text)
    return Path(text)


@cache
def filesystem():
    """The process's s3fs filesystem: the standard AWS configuration, short timeouts, few retries."""
    import s3fs  # 0.3 s: only for a bucket

    try:
        timeout = float(os.environ.get("PREFPIPE_S3_TIMEOUT") or 0) or None
    except ValueError:
        raise InputError(f"must be a number of seconds, got {os.environ['PREFPIPE_S3_TIMEOUT']!r}",
                         field="PREFPIPE_S3_TIMEOUT") from None
    fs = s3fs.S3FileSystem(skip_instance_cache=True, config_kwargs={
        "connect_timeout": timeout or CONNECT_TIMEOUT_S, "read_timeout": timeout or READ_TIMEOUT_S,
        "retries": {"max_attempts": ATTEMPTS, "mode": "standard"}})
    fs.retries = ATTEMPTS  # s3fs's own retries of a request, on top of botocore's (default 5, with backoff)
    return fs


def httpfs_secret() -> str | None:
    """A DuckDB `CREATE TEMPORARY SECRET` for its httpfs extension, from the same standard AWS configuration that
    s3fs reads (variables, profiles, endpoint); None without credentials. The statement holds the secret: it is
    executed, never logged (DuckDB redacts it in `duckdb_secrets()`)."""
    import botocore.session

    session = botocore.session.get_session()
    credentials = session.get_credentials()
    if credentials is None:
        return None
    credentials = credentials.get_frozen_credentials()
    client = session.create_client("s3", region_name=session.get_config_variable("region") or "us-east-1")
    endpoint = urlsplit(client.meta.endpoint_url)
    options = {"KEY_ID": credentials.access_key, "SECRET": credentials.secret_key,
               "SESSION_TOKEN": credentials.token, "REGION": client.meta.region_name, "ENDPOINT": endpoint.netloc,
               "USE_SSL": endpoint.scheme == "https",
               "URL_STYLE": "vhost" if endpoint.netloc.endswith("amazonaws.com") else "path"}  # MinIO, moto, Ceph
    quoted = ", ".join(f"{k} {str(v).lower() if isinstance(v, bool) else repr_sql(v)}"
                       for k, v in options.items() if v is not None)
    return f"CREATE TEMPORARY SECRET prefpipe_lake (TYPE s3, {quoted})"


def repr_sql(text: str) -> str:
    """TEXT as an SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


@contextmanager
def lake_errors(where: Bucket, doing: str):
    """Turn what the store answers into one line naming the bucket, what was being done and what to check."""
    try:
        yield
    except (PrefpipeError, FileExistsError):
        raise
    except Exception as e:  # botocore, aiohttp and s3fs each raise their own kinds
        raise LakeError(f"{where}: {doing}: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    text = (str(e).splitlines() or [type(e).__name__])[0]
    name = type(e).__name__
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "the AWS default"
    if "Could not connect" in text or name in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                                                "ClientConnectorError", "ServerTimeoutError", "FSTimeoutError"}:
        return f"the endpoint ({endpoint}) does not answer: check AWS_ENDPOINT_URL and the network"
    if name == "NoCredentialsError" or "Unable to locate credentials" in text:
        return "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
    if any(word in text for word in ("Access Key Id you provided does not exist", "InvalidAccessKeyId",
                                     "SignatureDoesNotMatch", "signature we calculated does not match")):
        return "the credentials are not valid for this endpoint (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    if isinstance(e, PermissionError):
        return f"access denied: the credentials are wrong, or the bucket is read-only or closed to this user ({text})"
    if isinstance(e, FileNotFoundError) and "bucket does not exist" in text:
        return "the bucket does not exist"
    return f"{name}: {text}"


def check_bucket(where: Bucket, write: bool) -> None:
    """Fail in one line, before any work, when the bucket cannot be read (or, with WRITE, written) here."""
    fs = filesystem()
    with lake_errors(where, "reading the bucket"):
        fs.ls(where.key.split("/")[0], refresh=True)
    if write:
        probe = f"{where.key}/.probe-{os.urandom(8).hex()}"
        with lake_errors(where, "writing to the bucket (is it read-only for this user?)"):
            fs.pipe_file(probe, b"")
            fs.rm_file(probe)


class Object(NamedTuple):
    size: int
    modified: float  # seconds since the epoch


def listing(where: Bucket) -> dict[str, Object]:
    """Every object under WHERE (path relative to it -> size and time written), in one recursive listing."""
    fs = filesystem()
    with lake_errors(where, "listing the lake"):
        found = fs.find(where.key, detail=True, refresh=True)
    return {name.removeprefix(where.key + "/"): Object(info["size"], _seconds(info.get("LastModified")))
            for name, info in found.items() if info.get("type") != "directory"}


def _seconds(modified: object) -> float:
    return modified.timestamp() if hasattr(modified, "timestamp") else time.time()


def sweep(root: Bucket, depth: int) -> list[str]:
    """Remove the run folders under ROOT (DEPTH levels deep) that were never committed and whose newest object
    is older than a day: what killed writers left. A younger one may belong to a writer at work now, on any
    machine. One listing of every object: the nightly does it once, readers never."""
    committed, now = set(runs_of(root)), time.time()
    folders: dict[str, list[Object]] = {}
    for name, found in listing(root).items():
        parts = name.split("/")
        if len(parts) > depth and not any(part.startswith((".", COMMITS)) for part in parts[:depth]):
            folders.setdefault("/".join(parts[:depth]), []).append(found)
    swept = [folder for folder, objects in folders.items() if folder not in committed
             and now - max(o.modified for o in objects) > STALE_STAGING_S]
    for folder in swept:
        remove(root / folder)
    return swept


def upload_run(staging: Path, root: Bucket, partition: str, manifest: str) -> None:
    """Upload the run staged in STAGING: its files under ROOT/PARTITION, then its MANIFEST as the commit,
    `_manifests/PARTITION.json`, created only if absent: readers list those alone (one object a run, not
    three), and a second writer of the same run gets FileExistsError."""
    files = {str(p.relative_to(staging)): p for p in sorted(staging.rglob("*")) if p.is_file() and p.name != manifest}
    fs = filesystem()
    with lake_errors(root / partition, "writing a run"):
        fs.put([str(p) for p in files.values()], [f"{root.key}/{partition}/{name}" for name in files])
        fs.pipe_file(commit(root, partition).key, (staging / manifest).read_bytes(), mode="create")


def commit(root: Bucket, partition: str) -> Bucket:
    """The object that commits the run at PARTITION of ROOT: its manifest."""
    return root / COMMITS / f"{partition}.json"


def runs_of(root: Bucket, under: str = "") -> list[str]:
    """The committed runs under ROOT (their partitions; only those UNDER a partition prefix), from one listing
    of their manifests."""
    where = root / COMMITS / under if under else root / COMMITS
    return [f"{under}/{name}".strip("/").removesuffix(".json") for name in listing(where) if name.endswith(".json")]


def remove_run(root: Bucket, partition: str) -> None:
    """Uncommit the run (readers stop seeing it), then remove its files."""
    remove(commit(root, partition))
    remove(root / partition)


def create(where: Bucket, data: bytes) -> bool:
    """Write a small object only if none is there; False when one is."""
    try:
        with lake_errors(where, "writing"):
            filesystem().pipe_file(where.key, data, mode="create")
        return True
    except FileExistsError:
        return False


def read_bytes(where: Bucket) -> bytes:
    with lake_errors(where, "reading"):
        return filesystem().cat_file(where.key)


def remove(where: Bucket) -> None:
    with lake_errors(where, "removing"):
        filesystem().rm(where.key, recursive=True)


def read_table(where: Location, columns: list[str] | None = None):
    """A Parquet file of a run, on this machine or in a bucket."""
    import pyarrow.parquet as pq

    if isinstance(where, Path):
        return pq.read_table(where, columns=columns)
    with lake_errors(where, "reading"):
        return pq.read_table(where.key, columns=columns, filesystem=filesystem())


def cache_dir() -> Path:
    """This machine's cache of what it fetched from buckets (PREFPIPE_CACHE; default the home's cache/)."""
    return Path(os.environ.get("PREFPIPE_CACHE") or Path(os.environ.get("PREFPIPE_HOME", "data")) / "cache").resolve()


def mirror_of(root: Bucket) -> Path:
    """The local folder that mirrors the whole runs of ROOT (one per bucket folder)."""
    return cache_dir() / "lake" / hashlib.sha256(root.url.encode()).hexdigest()[:16]


def manifests(root: Bucket, runs: list[str], manifest: str) -> dict[str, dict | None]:
    """The manifests of RUNS (committed folders under ROOT), each read from the bucket once per machine (a
    manifest never changes once written; kept beside the mirror); None for a run without a readable one."""
    cached = mirror_of(root) / ".manifests"
    found: dict[str, dict | None] = {run: parsed((cached / run / manifest).read_bytes())
                                      for run in runs if (cached / run / manifest).is_file()}
    new = [run for run in runs if run not in found]
    if new:
        with lake_errors(root, "reading the runs' manifests"):
            texts = filesystem().cat([commit(root, run).key for run in new], on_error="return")
        for run in new:
            text = texts.get(commit(root, run).key)
            found[run] = parsed(text)
            if found[run] is not None:
                (cached / run).mkdir(parents=True, exist_ok=True)
                (cached / run / manifest).write_bytes(text)
    return found


def mirror_runs(root: Bucket, runs: list[str], manifest: str) -> tuple[dict[str, Path], list[str]]:
    """Copy the committed RUNS of ROOT into this machine's mirror of ROOT, once: each fetched file is checked
    against its manifest's sha256, and the manifest is written last, as a run is. Returns the local folder of
    each run, and the runs whose manifest cannot be read."""
    mirror = mirror_of(root)
    whole, broken, wanted = {}, [], []
    read = manifests(root, [run for run in runs if not (mirror / run / manifest).is_file()], manifest)
    for run in runs:
        if (mirror / run / manifest).is_file():
            whole[run] = mirror / run
        elif (read.get(run) or {}).get("files") is None:
            broken.append(run)
        else:
            whole[run] = mirror / run
            wanted += [(run, name, f) for name, f in read[run]["files"].items()]
    mirror.mkdir(parents=True, exist_ok=True)
    sweep_staging(mirror)  # what a killed reader left
    staging = mirror / f".staging-{uuid.uuid4().hex}"  # of this reader: another may fetch the same runs now
    try:
        get_checked(root, [(f"{run}/{name}", f) for run, name, f in wanted], staging, "its run's manifest")
        for run in read:
            if run in whole:
                (staging / run).mkdir(parents=True, exist_ok=True)
                (staging / run / manifest).write_text(json.dumps(read[run]))  # last: the copy is whole
                (mirror / run).parent.mkdir(parents=True, exist_ok=True)
                _place(staging / run, mirror / run, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return whole, broken


def get_checked(root: Bucket, wanted: list[tuple[str, dict]], into: Path, manifest: str) -> None:
    """Download each (path under ROOT, its entry in a manifest) of WANTED to the same path under INTO, and check
    every file against its sha256: an object changed after it was written is refused in one line."""
    if not wanted:
        return
    for name, _ in wanted:
        (into / name).parent.mkdir(parents=True, exist_ok=True)
    with lake_errors(root, "reading files"):
        filesystem().get([f"{root.key}/{name}" for name, _ in wanted], [str(into / name) for name, _ in wanted])
    for name, f in wanted:
        if not holds(into / name, f):
            raise LakeError(f"{root}/{name}: its bytes differ from {manifest} (sha256): the object was changed after "
                            "it was written")


def _place(staged: Path, final: Path, manifest: str) -> None:
    """Rename a whole copy into place; another reader's whole copy there first is kept (the same bytes), a
    partial one (no manifest: its reader was killed) replaced."""
    try:
        staged.rename(final)
    except OSError:
        if not (final / manifest).is_file():
            shutil.rmtree(final, ignore_errors=True)
            with suppress(OSError):
                staged.rename(final)


def parsed(text: bytes | Exception | None) -> dict | None:
    """A manifest, or None when it is missing or not one (its files each with bytes and sha256)."""
    if not isinstance(text, bytes):
        return None
    try:
        manifest = json.loads(text)
        ok = all({"bytes", "sha256"} <= set(f) for f in manifest["files"].values())
        return manifest if ok else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def holds(path: Path, f: dict) -> bool:
    return path.is_file() and path.stat().st_size == f["bytes"] and content_hash(path) == f["sha256"]
