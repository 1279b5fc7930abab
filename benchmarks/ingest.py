"""Whole ingest (read, validate, load, pairs) vs a bare floor on the same file; prints JSON.

Floor: Polars reads the JSON Lines file, one DuckDB self-join makes the pairs. Both run on the
same generated file (K uniform 2-9, short texts) in one process, alternating, `--repeats` times.
Usage: python benchmarks/ingest.py [--annotations 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def generate(path: Path, n: int) -> None:
    """Short-text canonical annotations, K uniform in 2..9, distinct ranks (fast, no json.dumps)."""
    import random

    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n):
            k = rng.randint(2, 9)
            ranks = rng.sample(range(1, k + 1), k)
            responses = ",".join(f'{{"response_id":"{chr(97 + j)}","text":"answer {i} {j} w{rng.randint(0, 999)}",'
                                 f'"rank":{ranks[j]}}}' for j in range(k))
            f.write(f'{{"prompt_id":"p-{i}","prompt":"question {i}","annotator_id":"ann-{i % 13}",'
                    f'"responses":[{responses}]}}\n')


def run_prefpipe(path: str, work: str) -> dict:
    from prefpipe.ingest import ingest_file
    from prefpipe.settings import Settings
    from prefpipe.warehouse import Warehouse

    settings = Settings.from_env(home=Path(work) / "home", warehouse=Path(work) / "w.duckdb", data_docs=False)
    start = time.perf_counter()
    with Warehouse.open(settings) as wh:
        summary = ingest_file(wh, Path(path), settings)
    return {"seconds": time.perf_counter() - start, "annotations": summary.loaded, "pairs": summary.pairs}


def run_floor(path: str, work: str) -> dict:
    import duckdb
    import polars as pl

    start = time.perf_counter()
    frame = pl.read_ndjson(path)
    responses = frame.explode("responses").unnest("responses").to_arrow()  # noqa: F841 (read by DuckDB)
    con = duckdb.connect(str(Path(work) / "floor.duckdb"))
    con.execute("CREATE TABLE pairs AS SELECT a.prompt_id, a.response_id AS chosen, b.response_id AS rejected, "
                "b.rank - a.rank AS margin FROM responses a JOIN responses b "
                "ON a.prompt_id = b.prompt_id AND a.rank < b.rank")
    pairs = con.execute("SELECT count(*) FROM pairs").fetchone()[0]
    con.close()
    return {"seconds": time.perf_counter() - start, "annotations": frame.height, "pairs": pairs}


def child(which: str, path: str) -> dict:
    """Run one side in a fresh process, so peak memory is that side's alone."""
    with tempfile.TemporaryDirectory() as work:
        out = subprocess.run([sys.executable, __file__, "--child", which, path, work], capture_output=True,
                             text=True, check=True, env=os.environ | {"GX_ANALYTICS_ENABLED": "false"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        which, path, work = args.child
        result = (run_prefpipe if which == "prefpipe" else run_floor)(path, work)
        result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.jsonl"
        generate(path, args.annotations)
        runs = {"prefpipe": [], "floor": []}
        for _ in range(args.repeats):
            for which in runs:
                runs[which].append(child(which, str(path)))
        report = {"annotations": args.annotations, "file_mb": round(path.stat().st_size / 1e6),
                  "repeats": args.repeats}
        for which, results in runs.items():
            seconds = statistics.median(r["seconds"] for r in results)
            report[which] = {"median_s": round(seconds, 2), "annotations_per_s": round(args.annotations / seconds),
                             "pairs": results[0]["pairs"],
                             "peak_rss_gb": round(max(r["peak_rss_gb"] for r in results), 2),
                             "runs_s": [round(r["seconds"], 2) for r in results]}
        report["ratio_prefpipe_to_floor"] = round(report["prefpipe"]["median_s"] / report["floor"]["median_s"], 2)
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
