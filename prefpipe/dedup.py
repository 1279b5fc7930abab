"""Near-duplicate prompts: normalised forms, MinHash LSH, clusters, and the split of a cluster.

A prompt's normalised form is Unicode NFKC, case-folded, punctuation stripped, whitespace collapsed (a message
list: its user turns). Equal forms are one prompt (`prompt_key`, an md5 of the form). Forms are compared by
MinHash over word n-grams (prefpipe.minhash: one-permutation hashing, densified, in NumPy), banded for LSH
(`bands` bands of `permutations / bands` rows, each band's rows hashed to one bucket), and a pair of forms that
share a bucket counts when its true Jaccard reaches the threshold. Clusters are the connected components, named
by their oldest prompt; a pair's split is the hash of the prompt id first seen with that prompt
(sql/ingest/00_macros.sql `split_of`), so a prompt without near-copies keeps the split it had before clusters.

The buckets live in the warehouse (`prompt_bands`), written in the batch's transaction, so the index never
disagrees with the warehouse and its memory is DuckDB's, bounded and spilled to disk (an in-memory LSH index such
as rensa's RMinHashLSH holds about 2.3 GB per million prompts, more than an ingest may use beside DuckDB's buffers).

Clusters are stable: a new prompt joins its cluster's split, and existing pairs never move. A batch that joins
two clusters merges the younger into the older; its own pairs take the older one's split, and a merge of two
splits is recorded (`cluster_merges`, view `split_conflicts`).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import sys
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, astuple, dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefpipe import minhash
from prefpipe.errors import InputError, PrefpipeError
from prefpipe.sql import registered, run_script, sql

WORKERS = 2  # threads hashing chunks of forms (in a small batch, while the main thread makes the next chunk's)
CHUNK = 10_000  # prompts hashed at a time (and in a small batch, entries whose prompts' forms are made at a time)
SEED = 0
ROW_GROUP = 122_880  # rows: DuckDB splits a scan's work across cores by row group
FORMS = pa.schema([("first", pa.int64()), ("normalised", pa.string())])  # a chunk of forms (sql/dedup/chunk.sql)
FNV_OFFSET, FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


@dataclass(frozen=True)
class Params:
    """How prompts are compared: word N-grams, MinHash permutations, LSH bands, the Jaccard threshold (the
    defaults: Settings.dedup_*), and the signature that computes the MinHash (prefpipe.minhash.NAME; the clusters
    of a warehouse made before 0.10: `rensa`)."""

    ngram: int
    permutations: int
    bands: int
    threshold: float
    signature: str = minhash.NAME

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


def buckets(forms: list[str] | pa.Array, params: Params) -> np.ndarray:
    """(forms, bands) LSH buckets: each band's rows of the forms' MinHash signatures, hashed together (FNV-1a)."""
    if params.signature != minhash.NAME:
        raise PrefpipeError(f"the warehouse's clusters were made by another signature ({params.signature}): "
                            "run `prefpipe migrate`")
    return banded(minhash.signatures(forms, params.ngram, params.permutations, SEED), params)


def banded(signatures: np.ndarray, params: Params) -> np.ndarray:
    """(forms, bands) LSH buckets of (forms, permutations) signatures: each band's rows hashed together (FNV-1a)."""
    rows = params.permutations // params.bands
    values = np.asarray(signatures, np.uint64).reshape(len(signatures), params.bands, rows)
    hashed = np.full((len(signatures), params.bands), FNV_OFFSET, np.uint64)
    for row in range(values.shape[2]):
        hashed = (hashed ^ values[:, :, row]) * FNV_PRIME  # wraps modulo 2^64, as FNV does
    return hashed


def stored_params(con) -> Params | None:
    """The parameters the warehouse's clusters were made with; None when it was never clustered."""
    *stored, _, _ = con.execute(sql("dedup/stored_settings.sql")).fetchall()[0]
    return None if stored[0] is None else Params(*stored)


# -- clusters -----------------------------------------------------------------------------------------------

@dataclass
class Clustering:
    """What clustering a batch found (its rows are staged in temp tables for the load)."""

    new: int  # forms not seen before
    clusters: int  # the clusters of the batch's prompts


def cluster_prompts(con, params: Params) -> Clustering:
    """Cluster the distinct prompts of the temp view cluster_source (prompt: JSON text, prompt_id: its first,
    first: where it first appears, entries: where it appears; sql/dedup/source_*.sql) against the warehouse's
    forms (`prompt_clusters`, `prompt_bands`) and each other.

    Stages stage_entry_keys (entry, prompt_key, split_key: the cluster's), stage_new_prompts (prompt_clusters
    rows), stage_bands (prompt_bands rows) and stage_merges (cluster_id, split_key, merged_cluster_id,
    merged_split_key): sql/dedup/."""
    run_script(con, "dedup/forms.sql")
    run_script(con, "dedup/prepare.sql")
    _stage_forms(con, params)
    _give_back_memory()
    edges = con.execute(sql("dedup/candidates.sql"), [params.ngram, params.threshold]).fetchall()
    root = _components(edges)  # a stored cluster or new form -> the oldest cluster its component joins
    with registered(con, roots=pa.table({"seq": pa.array(list(root), pa.int64()),
                                          "root": pa.array(list(root.values()), pa.int64())})):
        run_script(con, "dedup/stage_clusters.sql")
    return Clustering(*con.execute(sql("dedup/found.sql")).fetchall()[0])


def _stage_forms(con, params: Params) -> None:
    """The forms and LSH buckets of batch_prompts, handed to sql/dedup/stage_forms.sql and stage_bands.sql."""
    [(count, low, high)] = con.table("batch_prompts").aggregate("count(*), min(first), max(first)").fetchall()
    # NumPy (which releases the GIL) hashes the forms CHUNK at a time on threads. A batch whose prompts fill two of
    # DuckDB's row groups has its forms made in one statement, on every core; a smaller one (whose forms DuckDB would
    # make on one core) chunk by chunk, each hashed while the next is made (1M prompts: 4.2 -> 3.8 s; 30k: 0.69 s,
    # against 0.72 s in one statement). Their keys are made while the last chunks are hashed. Handed to DuckDB as
    # they are, not copied into tables chunk by chunk (at 1M prompts that held up the forms for 1.2 s), and let go
    # once read.
    step = CHUNK if count < 2 * ROW_GROUP else high - low + 1
    with ThreadPoolExecutor(WORKERS) as pool:
        pieces, hashed = [], []
        for start in range(low, high + 1, step) if count else ():
            pieces.append(_forms(con, start, start + step))
            hashed += [pool.submit(buckets, pieces[-1]["normalised"].slice(i, CHUNK), params)
                       for i in range(0, len(pieces[-1]), CHUNK)]
        texts = pa.concat_tables(pieces) if pieces else FORMS.empty_table()
        with registered(con, batch_texts=texts):
            run_script(con, "dedup/stage_forms.sql")
        hashed = [pa.FixedSizeListArray.from_arrays(pa.array(h.result().reshape(-1)), params.bands) for h in hashed]
    with registered(con, batch_buckets=pa.table({"first": texts["first"], "buckets": pa.chunked_array(
            hashed, pa.list_(pa.uint64(), params.bands))})):
        run_script(con, "dedup/stage_bands.sql")


def _give_back_memory() -> None:
    """Hand the memory that the forms and the hashing threads freed back to the system before the joins that follow:
    glibc keeps what a thread frees in that thread's arena, and Arrow's allocator keeps pages for reuse (at 1M
    prompts, 0.25-0.3 GB of the ingest's peak). Elsewhere than glibc, Arrow's part alone."""
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _forms(con, start: int, stop: int) -> pa.Table:
    """(first, normalised) of the prompts of batch_prompts first seen at [START, STOP), in order: ASCII ones made by
    DuckDB (sql/dedup/chunk.sql), the others here. In this process: a process pool would need `fork`, which
    deadlocks on DuckDB's threads, or `spawn`, which runs the caller's script again."""
    chunk = con.sql(sql("dedup/chunk.sql"), params=[start, stop]).to_arrow_table()
    forms = chunk["form"].combine_chunks()
    if forms.null_count:
        others = [normalise_text(t) for t in chunk["text"].drop_null().to_pylist()]
        forms = pc.replace_with_mask(forms, forms.is_null(), pa.array(others, forms.type))
    return pa.table([chunk["first"], forms], schema=FORMS)


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


# -- the ingest's step, and the clustering of a whole warehouse (prefpipe.migrate) -----------------------------

def cluster_batch(con, params: Params) -> Clustering:
    """Cluster the validated batch's prompts (valid_annotations): set each annotation's prompt_key and split,
    and stage the new forms, buckets and merges for the load. The warehouse must be clustered with PARAMS
    already (prefpipe.migrate)."""
    if reason := recluster_reason(con, params):
        raise PrefpipeError(f"the warehouse needs its one-time migration ({reason}): run `prefpipe migrate`")
    run_script(con, "dedup/source_batch.sql")
    found = cluster_prompts(con, params)
    run_script(con, "dedup/apply_batch.sql")
    return found


def recluster_reason(con, params: Params) -> str | None:
    """Why the whole warehouse must be clustered (again) with PARAMS, or None."""
    *stored, unclustered, _ = con.execute(sql("dedup/stored_settings.sql")).fetchall()[0]
    if stored[0] is None:
        return "never clustered"
    if tuple(stored[:4]) != astuple(params)[:4]:
        return "dedup settings changed"
    if stored[4] != params.signature:
        return f"the MinHash signature changed: {stored[4]} -> {params.signature}"
    return "pairs were split by prompt id" if unclustered else None


def recluster(wh, params: Params) -> str | None:
    """Cluster a warehouse whose pairs were split by prompt (before prefpipe 0.4), or was clustered with other
    parameters: in one transaction, moving pairs to their cluster's split. Returns the message saying so, or
    None when there was nothing to do (or nothing to cluster yet)."""
    why = recluster_reason(wh.con, params)
    if why is None:
        return None
    wh.set_variables(**asdict(params))
    with wh.transaction() as con:
        run_script(con, "dedup/reset.sql")
        run_script(con, "dedup/source_warehouse.sql")
        found = cluster_prompts(con, params)
        run_script(con, "dedup/recluster.sql")
        [(moved, pairs)] = con.table("recluster_moves").fetchall()
    if not pairs and not found.new:
        return None
    return (f"{wh.path}: clustered once by near-duplicate prompts ({why}; {params.ngram}-grams, "
            f"{params.permutations} MinHash bins ({params.signature}), Jaccard >= {params.threshold:g}): "
            f"{found.new} prompts in {found.clusters} clusters; {moved} of {pairs} pairs changed split (a pair's "
            "split is now its cluster's)")
