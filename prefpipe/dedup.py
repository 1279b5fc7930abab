"""Near-duplicate prompts: normalised forms, MinHash LSH, clusters, and the split of a cluster.

A prompt's normalised form is Unicode NFKC, case-folded, punctuation stripped, whitespace collapsed (a message
list: its user turns). Equal forms are one prompt (`prompt_key`, an md5 of the form). Forms are compared by
MinHash over word n-grams (rensa's RMinHash), banded for LSH (`bands` bands of `permutations / bands` rows, each
band's rows hashed to one bucket), and a pair of forms that share a bucket counts when its true Jaccard reaches
the threshold. Clusters are the connected components, named by their oldest prompt; a pair's split is the hash
of the prompt id first seen with that prompt (sql/ingest/00_macros.sql `split_of`), so a prompt without
near-copies keeps the split it had before clusters.

The buckets live in the warehouse (`prompt_bands`), written in the batch's transaction, so the index never
disagrees with the warehouse and its memory is DuckDB's, bounded and spilled to disk: rensa's own in-memory
RMinHashLSH holds about 2.3 GB per million prompts, more than an ingest may use beside DuckDB's buffers.

Clusters are stable: a new prompt joins its cluster's split, and existing pairs never move. A batch that joins
two clusters merges the younger into the older; its own pairs take the older one's split, and a merge of two
splits is recorded (`cluster_merges`, view `split_conflicts`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
import unicodedata
from dataclasses import astuple, dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import rensa

from prefpipe.errors import InputError
from prefpipe.sql import run_script, sql

CHUNK = 20_000  # prompts normalised and hashed at a time (memory stays flat)
SEED = 0
FNV_OFFSET, FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


@dataclass(frozen=True)
class Params:
    """How prompts are compared: word N-grams, MinHash permutations, LSH bands, the Jaccard threshold."""

    ngram: int = 5
    permutations: int = 128
    bands: int = 16  # of 8 rows: a pair at Jaccard 0.8 shares a bucket with probability 0.947, at 0.9 0.9999
    threshold: float = 0.8

    def check(self) -> None:
        if not 0 < self.threshold <= 1:
            raise InputError(f"must be in (0, 1], got {self.threshold}", field="dedup_threshold "
                             "(PREFPIPE_DEDUP_THRESHOLD)")
        if self.ngram < 1:
            raise InputError(f"must be at least 1, got {self.ngram}", field="dedup_ngram (PREFPIPE_DEDUP_NGRAM)")
        if self.permutations < 1:
            raise InputError(f"must be at least 1, got {self.permutations}",
                             field="dedup_permutations (PREFPIPE_DEDUP_PERMUTATIONS)")
        if self.bands < 1 or self.permutations % self.bands:
            raise InputError(f"must divide the permutations ({self.permutations}), got {self.bands}",
                             field="dedup_bands (PREFPIPE_DEDUP_BANDS)")


# -- normalised forms and their signatures ------------------------------------------------------------------

@cache
def _punctuation() -> dict[int, None]:
    return dict.fromkeys(i for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i)).startswith("P"))


# ASCII text, the common case, the same in a third of the time: NFKC leaves it be, casefold is lower, its
# punctuation (category P) is deleted by bytes.translate, and bytes.split misses only the separators \x1c-\x1f
# that str.split takes for whitespace, so they become spaces first.
_ASCII = bytes.maketrans(b"\x1c\x1d\x1e\x1f", b"    ")
_ASCII_PUNCTUATION = bytes(c for c in range(128) if unicodedata.category(chr(c)).startswith("P"))


def normalise_text(text: str) -> str:
    if text.isascii():
        return b" ".join(text.lower().encode().translate(_ASCII, _ASCII_PUNCTUATION).split()).decode()
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_punctuation()).split())


def normalise_prompt(prompt: str | list[dict]) -> str:
    """A prompt's normalised form; a list of messages by its user turns."""
    if isinstance(prompt, list):
        prompt = "\n".join(m.get("content", "") for m in prompt if m.get("role") == "user")
    return normalise_text(prompt)


def prompt_key(normalised: str) -> str:
    return hashlib.md5(normalised.encode()).hexdigest()[:16]


def shingles(normalised: str, n: int) -> list[str]:
    """Word N-grams of a normalised form; a form of at most N words is one shingle (itself)."""
    words = normalised.split()
    if len(words) <= n:
        return [" ".join(words)]
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def jaccard(a: str, b: str, n: int) -> float:
    """The true Jaccard similarity of two forms' N-gram sets."""
    x, y = set(shingles(a, n)), set(shingles(b, n))
    return len(x & y) / len(x | y)


def buckets(forms: list[str], params: Params) -> np.ndarray:
    """(forms, bands) LSH buckets: each band's rows of rensa's MinHash digest, hashed together (FNV-1a)."""
    if not forms:
        return np.zeros((0, params.bands), np.uint64)
    digests = rensa.RMinHash.digest_matrix_from_token_sets([shingles(f, params.ngram) for f in forms],
                                                           params.permutations, SEED).to_rows()
    values = np.fromiter(itertools.chain.from_iterable(digests), np.uint32, len(forms) * params.permutations)
    values = values.reshape(len(forms), params.bands, -1).astype(np.uint64)
    hashed = np.full((len(forms), params.bands), FNV_OFFSET, np.uint64)
    for row in range(values.shape[2]):
        hashed = (hashed ^ values[:, :, row]) * FNV_PRIME  # wraps modulo 2^64, as FNV does
    return hashed


def signatures(prompts: list[str], params: Params) -> tuple[list[str], list[str], np.ndarray]:
    """The key, normalised form and buckets of each prompt (JSON text)."""
    forms = [normalise_prompt(json.loads(p)) for p in prompts]
    return [prompt_key(f) for f in forms], forms, buckets(forms, params)


def stored_params(con) -> Params:
    """The parameters the warehouse's clusters were made with."""
    rows = con.execute("SELECT ngram, permutations, bands, threshold FROM cluster_settings").fetchall()
    return Params(*rows[0]) if rows else Params()


# -- clusters -----------------------------------------------------------------------------------------------

@dataclass
class Clustering:
    """What clustering a batch found (its rows are staged in temp tables for the load)."""

    new: int  # forms not seen before
    clusters: int  # the clusters of the batch's prompts


def cluster_prompts(con, source: str, params: Params) -> Clustering:
    """Cluster the distinct prompts that the query SOURCE gives (prompt: JSON text, prompt_id: its first, first:
    where it first appears) against the warehouse's forms (`prompt_clusters`, `prompt_bands`) and each other.

    Stages stage_prompt_keys (prompt, prompt_key, cluster_id, split_key: the cluster's), stage_new_prompts
    (prompt_clusters rows), stage_bands (prompt_bands rows) and stage_merges (cluster_id, split_key,
    merged_cluster_id, merged_split_key): sql/dedup/."""
    con.execute("CREATE OR REPLACE TEMP TABLE batch_prompts AS "
                f"SELECT row_number() OVER (ORDER BY first, prompt) AS ord, prompt, prompt_id FROM ({source})")
    con.execute("CREATE OR REPLACE TEMP TABLE batch_forms (ord BIGINT, prompt_key VARCHAR, normalised VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE batch_bands (ord BIGINT, band UTINYINT, bucket UBIGINT)")
    [(count,)] = con.execute("SELECT count(*) FROM batch_prompts").fetchall()
    for start, (keys, forms, hashed) in _hashed_chunks(con, count, params):
        ords = np.arange(start, start + len(keys), dtype=np.int64)
        _insert(con, "batch_forms", pa.table({"ord": ords, "prompt_key": keys, "normalised": forms}))
        _insert(con, "batch_bands", pa.table({"ord": np.repeat(ords, params.bands),
                                              "band": np.tile(np.arange(params.bands, dtype=np.uint8), len(keys)),
                                              "bucket": hashed.reshape(-1)}))
    con.execute("SET VARIABLE first_seq = (SELECT coalesce(max(prompt_seq), 0) + 1 FROM prompt_clusters)")
    run_script(con, "dedup/stage_forms.sql")
    edges = [(a, b) for x, y, a, b in con.execute(sql("dedup/candidates.sql")).fetchall()
             if jaccard(x, y, params.ngram) >= params.threshold]
    root = _components(edges)  # a stored cluster or new form -> the oldest cluster its component joins
    con.register("roots", pa.table({"seq": pa.array(list(root), pa.int64()),
                                    "root": pa.array(list(root.values()), pa.int64())}))
    run_script(con, "dedup/stage_clusters.sql")
    con.unregister("roots")
    [(new, clusters)] = con.execute("SELECT (SELECT count(*) FROM stage_new_prompts), "
                                    "(SELECT count(DISTINCT cluster_id) FROM stage_prompt_keys)").fetchall()
    return Clustering(new, clusters)


def _hashed_chunks(con, count: int, params: Params):
    """(first ord, signatures) of each chunk of batch_prompts, in order. In this process: a process pool would
    need `fork` (which deadlocks on DuckDB's threads, seen) or `spawn` (which runs the caller's script again)."""
    for start in range(1, count + 1, CHUNK):
        prompts = [p for (p,) in con.execute("SELECT prompt FROM batch_prompts WHERE ord >= ? AND ord < ? ORDER BY ord",
                                             [start, start + CHUNK]).fetchall()]
        yield start, signatures(prompts, params)


def _insert(con, table: str, rows: pa.Table) -> None:
    con.register("chunk_rows", rows)
    con.execute(f"INSERT INTO {table} SELECT * FROM chunk_rows")
    con.unregister("chunk_rows")


def _components(edges: list[tuple[int, int]]) -> dict[int, int]:
    """node -> the smallest (oldest) node of its connected component, for every node of EDGES."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent.setdefault(parent[x], parent[x])
            x = parent[x]
        return x

    for a, b in edges:
        a, b = find(a), find(b)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {node: find(node) for node in list(parent)}


# -- the ingest's step, and the one-time clustering of a warehouse --------------------------------------------

BATCH_PROMPTS = ("SELECT prompt::VARCHAR AS prompt, arg_min(prompt_id, entry) AS prompt_id, min(entry) AS first "
                 "FROM valid_annotations GROUP BY 1")


def cluster_batch(wh, params: Params) -> Clustering:
    """Cluster the validated batch's prompts (valid_annotations) of the warehouse WH (prefpipe.warehouse):
    set each annotation's prompt_key and split, and stage the new forms, buckets and merges for the load."""
    if message := ensure_clustered(wh, params):
        print(message)
    found = cluster_prompts(wh.con, BATCH_PROMPTS, params)
    wh.con.execute("UPDATE valid_annotations SET prompt_key = k.prompt_key, split = split_of(k.split_key) "
                   "FROM stage_prompt_keys k WHERE valid_annotations.prompt::VARCHAR = k.prompt")
    return found


def ensure_clustered(wh, params: Params) -> str | None:
    """Cluster a warehouse whose pairs were split by prompt (before prefpipe 0.4), or was clustered with other
    parameters: once, in one transaction, moving pairs to their cluster's split. Returns the message saying so,
    or None."""
    stored = wh.con.execute("SELECT ngram, permutations, bands, threshold FROM cluster_settings").fetchall()
    [(unclustered, annotations)] = wh.con.execute("SELECT count(*) FILTER (prompt_key IS NULL), count(*) "
                                                  "FROM annotations").fetchall()
    same = stored == [astuple(params)]
    if same and not unclustered:
        return None
    why = "parameters changed" if stored and not same else "pairs were split by prompt id"
    with wh.transaction() as con:
        con.execute("DELETE FROM cluster_settings")
        con.execute("INSERT INTO cluster_settings VALUES (?, ?, ?, ?)", list(astuple(params)))
        if not annotations:
            return None
        for table in ("prompt_clusters", "prompt_bands", "cluster_merges"):  # old merges mean nothing now
            con.execute(f"DELETE FROM {table}")
        found = cluster_prompts(con, "SELECT prompt::VARCHAR AS prompt, arg_min(prompt_id, annotation_seq) AS "
                                     "prompt_id, min(annotation_seq) AS first FROM annotations GROUP BY 1", params)
        run_script(con, "dedup/recluster.sql")
        [(moved, pairs)] = con.execute("SELECT moved, pairs FROM recluster_moves").fetchall()
    return (f"{wh.path}: clustered once by near-duplicate prompts ({why}; {params.ngram}-grams, "
            f"{params.permutations} permutations, Jaccard >= {params.threshold:g}): {found.new} prompts in "
            f"{found.clusters} clusters; {moved} of {pairs} pairs changed split (a pair's split is now its cluster's)")
