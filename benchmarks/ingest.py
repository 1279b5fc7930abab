"""Whole ingest (read, validate, load, pairs) vs a bare floor on the same file; prints JSON.

Floor: Polars reads the JSON Lines file, one DuckDB self-join makes the pairs. Both run on the
same generated file (K uniform 2-9, short texts), each in a fresh process, alternating, `--repeats` times.
`--formats` instead times the public-format adapters (hh-rlhf, oasst) against the canonical format on
the same number of annotations (default 200,000), synthesised in those layouts.
Usage: python benchmarks/ingest.py [--annotations 1000000] [--repeats 3] [--formats]
"""

from __future__ import annotations

import argparse
import json
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


def generate_hh(path: Path, n: int) -> None:
    """HH-RLHF rows: a 1-3 turn dialogue, then two different last Assistant turns."""
    import random

    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n):
            history = "".join(f"\n\nHuman: question {i} turn {t} w{rng.randint(0, 999)}\n\nAssistant: reply {t}"
                              for t in range(rng.randint(0, 2)))
            prompt = f"{history}\n\nHuman: question {i} last"
            f.write(json.dumps({"chosen": f"{prompt}\n\nAssistant: good answer {i}",
                                "rejected": f"{prompt}\n\nAssistant: bad answer {i} w{rng.randint(0, 999)}"}) + "\n")


def generate_oasst(path: Path, n: int) -> None:
    """OASST trees with two ranked levels: a prompt with K replies, the best reply followed up by a
    prompter message with K replies; so two annotations per tree (K uniform 2-5)."""
    import random

    rng = random.Random(0)

    def replies(tree: int, level: int, follow_up: dict | None) -> list[dict]:
        k = rng.randint(2, 5)
        return [{"message_id": f"m{tree}-{level}-{j}", "role": "assistant", "text": f"answer {tree} {level} {j}",
                 "rank": j, "deleted": False, "review_result": True,
                 "replies": [follow_up] if (follow_up and j == 0) else []} for j in range(k)]

    with open(path, "w") as f:
        for tree in range(n // 2):
            follow = {"message_id": f"m{tree}-f", "role": "prompter", "text": f"follow-up {tree}", "deleted": False,
                      "review_result": True, "replies": replies(tree, 2, None)}
            root = {"message_id": f"m{tree}", "role": "prompter", "text": f"question {tree}", "deleted": False,
                    "review_result": True, "replies": replies(tree, 1, follow)}
            tree_line = {"message_tree_id": f"t{tree}", "tree_state": "ready_for_export", "prompt": root}
            f.write(json.dumps(tree_line) + "\n")


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
                             text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--formats", action="store_true", help="time hh-rlhf and oasst against canonical")
    args = parser.parse_args()
    if args.child:
        which, path, work = args.child
        result = (run_prefpipe if which == "prefpipe" else run_floor)(path, work)
        result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(json.dumps(result))
        return
    if args.formats:
        compare_formats(200_000 if args.annotations == 1_000_000 else args.annotations, args.repeats)
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


def compare_formats(n: int, repeats: int) -> None:
    """annotations/s of each adapter, side by side with the canonical format, same annotation count."""
    with tempfile.TemporaryDirectory() as tmp:
        files = {"canonical": Path(tmp) / "c.jsonl", "hh-rlhf": Path(tmp) / "hh.jsonl", "oasst": Path(tmp) / "o.jsonl"}
        generate(files["canonical"], n)
        generate_hh(files["hh-rlhf"], n)
        generate_oasst(files["oasst"], n)
        runs = {name: [] for name in files}
        for _ in range(repeats):
            for name, path in files.items():
                runs[name].append(child("prefpipe", str(path)))
        report = {"annotations": n, "repeats": repeats}
        for name, results in runs.items():
            seconds = statistics.median(r["seconds"] for r in results)
            report[name] = {"median_s": round(seconds, 2), "annotations": results[0]["annotations"],
                            "annotations_per_s": round(results[0]["annotations"] / seconds),
                            "file_mb": round(files[name].stat().st_size / 1e6), "pairs": results[0]["pairs"],
                            "peak_rss_gb": round(max(r["peak_rss_gb"] for r in results), 2),
                            "runs_s": [round(r["seconds"], 2) for r in results]}
        canonical = report["canonical"]["annotations_per_s"]
        report["rate_vs_canonical"] = {name: round(report[name]["annotations_per_s"] / canonical, 2)
                                       for name in ("hh-rlhf", "oasst")}
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
