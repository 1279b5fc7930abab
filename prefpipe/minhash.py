"""MinHash signatures of normalised prompt forms, computed in NumPy over a whole chunk of forms at once.

A form's shingles are its word N-grams (a form of at most N words: itself; prefpipe.dedup.shingles). Each is
hashed from its UTF-8 bytes: a polynomial hash modulo 2^64 (sum of b_i·P^(e-i) over the shingle's bytes [s, e)),
read off prefix sums of b_i·P^-i over the chunk's bytes, so a shingle's hash does not depend on where it lies;
then its length is mixed in and MurmurHash3's 64-bit finaliser (fmix64) spreads it, with the seed.

The signature is one-permutation hashing (Li, Owen & Zhang 2012): a shingle's hash picks one of K bins (its top
bits) and each bin keeps the smallest hash that falls in it. A bin left empty takes the value of the first
non-empty bin along a fixed pseudo-random sequence of bins (optimal densification, Shrivastava 2017). A bin of
two sets then agrees exactly when the smallest hash of their union in the bin the sequence reaches is in both,
which happens with probability their Jaccard similarity: the estimate (the share of agreeing bins) is unbiased.
One hash per shingle instead of K: that, and no Python object per shingle, is the speed.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pyarrow as pa

NAME = "oph"  # recorded with the clusters (cluster_settings.signature): another signature means clustering again
P = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2^64
P_INVERSE = pow(P, -1, 1 << 64)
EMPTY = np.uint64(2**64 - 1)
GROUP_BYTES = 1 << 20  # forms hashed at a time, by their bytes (memory: ~60 bytes per byte of text)
_U64 = np.uint64


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (every input bit affects every output bit), on a uint64 array."""
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> _U64(33))


def _bin(h: np.ndarray, bins: int) -> np.ndarray:
    """The bin of each hash: its top 32 bits scaled to [0, bins) (Lemire's multiply-shift range)."""
    return ((h >> _U64(32)) * _U64(bins)) >> _U64(32)


def _powers(base: int, n: int) -> np.ndarray:
    """base^0 .. base^(n-1) modulo 2^64 (kept for the next power of two, up to a group's size)."""
    if n > 2 * GROUP_BYTES:  # a group of one form longer than a group
        return _powers_to.__wrapped__(base, n)
    return _powers_to(base, max(1 << 16, 1 << (n - 1).bit_length()))[:n]


@cache
def _powers_to(base: int, n: int) -> np.ndarray:
    out = np.full(n, base, np.uint64)
    out[0] = 1
    out = np.cumprod(out)
    out.flags.writeable = False
    return out


def shingle_hashes(data: np.ndarray, offsets: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(form of each shingle, its 64-bit hash) for the forms whose UTF-8 bytes are DATA[OFFSETS[i]:OFFSETS[i+1]]
    (normalised: words separated by one space, no space at either end)."""
    forms, size = len(offsets) - 1, len(data)
    lengths = np.diff(offsets)
    spaces = np.flatnonzero(data == 32)
    starts = np.zeros(size + 1, bool)
    starts[offsets[:-1][lengths > 0]] = True
    starts[spaces + 1] = True
    ends = np.zeros(size + 1, bool)
    ends[offsets[1:][lengths > 0]] = True
    ends[spaces] = True
    starts, ends = np.flatnonzero(starts[:size]), np.flatnonzero(ends)
    words = np.diff(np.searchsorted(starts, offsets))
    first_word = np.cumsum(words) - words
    counts = np.maximum(words - n + 1, 1)  # shingles per form
    form = np.repeat(np.arange(forms), counts)
    word = first_word[form] + np.arange(len(form)) - np.repeat(np.cumsum(counts) - counts, counts)
    last_word = np.minimum(word + n, (first_word + words)[form]) - 1
    empty = words[form] == 0  # a form without words is one shingle: the empty string
    begin = np.where(empty, offsets[:-1][form], starts[np.where(empty, 0, word)] if len(starts) else 0)
    end = np.where(empty, offsets[:-1][form], ends[np.where(empty, 0, last_word)] if len(ends) else 0)
    prefix = np.zeros(size + 1, np.uint64)
    np.cumsum(data.astype(np.uint64) * _powers(P_INVERSE, size), out=prefix[1:])
    poly = (prefix[end] - prefix[begin]) * _powers(P, size + 1)[end]
    length = (end - begin).astype(np.uint64)
    return form, fmix64(poly ^ (length * _U64(0xD6E8FEB86659FD93)) ^ _U64(seed & (2**64 - 1)))


def signatures_of_hashes(form: np.ndarray, hashes: np.ndarray, forms: int, bins: int, seed: int) -> np.ndarray:
    """(forms, bins) one-permutation MinHash signatures of the sets of HASHES grouped by FORM (each form has at
    least one), densified: an empty bin j takes the value of the form's non-empty bin k that comes first in bin
    j's fixed order of bins (`_orders`; a non-empty bin comes first in its own, so it keeps its value)."""
    # (flat indices throughout, NumPy's fast path: 2-D fancy indexing made this 1.5x slower)
    sig = np.full(forms * bins, EMPTY, np.uint64)
    np.minimum.at(sig, form * bins + _bin(hashes, bins).astype(np.int64), hashes)
    full = (sig != EMPTY).reshape(forms, bins)
    counts = np.count_nonzero(full, axis=1)
    order = np.argsort(-counts, kind="stable")  # the forms by non-empty bins, most first
    counts = counts[order]
    width = counts[0] if forms else 0
    filled = np.flatnonzero(full[order])  # row-major: each form's non-empty bins together
    rows = filled // bins
    slots = np.zeros(forms * width, np.intp)  # (forms, width): each form's k-th non-empty bin
    slots[rows * width + np.arange(len(filled)) - (np.cumsum(counts) - counts)[rows]] = filled - rows * bins
    slots = slots.reshape(forms, width)
    ranks, sequence = _orders(bins, seed)
    first = np.full((forms, bins), np.iinfo(ranks.dtype).max, ranks.dtype)  # the best rank in bin j's order so far
    for slot in range(width):  # a form's k-th non-empty bin, for the forms that have one
        live = np.count_nonzero(counts > slot)
        np.minimum(first[:live], ranks[slots[:live, slot]], out=first[:live])
    back = np.empty(forms, np.intp)
    back[order] = np.arange(forms)
    source = first[back].astype(np.intp)  # the forms in their order again
    source += np.arange(bins) * bins
    source = sequence.ravel().astype(np.intp).take(source)  # the bin of that rank
    source += (np.arange(forms) * bins)[:, None]
    return sig.take(source)


@cache
def _orders(bins: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin j's fixed order of bins (j first, then the others by fmix64 of (j, k) and the seed), as (ranks,
    sequence): ranks[k, j] = the rank of bin k in j's order, sequence[j, r] = the bin of rank r in it. In the
    smallest unsigned type that holds a rank (uint8 for up to 256 bins: a minimum over them runs 3.7x faster
    than over uint16)."""
    j, k = np.meshgrid(np.arange(bins, dtype=np.uint64), np.arange(bins, dtype=np.uint64), indexing="ij")
    keys = fmix64((j << _U64(32)) + k + (_U64(seed & (2**64 - 1)) ^ _U64(0x632BE59BD9B4E019)))
    keys[j == k] = 0
    sequence = np.argsort(keys, axis=1)
    dtype = np.uint8 if bins <= 256 else np.uint16 if bins <= 65536 else np.uint32
    return np.ascontiguousarray(np.argsort(sequence, axis=1).T.astype(dtype)), sequence.astype(dtype)


def signatures(forms: list[str] | pa.Array, n: int, bins: int, seed: int = 0) -> np.ndarray:
    """(len(FORMS), BINS) signatures of normalised forms over their word N-grams, GROUP_BYTES of text at a time."""
    array = pa.array(forms, pa.large_string()) if isinstance(forms, list) else forms.cast(pa.large_string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    offsets = np.frombuffer(array.buffers()[1], np.int64, len(array) + 1, array.offset * 8)
    data = np.frombuffer(array.buffers()[2], np.uint8) if len(array) and offsets[-1] else np.zeros(0, np.uint8)
    out = np.empty((len(array), bins), np.uint64)
    start = 0
    while start < len(array):
        stop = max(start + 1, int(np.searchsorted(offsets, offsets[start] + GROUP_BYTES, "right")) - 1)
        stop = min(stop, len(array))
        group = offsets[start:stop + 1]
        form, hashes = shingle_hashes(data[group[0]:group[-1]], group - group[0], n, seed)
        out[start:stop] = signatures_of_hashes(form, hashes, stop - start, bins, seed)
        start = stop
    return out
