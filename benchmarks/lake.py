"""A lake in a bucket against a lake on this disk, in one run: the nightly's units (tiny models scored on small
sets and written), the leaderboard query over 30 nights of runs, and the morning report. The bucket is moto's
S3-compatible server on a loopback port (real HTTP, as in the tests). Prints JSON: seconds and ratios.

Usage: python benchmarks/lake.py [--models 20] [--sets 5] [--nights 30] [--examples 0 (all 419)] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "tests"))


def bucket_server() -> subprocess.Popen:
    """moto's server in a process of its own (as a store runs apart from its clients), on a free loopback port."""
    import boto3

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    for _ in range(100):
        try:
            boto3.client("s3").create_bucket(Bucket="bench")
            return server
        except Exception:  # not listening yet
            time.sleep(0.2)
    raise SystemExit("moto's server did not start")


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used so far (Linux), to tell the store's share of a night from the client's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--sets", type=int, default=5)
    parser.add_argument("--nights", type=int, default=30, help="of history for the leaderboard; 0: none")
    parser.add_argument("--examples", type=int, default=0, help="of LLMBar per set; 0: the whole sample (419)")
    parser.add_argument("--repeats", type=int, default=3, help="nights of the nightly per lake, alternating")
    args = parser.parse_args()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = bucket_server()
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
    models = [[tiny_reward_model(tmp / f"m{i}-{k}", seed=1000 * k + i, positions=2048) for i in range(args.models)]
              for k in range(args.repeats)]  # a night of new model states: every unit is new, none forced
    sets = [first_rows(LLMBAR, args.examples or None, tmp / f"set{i}.jsonl") for i in range(args.sets)]
    evaluate_model(models[0][0], "warm", sets[0], "warm", tmp / "warm", run_id="warm")  # imports, threads
    store.check_bucket(lakes["bucket"], write=True)  # as `prefpipe nightly` does before its flow starts

    def night(root, k: int) -> None:  # the nightly's units, on threads as its task runner runs them
        day = date(2026, 10, 1) + timedelta(k)
        run_id = new_run_id(day)
        with ThreadPoolExecutor(min(32, (os.cpu_count() or 1) + 4)) as pool:  # Python's default, as Prefect's
            written = list(pool.map(lambda unit: evaluate_model(
                models[k][unit[0]], f"m{unit[0]}", sets[unit[1]], f"set{unit[1]}", root / "results", run_id=run_id,
                run_date=day), [(i, j) for i in range(args.models) for j in range(args.sets)]))
        assert None not in written, "a unit was skipped: the night must write every unit"

    figures: dict = {"models": args.models, "sets": args.sets, "nights": args.nights,
                     "examples": len(sets[0].read_text().splitlines())}
    nightly, client_cpu, store_cpu = ({name: [] for name in lakes} for _ in range(3))
    for k in range(args.repeats):  # alternating, each night a new date and new model states
        for name, root in lakes.items():
            client, store_before = time.process_time(), cpu_seconds(server.pid)
            nightly[name].append(timed(lambda root=root, k=k: night(root, k)))
            client_cpu[name].append(time.process_time() - client)
            store_cpu[name].append(cpu_seconds(server.pid) - store_before)
    figures["nightly_s"] = {name: statistics.median(v) for name, v in nightly.items()}
    figures["nightly_overhead"] = figures["nightly_s"]["bucket"] / figures["nightly_s"]["local"] - 1
    # where the overhead goes: this process's CPU (scoring, and the client's requests), and the store's (moto's,
    # which shares this machine's cores here; a real store's does not)
    figures["client_cpu_s"] = {name: statistics.median(v) for name, v in client_cpu.items()}
    figures["store_cpu_s"] = statistics.median(store_cpu["bucket"])

    if not args.nights:  # the nightly alone
        print(json.dumps(figures, indent=1))
        server.terminate()
        return
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
    server.terminate()


if __name__ == "__main__":
    main()
