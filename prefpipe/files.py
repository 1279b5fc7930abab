"""Files that others read: folders and files follow the user's umask, as a shell's would, so analysts and
Dask workers under another account can read what prefpipe writes (transformers writes model weights
through private temporary files, mode 0600)."""

from __future__ import annotations

import os
from pathlib import Path


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
