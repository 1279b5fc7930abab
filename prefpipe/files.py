"""Files: content hashes (a batch's id, a model's version), folders written whole (staged, then renamed in
one step), and modes that follow the user's umask, so that analysts and Dask workers under another
account can read what prefpipe writes (transformers writes model weights through private temporary
files, mode 0600)."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

STALE_STAGING_S = 86_400  # a staging folder older than this belongs to a killed writer


def content_hash(path: Path | str) -> str:
    """sha256 of a file's bytes: a batch's id (a re-sent file is recognised), an evaluation set's version."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def folder_hash(path: Path | str, pattern: str = "*") -> str:
    """sha256 over the files of a folder (names and bytes), e.g. a model's weights and config."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).glob(pattern) if p.is_file()):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def write_whole(parent: Path, final: Path, write: Callable[[Path], None]) -> Path:
    """WRITE a folder's files into a hidden staging folder of PARENT (one per writer: units run
    concurrently), then rename it to FINAL in one step: the folder appears whole or not at all."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep_staging(parent)
    staging = parent / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()  # not mkdtemp: its mode 0700 would hide the result from other accounts
    try:
        write(staging)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def replace_whole(final: Path, write: Callable[[Path], None]) -> Path:
    """WRITE a folder whole (staged, then renamed) in place of FINAL's previous version: a reader finds the
    old folder or the new one, never a mix (between the two renames, for a moment, neither)."""
    new = write_whole(final.parent, final.parent / f".staging-{uuid.uuid4().hex}-{final.name}", write)
    old = final.parent / f".staging-{uuid.uuid4().hex}-old"
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def sweep_staging(folder: Path, older_than_s: float = STALE_STAGING_S) -> None:
    """Remove what killed writers left in FOLDER (hidden staging folders or files, never read as results). Only
    old ones: a young one may belong to a writer at work now, on this machine or another."""
    for staging in folder.glob(".staging-*"):
        try:
            written = staging.stat().st_mtime
        except FileNotFoundError:  # its writer renamed it into place (or removed it) since the glob
            continue
        if time.time() - written <= older_than_s:
            continue
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)


def umask() -> int:
    """The process's umask, read without changing it (os.umask would, for a moment, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def follow_umask(folder: Path) -> None:
    """Give FOLDER and everything in it the modes that the umask gives a new folder or file."""
    mask = umask()
    for path in (folder, *Path(folder).rglob("*")):
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)
