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
        if self.permutations < 1 or self.bands < 1 or self.permutations % self.bands:
            raise InputError(f"must divide the permutations ({self.permutations}), got {self.bands}",
                             field="dedup_bands (PREFPIPE_DEDUP_BANDS)")


# -- normalised forms and their signatures ------------------------------------------------------------------

@cache
def _punctuation() -> dict[int, None]:
    return dict.fromkeys(i for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i)).startswith("P"))


def normalise_text(text: str) -> str:
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

    first_seq: int  # the first prompt_seq of the batch's new forms
    new: int  # forms not seen before
    clusters: int  # the clusters of the batch's prompts
    merges: int


def cluster_prompts(con, source: str, params: Params) -> Clustering:
    """Cluster the distinct prompts that the query SOURCE gives (prompt: JSON text, prompt_id: its first, first:
    where it first appears) against the warehouse's forms (`prompt_clusters`, `prompt_bands`) and each other.

    Stages stage_prompt_keys (prompt, prompt_key, cluster_id, split_key: the cluster's), stage_new_prompts
    (prompt_clusters rows), stage_bands (prompt_bands rows) and stage_merges (cluster_id, split_key,
    merged_cluster_id, merged_split_key)."""
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
    [(first_seq,)] = con.execute("SELECT coalesce(max(prompt_seq), 0) + 1 FROM prompt_clusters").fetchall()
    con.execute("""
        CREATE OR REPLACE TEMP TABLE stage_new_prompts AS
        SELECT prompt_key, ? + row_number() OVER (ORDER BY ord) - 1 AS prompt_seq, normalised,
               prompt_key AS cluster_id, split_key, ord
        FROM (SELECT f.prompt_key, arg_min(f.normalised, f.ord) AS normalised, min(f.ord) AS ord,
                     arg_min(p.prompt_id, f.ord) AS split_key
              FROM batch_forms f JOIN batch_prompts p USING (ord)
              WHERE f.prompt_key NOT IN (SELECT prompt_key FROM prompt_clusters) GROUP BY f.prompt_key)""",
                [first_seq])
    con.execute("CREATE OR REPLACE TEMP TABLE stage_bands AS SELECT n.prompt_seq, b.band, b.bucket "
                "FROM stage_new_prompts n JOIN batch_bands b USING (ord)")
    root = _components(_verified_edges(con, params))
    merged = sorted({(root[c], c) for c in root if c < first_seq and root[c] != c})  # existing clusters merged
    con.register("roots", pa.table({"seq": pa.array(list(root), pa.int64()),
                                    "root": pa.array(list(root.values()), pa.int64())}))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE stage_roots AS  -- cluster seq -> its cluster's name and split key after the batch
        WITH named AS (
            SELECT prompt_seq AS seq, prompt_key AS cluster_id, split_key FROM stage_new_prompts
            UNION ALL SELECT prompt_seq, prompt_key, split_key FROM prompt_clusters WHERE prompt_key = cluster_id)
        SELECT r.seq, n.cluster_id, n.split_key FROM roots r JOIN named n ON n.seq = r.root""")
    con.unregister("roots")
    con.execute("""
        UPDATE stage_new_prompts SET cluster_id = r.cluster_id FROM stage_roots r
        WHERE r.seq = stage_new_prompts.prompt_seq""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE stage_merges AS
        SELECT r.cluster_id, r.split_key, m.prompt_key AS merged_cluster_id, m.split_key AS merged_split_key
        FROM stage_roots r JOIN prompt_clusters m ON m.prompt_seq = r.seq AND m.prompt_key = m.cluster_id
        WHERE r.cluster_id <> m.prompt_key""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE stage_prompt_keys AS
        WITH cluster_of AS (  -- every form of the batch: its cluster before the batch (existing) or its own
            SELECT prompt_key, cluster_id FROM prompt_clusters WHERE prompt_key IN (SELECT prompt_key FROM batch_forms)
            UNION ALL SELECT prompt_key, prompt_key FROM stage_new_prompts
        ), after AS (  -- the cluster after the batch's merges
            SELECT c.prompt_key, coalesce(m.cluster_id, n.cluster_id, c.cluster_id) AS cluster_id
            FROM cluster_of c LEFT JOIN stage_merges m ON m.merged_cluster_id = c.cluster_id
            LEFT JOIN stage_new_prompts n ON n.prompt_key = c.prompt_key
        ), split_keys AS (
            SELECT prompt_key AS cluster_id, split_key FROM prompt_clusters WHERE prompt_key = cluster_id
            UNION ALL SELECT prompt_key, split_key FROM stage_new_prompts WHERE prompt_key = cluster_id)
        SELECT p.prompt, f.prompt_key, a.cluster_id, s.split_key
        FROM batch_prompts p JOIN batch_forms f USING (ord) JOIN after a USING (prompt_key)
        JOIN split_keys s USING (cluster_id)""")
    [(new, clusters)] = con.execute("SELECT (SELECT count(*) FROM stage_new_prompts), "
                                    "(SELECT count(DISTINCT cluster_id) FROM stage_prompt_keys)").fetchall()
    return Clustering(first_seq, new, clusters, len(merged))


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


def _verified_edges(con, params: Params) -> list[tuple[int, int]]:
    """Pairs of cluster seqs (a cluster: the seq of its oldest prompt; a new form: its own) joined by a new form
    that shares an LSH bucket with another form and reaches the threshold of true Jaccard."""
    pairs = con.execute("""
        WITH bands AS (SELECT prompt_seq, band, bucket FROM prompt_bands UNION ALL SELECT * FROM stage_bands),
        candidates AS (
            SELECT DISTINCT least(n.prompt_seq, o.prompt_seq) AS a, greatest(n.prompt_seq, o.prompt_seq) AS b
            FROM stage_bands n JOIN bands o USING (band, bucket) WHERE n.prompt_seq <> o.prompt_seq
        ), forms AS (
            SELECT p.prompt_seq, p.normalised, c.prompt_seq AS cluster_seq
            FROM prompt_clusters p JOIN prompt_clusters c ON c.prompt_key = p.cluster_id
            WHERE p.prompt_seq IN (SELECT a FROM candidates)
            UNION ALL SELECT prompt_seq, normalised, prompt_seq FROM stage_new_prompts)
        SELECT fa.normalised, fb.normalised, fa.cluster_seq, fb.cluster_seq
        FROM candidates JOIN forms fa ON fa.prompt_seq = a JOIN forms fb ON fb.prompt_seq = b""").fetchall()
    return [(a, b) for x, y, a, b in pairs if jaccard(x, y, params.ngram) >= params.threshold]


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


def cluster_batch(con, warehouse, params: Params) -> Clustering:
    """Cluster the validated batch's prompts (valid_annotations): set each annotation's prompt_key and split,
    and stage the new forms, buckets and merges for the load."""
    if message := ensure_clustered(con, warehouse, params):
        print(message)
    found = cluster_prompts(con, BATCH_PROMPTS, params)
    con.execute("UPDATE valid_annotations SET prompt_key = k.prompt_key, split = split_of(k.split_key) "
                "FROM stage_prompt_keys k WHERE valid_annotations.prompt::VARCHAR = k.prompt")
    return found


def ensure_clustered(con, warehouse, params: Params) -> str | None:
    """Cluster a warehouse whose pairs were split by prompt (before prefpipe 0.4), or was clustered with other
    parameters: once, moving pairs to their cluster's split. Returns the message saying so, or None."""
    stored = con.execute("SELECT ngram, permutations, bands, threshold FROM cluster_settings").fetchall()
    [(unclustered, annotations)] = con.execute("SELECT count(*) FILTER (prompt_key IS NULL), count(*) "
                                               "FROM annotations").fetchall()
    same = stored == [astuple(params)]
    if same and not unclustered:
        return None
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM cluster_settings")
        con.execute("INSERT INTO cluster_settings VALUES (?, ?, ?, ?)", list(astuple(params)))
        message = _recluster(con, warehouse, params, "parameters changed" if stored and not same else
                             "pairs were split by prompt id") if annotations else None
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return message


def _recluster(con, warehouse, params: Params, why: str) -> str:
    for table in ("prompt_clusters", "prompt_bands", "cluster_merges"):  # old merges mean nothing in new clusters
        con.execute(f"DELETE FROM {table}")
    found = cluster_prompts(con, "SELECT prompt::VARCHAR AS prompt, arg_min(prompt_id, annotation_seq) AS prompt_id, "
                                 "min(annotation_seq) AS first FROM annotations GROUP BY 1", params)
    con.execute("""
        INSERT INTO prompt_clusters
        SELECT n.prompt_key, n.prompt_seq, n.normalised, n.cluster_id, n.split_key,
               arg_min(a.batch_id, a.annotation_seq)
        FROM stage_new_prompts n JOIN stage_prompt_keys k USING (prompt_key)
        JOIN annotations a ON a.prompt::VARCHAR = k.prompt
        GROUP BY ALL""")
    con.execute("INSERT INTO prompt_bands SELECT * FROM stage_bands")
    [(moved, pairs)] = con.execute("""
        SELECT count(*) FILTER (a.split <> split_of(k.split_key)), count(*)
        FROM comparisons JOIN annotations a USING (annotation_seq)
        JOIN stage_prompt_keys k ON a.prompt::VARCHAR = k.prompt""").fetchall()
    con.execute("UPDATE annotations SET prompt_key = k.prompt_key, split = split_of(k.split_key) "
                "FROM stage_prompt_keys k WHERE annotations.prompt::VARCHAR = k.prompt")
    return (f"{warehouse}: clustered once by near-duplicate prompts ({why}; {params.ngram}-grams, "
            f"{params.permutations} permutations, Jaccard >= {params.threshold:g}): {found.new} prompts in "
            f"{found.clusters} clusters; {moved} of {pairs} pairs changed split (a pair's split is now its cluster's)")
