"""The morning report at the size the issue names: its bytes and the time to write it; prints JSON.

A synthetic lake (prefpipe.synth.synthetic_lake) of --models models x --sets evaluation sets (RewardBench-style,
a subset per section, --examples examples each) x --nights nightly runs, with a planted regression, and a
warehouse-table copy with each model's provenance. The report is written --repeats times; reported: the median
seconds, and the report's bytes in all, per kind of file, and per model page with its figures.
Usage: python benchmarks/report.py [--models 20] [--sets 5] [--nights 30] [--examples 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefpipe.report import write_report
from prefpipe.settings import Settings
from prefpipe.synth import LAKE_SETS, synthetic_lake, synthetic_registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--sets", type=int, default=5)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--examples", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(home=Path(tmp), warehouse=Path(tmp) / "warehouse.duckdb", data_docs=False)
        models = {f"rm-{i:02d}": 0.5 + i / args.models for i in range(args.models)}
        sets = {f"set-{j}": LAKE_SETS["bench"] for j in range(args.sets)}
        nights = [date(2026, 11, 1) + timedelta(days=d) for d in range(args.nights)]
        started = time.perf_counter()
        synthetic_lake(settings.results, models, nights, examples=args.examples, sets=sets,
                       drops={("rm-03", "set-0"): 1.0})
        synthetic_registry(settings, list(models))
        made = time.perf_counter() - started
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            index = write_report(settings)
            seconds.append(time.perf_counter() - started)
        files = [p for p in index.parent.rglob("*") if p.is_file()]
        kinds = Counter()
        for p in files:
            kinds[p.suffix or p.name] += p.stat().st_size
        one = [p for p in files if p.name.startswith("rm-00")]
        print(json.dumps({"models": args.models, "sets": args.sets, "nights": args.nights,
                          "examples_per_set": args.examples * len(LAKE_SETS["bench"]), "lake_seconds": round(made, 1),
                          "report_seconds_median": round(statistics.median(seconds), 2),
                          "report_seconds": [round(s, 2) for s in seconds], "files": len(files),
                          "report_kb": round(sum(p.stat().st_size for p in files) / 1024, 1),
                          "kb_by_kind": {k: round(v / 1024, 1) for k, v in kinds.most_common()},
                          "kb_per_model": round(sum(p.stat().st_size for p in one) / 1024, 1)}, indent=1))


if __name__ == "__main__":
    main()
