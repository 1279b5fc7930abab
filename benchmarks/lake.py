"""A lake in a bucket against a lake on this disk, in one run: the nightly's units (tiny models scored on small
sets and written), the leaderboard query over 30 nights of runs, and the morning report. The bucket is moto's
S3-compatible server on a loopback port (real HTTP, as in the tests). Prints JSON: seconds and ratios.

Usage: python benchmarks/lake.py [--models 20] [--sets 5] [--nights 30] [--examples 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "tests"))


def bucket_server() -> dict:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket="bench")
    return env


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--sets", type=int, default=5)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--examples", type=int, default=20)
    args = parser.parse_args()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    bucket_server()
    from helpers import LLMBAR, first_rows

    from prefpipe import store
    from prefpipe.analyst import analyst_connection
    from prefpipe.evaluation import evaluate_model
    from prefpipe.lake import new_run_id
    from prefpipe.report import write_report
    from prefpipe.settings import Settings
    from prefpipe.sql import sql
    from prefpipe.synth import synthetic_lake, tiny_reward_model

    tmp = Path(tempfile.mkdtemp(prefix="prefpipe-lake-bench-"))
    os.environ["PREFPIPE_CACHE"] = str(tmp / "cache")
    lakes = {"local": tmp / "lake", "bucket": store.Bucket("s3://bench/lake")}
    models = [tiny_reward_model(tmp / f"m{i}", seed=i, positions=2048) for i in range(args.models)]
    sets = [first_rows(LLMBAR, args.examples, tmp / f"set{i}.jsonl") for i in range(args.sets)]
    evaluate_model(models[0], "warm", sets[0], "warm", tmp / "warm", run_id="warm")  # imports, threads

    def night(root, day: date) -> None:  # the nightly's units, as its tasks run them (without Prefect)
        run_id = new_run_id(day)
        for i, model in enumerate(models):
            for j, evalset in enumerate(sets):
                evaluate_model(model, f"m{i}", evalset, f"set{j}", root / "results", run_id=run_id, run_date=day)

    figures: dict = {"models": args.models, "sets": args.sets, "nights": args.nights}
    nightly = {name: [] for name in lakes}
    for k in range(3):  # alternating, each night a new date
        for name, root in lakes.items():
            nightly[name].append(timed(lambda root=root, k=k: night(root, date(2026, 10, 1) + timedelta(k))))
    figures["nightly_s"] = {name: statistics.median(v) for name, v in nightly.items()}
    figures["nightly_overhead"] = figures["nightly_s"]["bucket"] / figures["nightly_s"]["local"] - 1

    days = [date(2026, 11, 1) + timedelta(n) for n in range(args.nights)]
    names = {f"m{i}": 0.5 + i / args.models for i in range(args.models)}
    sets_of = {f"set{j}": ("alpacaeval-easy", "llmbar-natural") for j in range(args.sets)}
    for name, root in lakes.items():
        figures[f"write_{args.nights}_nights_s_{name}"] = timed(lambda root=root: synthetic_lake(
            root / "results", names, days, examples=4, sets=sets_of))

    def leaderboard(root) -> int:
        con = analyst_connection(root / "results").con
        return len(con.sql(sql("queries/leaderboard.sql")).fetchall())

    runs = len(analyst_connection(lakes["local"] / "results").runs)
    figures["runs"] = runs
    figures["leaderboard_s"] = {"local": statistics.median(timed(lambda: leaderboard(lakes["local"]))
                                                           for _ in range(3)),
                                "bucket_first_read": timed(lambda: leaderboard(lakes["bucket"])),
                                "bucket": statistics.median(timed(lambda: leaderboard(lakes["bucket"]))
                                                            for _ in range(3))}
    reports = {}
    for name, root in lakes.items():
        settings = Settings.from_env(home=tmp / f"home-{name}", lake=root)
        reports[name] = statistics.median(timed(lambda s=settings: write_report(s, None, 0.02)) for _ in range(3))
    figures["report_s"] = reports
    figures["report_ratio"] = reports["bucket"] / reports["local"]
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
