"""The code version of a result: the package version and a hash of every prefpipe module that evaluation
imports, directly or not (found by reading their imports, so a new scoring module cannot be left out), and of
the RewardBench table. A change to any of them makes a new version, and the nightly scores again."""

from __future__ import annotations

import ast
import hashlib
import threading
from functools import cache
from importlib import metadata
from pathlib import Path

from prefpipe.rewardbench import TABLE

PACKAGE = Path(__file__).resolve().parent
ROOTS = ("evaluation",)  # the modules whose imports make a score
SOURCES_LOCK = threading.Lock()


def code_version() -> str:
    """The package version and a hash of what makes a score: a change to any of it is a new version."""
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in scoring_sources())).hexdigest()[:12]
    return f"{metadata.version('prefpipe')}+{digest}"


def scoring_sources() -> tuple[Path, ...]:
    """prefpipe.evaluation and every prefpipe module it imports, directly or not (also inside functions), and
    the RewardBench table. Found once per process, under a lock: the nightly's units ask from several threads at
    once, and CPython 3.11's ast.parse is not thread-safe."""
    with SOURCES_LOCK:
        return _scoring_sources()


@cache
def _scoring_sources() -> tuple[Path, ...]:
    found, todo = set(), list(ROOTS)
    while todo:
        name = todo.pop()
        if name in found or not (PACKAGE / f"{name}.py").is_file():
            continue
        found.add(name)
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "prefpipe":
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prefpipe."):
                todo.append(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                todo += [a.name.split(".")[1] for a in node.names if a.name.startswith("prefpipe.")]
    return (*sorted(PACKAGE / f"{name}.py" for name in found), TABLE)
