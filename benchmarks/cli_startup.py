"""How long `prefpipe --help` takes (the command line's start-up: every command pays it), this tree beside a
baseline checkout, alternating runs in one go; prints JSON with the medians and their ratio.

The baseline is any checkout of prefpipe (e.g. `git worktree add /tmp/base v0.6.0`); both run with this
interpreter, each with its own tree first on the path.
Usage: python benchmarks/cli_startup.py [--baseline PATH] [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-c", "import sys; from prefpipe.cli import main; sys.argv = ['prefpipe', '--help']; main()"]


def once(tree: Path) -> float:
    started = time.perf_counter()
    subprocess.run(COMMAND, cwd=tree, env=os.environ | {"PYTHONPATH": str(tree)}, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    trees = {"this": HERE} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    for tree in trees.values():
        once(tree)  # warm the file cache
    seconds = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, tree in trees.items():
            seconds[name].append(once(tree))
    result = {name: {"median_s": round(statistics.median(v), 3), "min_s": round(min(v), 3),
                     "max_s": round(max(v), 3)} for name, v in seconds.items()}
    if args.baseline:
        result["ratio_this_to_baseline"] = round(result["this"]["median_s"] / result["baseline"]["median_s"], 3)
    print(json.dumps(result | {"repeats": args.repeats, "command": "prefpipe --help"}, indent=1))


if __name__ == "__main__":
    main()
