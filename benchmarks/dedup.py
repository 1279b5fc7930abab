"""Near-duplicate clustering and the contamination check at scale, beside the rest of the ingest; prints JSON.

A generated batch of --annotations canonical annotations (default 1,000,000; prompts of 8-40 words from a
5,000-word vocabulary, K uniform in 2-9 responses of 10-30 words), of which --planted (5%) are near-copies of an
earlier prompt (case, whitespace, punctuation, a word added at either end, or a word dropped at the end), is
ingested into a fresh warehouse that has a 3,000-example evaluation set registered (1,000 examples are edited
copies of warehouse prompts, 100 carry a warehouse response as their chosen answer). Reported, from the one
ingest in a fresh process:
- seconds of the whole ingest and of its near-duplicate and contamination step (BatchSummary.dedup_seconds),
  so the step's cost against the rest of the ingest of the same batch; peak memory of the process;
- recall and precision of clustering against an exact all-pairs Jaccard (scipy sparse products) over a sample
  of --sample prompts (the planted copies and their sources, up to half each, the rest random): a pair is
  truly near when its 5-gram Jaccard reaches the threshold, and found when both prompts share a cluster;
- contamination: the planted prompt and response matches found.
Usage: python benchmarks/dedup.py [--annotations 1000000] [--planted 0.05] [--sample 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VOCABULARY = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "su", "ta", "ri", "vo", "be", "di") for b in range(500)]
EDITS = ("case", "space", "punct", "lead", "trail", "drop")


def edited(prompt: str, rng: random.Random) -> str:
    edit = rng.choice(EDITS)
    words = prompt.split()
    return {"case": prompt.upper(), "space": "  ".join(words) + " \n", "punct": ", ".join(words) + "?",
            "lead": "please " + prompt, "trail": prompt + " please", "drop": " ".join(words[:-1])}[edit]


def words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(VOCABULARY, k=rng.randint(low, high)))


def generate(batch: Path, evalset: Path, truth: Path, n: int, planted: float) -> None:
    """The batch, the evaluation set, and which prompt ids are planted copies of which (for the sample)."""
    from prefpipe.dedup import jaccard, normalise_prompt

    rng = random.Random(0)
    prompts, copies, answers = [], {}, {}
    with open(batch, "w") as f:
        for i in range(n):
            if i > 100 and rng.random() < planted:
                source = rng.randrange(i // 2)  # an older prompt that is itself not a copy, most often
                prompt = edited(prompts[source], rng)
                copies[i] = source
            else:
                prompt = words(rng, 8, 40)
            prompts.append(prompt)
            k = rng.randint(2, 9)
            texts = [words(rng, 10, 30) for _ in range(k)]
            if i % 1000 == 7 and len(texts[0].split()) >= 13:  # a 13-gram to find
                answers[i] = texts[0]
            ranks = rng.sample(range(1, k + 1), k)
            f.write(json.dumps({"prompt_id": f"p{i}", "prompt": prompt, "annotator_id": f"a{i % 13}",
                                "responses": [{"response_id": f"r{j}", "text": t, "rank": r}
                                              for j, (t, r) in enumerate(zip(texts, ranks, strict=True))]}) + "\n")
    near = 0  # planted evaluation prompts that are truly near-duplicates (an edit can drop a short prompt below)
    with open(evalset, "w") as f:
        for e in range(3000):
            row = {"id": f"e{e}", "subset": "bench", "prompt": words(rng, 8, 40), "chosen": words(rng, 10, 30),
                   "rejected": words(rng, 10, 30)}
            if e < 1000:
                source = prompts[rng.randrange(n)]
                row["prompt"] = edited(source, rng)
                near += jaccard(normalise_prompt(row["prompt"]), normalise_prompt(source), 5) >= 0.8
            elif e < 1000 + len(answers) and e < 1100:
                row["chosen"] = list(answers.values())[e - 1000]
            f.write(json.dumps(row) + "\n")
    truth.write_text(json.dumps({"copies": copies, "answers": min(100, len(answers)), "near": near}))


def run_ingest(batch: str, evalset: str, work: str) -> dict:
    from prefpipe.ingest import ingest_file
    from prefpipe.registry import register_evalset
    from prefpipe.settings import Settings
    from prefpipe.warehouse import Warehouse

    settings = Settings.from_env(home=Path(work) / "home", warehouse=Path(work) / "w.duckdb", data_docs=False)
    with Warehouse.open(settings) as wh:
        register_evalset(wh, settings.home, Path(evalset), "bench")
        started = time.perf_counter()
        summary = ingest_file(wh, Path(batch), settings)
        seconds = time.perf_counter() - started
        [kinds] = wh.con.execute("""
            SELECT count(DISTINCT example_id) FILTER (kind <> 'ngram13'),
                   count(DISTINCT example_id) FILTER (kind <> 'ngram13' AND id < 1000),
                   count(DISTINCT example_id) FILTER (kind = 'ngram13'),
                   count(DISTINCT example_id) FILTER (kind = 'ngram13' AND id BETWEEN 1000 AND 1099)
            FROM (SELECT *, example_id[2:]::INTEGER AS id FROM contamination)""").fetchall()
        clusters = wh.con.execute("SELECT count(*), count(*) FILTER (prompts > 1) FROM clusters").fetchall()[0]
    return {"seconds": seconds, "dedup_seconds": summary.dedup_seconds, "annotations": summary.loaded,
            "clusters": clusters[0], "shared_clusters": clusters[1],
            "contaminated_examples": {"by_prompt": kinds[0], "by_prompt_planted": kinds[1], "by_response": kinds[2],
                                      "by_response_planted": kinds[3]},
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def quality(warehouse: Path, truth: dict, size: int, threshold: float, ngram: int) -> dict:
    """Recall and precision of same-cluster pairs against exact all-pairs Jaccard over a sample."""
    import duckdb
    import numpy as np
    from scipy import sparse

    from prefpipe.dedup import shingles

    rng = random.Random(1)
    copies = {int(k): v for k, v in truth["copies"].items()}
    chosen = rng.sample(sorted(copies), min(size // 2, len(copies)))
    ids = list(dict.fromkeys([i for c in chosen for i in (c, copies[c])]))
    n = int(max(copies)) + 1
    while len(ids) < size:
        ids = list(dict.fromkeys(ids + rng.sample(range(n), size - len(ids))))
    con = duckdb.connect(str(warehouse), read_only=True)
    rows = dict(con.execute("SELECT a.prompt_id, struct_pack(c.normalised, c.cluster_id) FROM annotations a "
                            "JOIN prompt_clusters c USING (prompt_key) WHERE list_contains(?, a.prompt_id)",
                            [[f"p{i}" for i in ids]]).fetchall())
    docs = [rows[f"p{i}"] for i in ids if f"p{i}" in rows]
    vocabulary: dict[str, int] = {}
    columns, offsets = [], [0]
    for d in docs:
        grams = {vocabulary.setdefault(g, len(vocabulary)) for g in shingles(d["normalised"], ngram)}
        columns += sorted(grams)
        offsets.append(len(columns))
    matrix = sparse.csr_matrix((np.ones(len(columns), np.float32), columns, offsets),
                               shape=(len(docs), len(vocabulary)))
    sizes = np.diff(offsets)
    shared = sparse.triu(matrix @ matrix.T, k=1).tocoo()
    jaccard = shared.data / (sizes[shared.row] + sizes[shared.col] - shared.data)
    near = {(a, b) for a, b, j in zip(shared.row, shared.col, jaccard, strict=True) if j >= threshold}
    cluster = [d["cluster_id"] for d in docs]
    by_cluster: dict[str, list[int]] = {}
    for i, c in enumerate(cluster):
        by_cluster.setdefault(c, []).append(i)
    together = {(a, b) for members in by_cluster.values() for x, a in enumerate(members) for b in members[x + 1:]}
    return {"sample_prompts": len(docs), "true_pairs": len(near), "found_pairs": len(together),
            "recall": round(len(near & together) / max(1, len(near)), 4),
            "precision": round(len(near & together) / max(1, len(together)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--planted", type=float, default=0.05)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_ingest(*args.child)))
        return
    from prefpipe.settings import Settings

    defaults = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        batch, evalset, truth = Path(tmp) / "batch.jsonl", Path(tmp) / "evalset.jsonl", Path(tmp) / "truth.json"
        started = time.perf_counter()
        generate(batch, evalset, truth, args.annotations, args.planted)
        generated = time.perf_counter() - started
        out = subprocess.run([sys.executable, __file__, "--child", str(batch), str(evalset), tmp],
                             capture_output=True, text=True, check=True)
        ingest = json.loads(out.stdout.strip().splitlines()[-1])
        planted = json.loads(truth.read_text())
        report = {
            "annotations": args.annotations, "planted_near_copies": len(planted["copies"]),
            "file_mb": round(batch.stat().st_size / 1e6), "generate_s": round(generated, 1),
            "ingest_s": round(ingest["seconds"], 1), "dedup_and_contamination_s": round(ingest["dedup_seconds"], 1),
            "ingest_without_it_s": round(ingest["seconds"] - ingest["dedup_seconds"], 1),
            "added_share": round(ingest["dedup_seconds"] / (ingest["seconds"] - ingest["dedup_seconds"]), 3),
            "peak_rss_gb": round(ingest["peak_rss_gb"], 2),
            "clusters": ingest["clusters"], "shared_clusters": ingest["shared_clusters"],
            "contaminated_examples": ingest["contaminated_examples"],
            "planted_contamination": {"prompts": 1000, "prompts_at_jaccard_0.8_or_more": planted["near"],
                                      "responses_of_13_words_or_more": planted["answers"]},
            "quality": quality(Path(tmp) / "w.duckdb", planted, args.sample, defaults.dedup_threshold,
                               defaults.dedup_ngram),
            "params": {"ngram": defaults.dedup_ngram, "permutations": defaults.dedup_permutations,
                       "bands": defaults.dedup_bands, "threshold": defaults.dedup_threshold},
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
