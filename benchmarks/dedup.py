"""Near-duplicate clustering and the contamination check at scale, beside the rest of the ingest; prints JSON.

A generated batch of --annotations canonical annotations (default 1,000,000; prompts of 8-40 words from a
5,000-word vocabulary, K uniform in 2-9 responses of 10-30 words), of which --planted (5%) are near-copies of an
earlier prompt (case, whitespace, punctuation, a word added at either end, or a word dropped at the end), is
ingested into a fresh warehouse that has a 3,000-example evaluation set registered (1,000 examples are edited
copies of warehouse prompts, 100 carry a warehouse response as their chosen answer); then a weekly batch of
--weekly (30,000) more, drawn the same way (its copies are of any earlier prompt). Reported, in one run:
- for each ingest (in a fresh process): seconds of the whole ingest and of its near-duplicate and contamination
  step (BatchSummary.dedup_seconds) and of the clustering alone, so the step's cost against the rest of the
  ingest of the same batch; peak memory of the process. The weekly batch (a step under a second, where a moment
  of this shared machine's noise moves the ratio by points) is ingested --weekly-repeats times (3), each into a
  fresh copy of the bulk warehouse: the run of the median ratio is reported, and every ratio;
- recall and precision of clustering against an exact all-pairs Jaccard (scipy sparse products) over a sample
  of --sample prompts of the bulk batch (the planted copies and their sources, up to half each, the rest
  random): a pair is truly near when its 5-gram Jaccard reaches the threshold, and found when both prompts share
  a cluster;
- contamination: the planted prompt and response matches found;
- the signatures alone, on the warehouse's forms: prefpipe's (prefpipe.minhash) beside rensa's RMinHash with the
  same banding (what prefpipe used before 0.10; `pip install rensa`), microseconds per prompt;
- the anchor: HuggingFace datatrove's MinHash deduplication (its signature, bucket and cluster stages; `pip
  install 'datatrove[processing]'`) on the same bulk prompts, with the same 5-grams, 16 bands of 8 and 64-bit
  hashes, a whitespace word tokenizer (its NLTK one would download data) and its number normalisation off (the
  generated words carry digits), 2 tasks on 2 workers: time, peak memory, and recall and precision on the same
  sample. datatrove keeps every pair that shares a bucket; prefpipe keeps those whose true Jaccard reaches 0.8.
Usage: python benchmarks/dedup.py [--annotations 1000000] [--weekly 30000] [--weekly-repeats 3] [--planted 0.05]
       [--sample 20000] [--no-datatrove]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import shutil
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


def write(files, halves, prompts, copies, answers, rng, n: int, weekly: int, planted: float) -> None:
    """The annotations of the bulk and weekly batches, and the bulk prompts as datatrove documents."""
    for i in range(n + weekly):
        if i > 100 and rng.random() < planted:
            source = rng.randrange(i // 2)  # an older prompt that is itself not a copy, most often
            prompt = edited(prompts[source], rng)
            copies[i] = source
        else:
            prompt = words(rng, 8, 40)
        prompts.append(prompt)
        k = rng.randint(2, 9)
        texts = [words(rng, 10, 30) for _ in range(k)]
        if i < n and i % 1000 == 7 and len(texts[0].split()) >= 13:  # a 13-gram to find
            answers[i] = texts[0]
        ranks = rng.sample(range(1, k + 1), k)
        files[i >= n].write(json.dumps({"prompt_id": f"p{i}", "prompt": prompt, "annotator_id": f"a{i % 13}",
                                        "responses": [{"response_id": f"r{j}", "text": t, "rank": r}
                                                      for j, (t, r) in enumerate(zip(texts, ranks, strict=True))]})
                            + "\n")
        if i < n:
            halves[i >= n // 2].write(json.dumps({"id": str(i), "text": prompt}) + "\n")


def generate(work: Path, n: int, weekly: int, planted: float) -> None:
    """In WORK: batch.jsonl (N annotations), weekly.jsonl (the next WEEKLY), prompts-0/1.jsonl (the bulk
    prompts as datatrove documents, in two halves), evalset.jsonl, and truth.json (which prompt ids are planted
    copies of which, for the sample)."""
    from prefpipe.dedup import jaccard, normalise_prompt

    rng = random.Random(0)
    prompts, copies, answers = [], {}, {}
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(work / f"{name}.jsonl", "w")) for name in ("batch", "weekly")]
        halves = [stack.enter_context(open(work / f"prompts-{h}.jsonl", "w")) for h in (0, 1)]
        write(files, halves, prompts, copies, answers, rng, n, weekly, planted)
    near = 0  # planted evaluation prompts that are truly near-duplicates (an edit can drop a short prompt below)
    with open(work / "evalset.jsonl", "w") as f:
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
    (work / "truth.json").write_text(json.dumps({"copies": copies, "answers": min(100, len(answers)), "near": near}))


def run_ingest(work: str, name: str) -> dict:
    """Ingest WORK/NAME.jsonl into WORK's warehouse (registering the evaluation set first, when new)."""
    import prefpipe.ingest
    from prefpipe.ingest import ingest_file
    from prefpipe.registry import register_evalset
    from prefpipe.settings import Settings
    from prefpipe.warehouse import Warehouse

    clustering = []  # seconds of dedup.cluster_batch, the near-duplicate part of the step
    cluster_batch = prefpipe.ingest.dedup.cluster_batch

    def timed(*args):
        started = time.perf_counter()
        try:
            return cluster_batch(*args)
        finally:
            clustering.append(time.perf_counter() - started)

    prefpipe.ingest.dedup.cluster_batch = timed
    work = Path(work)
    settings = Settings.from_env(home=work / "home", warehouse=work / "w.duckdb", data_docs=False)
    with Warehouse.open(settings) as wh:
        if not wh.con.execute("SELECT count(*) FROM evalsets").fetchall()[0][0]:
            register_evalset(wh, settings.home, work / "evalset.jsonl", "bench")
        started = time.perf_counter()
        summary = ingest_file(wh, work / f"{name}.jsonl", settings)
        seconds = time.perf_counter() - started
        [kinds] = wh.con.execute("""
            SELECT count(DISTINCT example_id) FILTER (kind <> 'ngram13'),
                   count(DISTINCT example_id) FILTER (kind <> 'ngram13' AND id < 1000),
                   count(DISTINCT example_id) FILTER (kind = 'ngram13'),
                   count(DISTINCT example_id) FILTER (kind = 'ngram13' AND id BETWEEN 1000 AND 1099)
            FROM (SELECT *, example_id[2:]::INTEGER AS id FROM contamination)""").fetchall()
        clusters = wh.con.execute("SELECT count(*), count(*) FILTER (prompts > 1) FROM clusters").fetchall()[0]
    step = summary.dedup_seconds
    return {"annotations": summary.loaded, "ingest_s": round(seconds, 2), "dedup_and_contamination_s": round(step, 2),
            "of_which_clustering_s": round(clustering[0], 2), "ingest_without_it_s": round(seconds - step, 2),
            "added_share": round(step / (seconds - step), 3), "clusters": clusters[0],
            "shared_clusters": clusters[1],
            "contaminated_examples": {"by_prompt": kinds[0], "by_prompt_planted": kinds[1], "by_response": kinds[2],
                                      "by_response_planted": kinds[3]},
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}


def signatures(work: str) -> dict:
    """Microseconds per prompt of the LSH buckets of the warehouse's forms, 20,000 forms at a time: prefpipe's
    signature (prefpipe.minhash) and rensa's RMinHash (shingle strings, digests as lists), same banding."""
    import duckdb
    import numpy as np

    from prefpipe import dedup
    from prefpipe.settings import Settings

    params = Settings().dedup
    con = duckdb.connect(str(Path(work) / "w.duckdb"), read_only=True)
    forms = [f for (f,) in con.execute("SELECT normalised FROM prompt_clusters ORDER BY prompt_seq").fetchall()]
    chunks = [forms[i:i + dedup.CHUNK] for i in range(0, len(forms), dedup.CHUNK)]

    def rensa_buckets(chunk: list[str]) -> np.ndarray:
        import rensa

        digests = rensa.RMinHash.digest_matrix_from_token_sets([dedup.shingles(f, params.ngram) for f in chunk],
                                                               params.permutations, dedup.SEED).to_rows()
        return dedup.banded(np.array(digests, np.uint64), params)

    out = {"forms": len(forms)}
    for name, buckets in (("prefpipe_us_per_prompt", lambda c: dedup.buckets(c, params)),
                          ("rensa_us_per_prompt", rensa_buckets)):
        try:
            buckets(chunks[0][:100])  # imports, tables built once
            started = time.perf_counter()
            for chunk in chunks:
                buckets(chunk)
            out[name] = round((time.perf_counter() - started) / len(forms) * 1e6, 2)
        except ImportError:
            out[name] = None
    return out


def run_datatrove(work: str) -> dict:
    """datatrove's signature, bucket and cluster stages on WORK/prompts-*.jsonl; cluster labels to WORK."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.text import TextNormConfig
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    work = Path(work)
    config = MinhashConfig(n_grams=5, num_buckets=16, hashes_per_bucket=8, hash_config=HashConfig(precision=64),
                           norm_config=TextNormConfig(norm_numbers=False))
    out, seconds = work / "datatrove", {}
    stages = [
        ("signature", [JsonlReader(str(work), glob_pattern="prompts-*.jsonl"),
                       MinhashDedupSignature(str(out / "signatures"), config=config, language=Whitespace())], 2),
        ("buckets", [MinhashDedupBuckets(str(out / "signatures"), str(out / "buckets"), config=config)], 16),
        ("cluster", [MinhashDedupCluster(str(out / "buckets"), str(out / "clusters"), config=config,
                                         save_cluster_id=True)], 1)]
    for name, pipeline, tasks in stages:
        started = time.perf_counter()
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(tasks, 2), logging_dir=str(out / f"logs-{name}"),
                              start_method="fork").run()
        seconds[name] = round(time.perf_counter() - started, 1)
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"seconds": round(sum(seconds.values()), 1), "stages_s": seconds, "peak_rss_gb": round(peak / 1e6, 2)}


def datatrove_clusters(work: Path, n: int) -> dict[int, int]:
    """Bulk prompt index -> datatrove's cluster id, for the prompts in a cluster."""
    import numpy as np

    labels = {}
    for half, first in ((0, 0), (1, n // 2)):
        path = work / "datatrove" / "clusters" / f"{half:06d}.clusters"
        if path.exists():
            pairs = np.fromfile(path, np.uint32).reshape(-1, 2)
            labels |= {first + int(doc): int(cluster) for doc, cluster in pairs}
    return labels


def quality(warehouse: Path, truth: dict, n: int, size: int, threshold: float, ngram: int,
            others: dict[str, dict[int, int]]) -> dict:
    """Recall and precision of same-cluster pairs against exact all-pairs Jaccard over a sample of the first N
    prompts: prefpipe's clusters, and each of OTHERS (prompt index -> cluster; absent: alone)."""
    import duckdb
    import numpy as np
    from scipy import sparse

    from prefpipe.dedup import shingles

    rng = random.Random(1)
    copies = {int(k): v for k, v in truth["copies"].items() if int(k) < n}
    chosen = rng.sample(sorted(copies), min(size // 2, len(copies)))
    ids = list(dict.fromkeys([i for c in chosen for i in (c, copies[c])]))
    while len(ids) < size:
        ids = list(dict.fromkeys(ids + rng.sample(range(n), size - len(ids))))
    con = duckdb.connect(str(warehouse), read_only=True)
    rows = dict(con.execute("SELECT a.prompt_id, struct_pack(c.normalised, c.cluster_id) FROM annotations a "
                            "JOIN prompt_clusters c USING (prompt_key) WHERE list_contains(?, a.prompt_id)",
                            [[f"p{i}" for i in ids]]).fetchall())
    ids = [i for i in ids if f"p{i}" in rows]
    docs = [rows[f"p{i}"] for i in ids]
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

    def scored(cluster: list) -> dict:
        by_cluster: dict[object, list[int]] = {}
        for i, c in enumerate(cluster):
            by_cluster.setdefault(c, []).append(i)
        together = {(a, b) for members in by_cluster.values() for x, a in enumerate(members)
                    for b in members[x + 1:]}
        return {"found_pairs": len(together), "recall": round(len(near & together) / max(1, len(near)), 4),
                "precision": round(len(near & together) / max(1, len(together)), 4)}

    out = {"sample_prompts": len(docs), "true_pairs": len(near), "prefpipe": scored([d["cluster_id"] for d in docs])}
    for name, labels in others.items():
        out[name] = scored([labels.get(i, ("alone", i)) for i in ids])
    return out


def weekly_runs(ingest, warehouse: Path, repeats: int) -> tuple[dict, list[float]]:
    """INGEST the weekly batch REPEATS times, each into the bulk WAREHOUSE as it was (the last run's is kept): the
    run of the median added share, and every share in the order run."""
    bulk = warehouse.with_name("bulk.duckdb")
    shutil.copyfile(warehouse, bulk)
    runs = []
    for repeat in range(max(1, repeats)):
        if repeat:
            shutil.copyfile(bulk, warehouse)
        runs.append(ingest())
    bulk.unlink()
    return sorted(runs, key=lambda r: r["added_share"])[(len(runs) - 1) // 2], [r["added_share"] for r in runs]


def child(mode: str, work: str) -> None:
    if mode == "datatrove":
        try:
            print(json.dumps(run_datatrove(work)))
        except ImportError as missing:
            print(json.dumps({"skipped": f"{missing.name.split('.')[0]} is not installed: pip install -e '.[bench]'"}))
    elif mode == "signatures":
        print(json.dumps(signatures(work)))
    else:
        print(json.dumps(run_ingest(work, mode)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--weekly", type=int, default=30_000)
    parser.add_argument("--weekly-repeats", type=int, default=3)
    parser.add_argument("--planted", type=float, default=0.05)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--no-datatrove", action="store_true")
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from prefpipe.settings import Settings

    defaults = Settings()

    def run(mode: str, work: Path) -> dict:  # each part in a fresh process: its own peak memory
        out = subprocess.run([sys.executable, __file__, "--child", mode, str(work)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"benchmarks/dedup.py: the {mode} part failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        generate(work, args.annotations, args.weekly, args.planted)
        generated = time.perf_counter() - started
        bulk = run("batch", work)
        weekly = (weekly_runs(lambda: run("weekly", work), work / "w.duckdb", args.weekly_repeats) if args.weekly
                  else None)
        planted = json.loads((work / "truth.json").read_text())
        anchor = None if args.no_datatrove else run("datatrove", work)
        others = {"datatrove": datatrove_clusters(work, args.annotations)} if anchor and "seconds" in anchor else {}
        report = {
            "annotations": args.annotations, "weekly_annotations": args.weekly,
            "planted_near_copies": len(planted["copies"]),
            "file_mb": round((work / "batch.jsonl").stat().st_size / 1e6), "generate_s": round(generated, 1),
            "bulk": bulk, "weekly_into_bulk": weekly and weekly[0], "weekly_added_shares": weekly and weekly[1],
            "planted_contamination": {"prompts": 1000, "prompts_at_jaccard_0.8_or_more": planted["near"],
                                      "responses_of_13_words_or_more": planted["answers"]},
            "quality": quality(work / "w.duckdb", planted, args.annotations, args.sample, defaults.dedup_threshold,
                               defaults.dedup_ngram, others),
            "signatures": run("signatures", work),
            "datatrove": anchor,
            "params": {"ngram": defaults.dedup_ngram, "permutations": defaults.dedup_permutations,
                       "bands": defaults.dedup_bands, "threshold": defaults.dedup_threshold,
                       "signature": defaults.dedup.signature},
        }
        if others:
            report["prefpipe_clustering_vs_datatrove"] = round(bulk["of_which_clustering_s"] / anchor["seconds"], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
