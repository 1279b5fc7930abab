"""prefpipe.minhash: the signature equals its plain-Python definition, estimates Jaccard without bias, and does not
depend on how forms are grouped or ordered; a warehouse clustered by another signature is clustered once again."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from helpers import annotation, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from prefpipe import minhash
from prefpipe.dedup import shingles
from prefpipe.ingest import ingest_file
from prefpipe.migrate import due
from prefpipe.warehouse import Warehouse

MASK = 2**64 - 1
WORDS = ["tea", "cup", "née", "漢字", "a", "bb", "ccc", "ok"]


def fmix(h: int) -> int:
    h ^= h >> 33
    h = h * 0xFF51AFD7ED558CCD & MASK
    h ^= h >> 33
    h = h * 0xC4CEB9FE1A85EC53 & MASK
    return h ^ (h >> 33)


def shingle_hash(shingle: str, seed: int) -> int:
    poly = 0
    for byte in shingle.encode():
        poly = (poly * minhash.P + byte) & MASK
    poly = poly * minhash.P & MASK  # sum of b_i * P^(e - i)
    return fmix(poly ^ (len(shingle.encode()) * 0xD6E8FEB86659FD93 & MASK) ^ seed)


def reference(form: str, n: int, bins: int, seed: int) -> list[int]:
    """The signature as the module's docstring defines it, one shingle and one bin at a time."""
    kept: list[int | None] = [None] * bins
    for h in {shingle_hash(s, seed) for s in shingles(form, n)}:
        b = ((h >> 32) * bins) >> 32
        kept[b] = h if kept[b] is None else min(kept[b], h)
    full = [b for b in range(bins) if kept[b] is not None]
    order = seed ^ 0x632BE59BD9B4E019
    return [kept[j] if kept[j] is not None else kept[min(full, key=lambda k: fmix(((j << 32) + k + order) & MASK))]
            for j in range(bins)]


forms = st.lists(st.lists(st.sampled_from(WORDS), max_size=14).map(" ".join), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(forms=forms, n=st.integers(1, 5), bins=st.sampled_from([8, 128, 300]), seed=st.integers(0, 2**64 - 1))
def test_the_signature_is_its_definition(forms, n, bins, seed):
    got = minhash.signatures(forms, n, bins, seed)
    assert got.shape == (len(forms), bins) and got.dtype == np.uint64
    assert [list(map(int, row)) for row in got] == [reference(f, n, bins, seed) for f in forms]


@settings(max_examples=25, deadline=None)
@given(forms=forms, group=st.integers(1, 60), order=st.randoms(use_true_random=False))
def test_a_signature_does_not_depend_on_the_group_or_order_of_forms(forms, group, order):
    whole = minhash.signatures(forms, 5, 128)
    shuffled = list(range(len(forms)))
    order.shuffle(shuffled)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(minhash, "GROUP_BYTES", group)  # forms hashed a few bytes at a time
        assert (minhash.signatures([forms[i] for i in shuffled], 5, 128) == whole[shuffled]).all()


def binomial_bound(j: float, draws: int) -> float:
    """Five standard deviations of a share of DRAWS independent draws at J, plus one draw: what 128 independent
    permutations would allow (one failure in ~3 million)."""
    return 5 * math.sqrt(j * (1 - j) / draws) + 1 / draws


sets = st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60)).filter(
    lambda s: s[0] + s[1] and s[1] + s[2])  # neither set empty (a form has at least one shingle)


@settings(max_examples=60, deadline=None)
@given(sizes=sets, seed=st.integers(0, 2**32))
def test_the_estimate_of_jaccard_is_within_the_binomial_bound_and_unbiased(sizes, seed):
    """Within the bound of min(128, |A u B|) independent permutations: a union smaller than the bins fills the empty
    bins from its non-empty ones, so its 128 bins carry at most one independent draw per element (1,500 seeds each:
    the estimate's standard deviation is 0.75-0.97 of that bound's from 60 to 180 elements; with 22 elements one
    estimate in 1,500 is off by 0.195, above 128 permutations' bound of 0.193). Unbiased: the mean over 40 seeds."""
    only_a, both, _ = sizes  # two sets of random 64-bit elements that share BOTH
    rng = np.random.default_rng(seed)
    elements = rng.integers(0, 2**63, sum(sizes), dtype=np.uint64)
    a, b = elements[:only_a + both], elements[only_a:]
    j = both / sum(sizes)
    form = np.repeat([0, 1], [len(a), len(b)])
    estimates = []
    for s in range(40):  # the hash family's seed: a new draw of every permutation
        hashed = minhash.fmix64(np.concatenate([a, b]) ^ np.uint64(seed * 41 + s))
        sig = minhash.signatures_of_hashes(form, hashed, 2, 128, s)
        estimates.append(float((sig[0] == sig[1]).mean()))
    draws = min(128, sum(sizes))
    assert abs(estimates[0] - j) <= binomial_bound(j, draws)
    assert abs(np.mean(estimates) - j) <= binomial_bound(j, draws * len(estimates))


def test_a_warehouse_clustered_by_rensas_minhash_is_clustered_once_again_and_says_so(tmp_path, settings_factory):
    settings = settings_factory(tmp_path)
    rows = [annotation(f"p-{i}", prompt=f"tell me about the {i} tea cups and the kettle" + (" now" if i >= 5 else ""))
            for i in range(10)]
    batch = tmp_path / "b.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Warehouse.open(settings) as wh:
        ingest_file(wh, batch, settings)
        clusters = wh.con.execute("SELECT prompt_key, cluster_id FROM prompt_clusters ORDER BY ALL").fetchall()
        wh.con.execute("UPDATE cluster_settings SET signature = 'rensa'")  # as 0.9 left it
        assert due(wh, settings.dedup) == ["cluster the prompts by near-duplicates (the MinHash signature changed: "
                                           "rensa -> oph)"]
    env = {"PREFPIPE_HOME": str(settings.home), "PREFPIPE_WAREHOUSE": str(settings.warehouse)}
    done = run_cli("migrate", env=env)
    assert done.returncode == 0 and "(the MinHash signature changed: rensa -> oph; 5-grams, 128 MinHash bins (oph)" \
        in done.stdout, done
    with Warehouse.open(settings) as wh:
        assert wh.con.execute("SELECT prompt_key, cluster_id FROM prompt_clusters ORDER BY ALL").fetchall() == clusters
        assert wh.con.execute("SELECT signature FROM cluster_settings").fetchall() == [("oph",)]
    assert run_cli("migrate", env=env).stdout.strip() == f"{settings.warehouse}: nothing to migrate"


def test_planted_near_copies_are_found_at_the_goal_recall(tmp_path, settings_factory):
    """300 prompts of 12-40 words and 300 near-copies (a word added at either end or dropped at the end, and case
    or punctuation changed), ingested: pairs in one cluster against the exact all-pairs Jaccard of the forms
    (recall >= 0.95; every pair found is verified, so precision is 1)."""
    rng = random.Random(3)
    vocabulary = [f"w{i}" for i in range(400)]
    prompts = [" ".join(rng.choices(vocabulary, k=rng.randint(12, 40))) for _ in range(300)]
    for source in list(prompts):
        words = [["please", *source.split()], [*source.split(), "please"], source.split()[:-1]][rng.randrange(3)]
        prompts.append(rng.choice([" ".join(words).upper(), ", ".join(words) + "?", "  ".join(words)]))
    batch = tmp_path / "b.jsonl"
    batch.write_text("".join(json.dumps(annotation(f"p-{i}", prompt=p)) + "\n" for i, p in enumerate(prompts)))
    settings = settings_factory(tmp_path)
    with Warehouse.open(settings) as wh:
        ingest_file(wh, batch, settings)
        cluster = dict(wh.con.execute("SELECT normalised, cluster_id FROM prompt_clusters").fetchall())
    forms = sorted(cluster)
    grams = [set(shingles(f, 5)) for f in forms]
    true = {(a, b) for a in range(len(forms)) for b in range(a + 1, len(forms))
            if len(grams[a] & grams[b]) / len(grams[a] | grams[b]) >= settings.dedup_threshold}
    found = {(a, b) for a in range(len(forms)) for b in range(a + 1, len(forms)) if cluster[forms[a]] == cluster[forms[b]]}
    assert len(true) >= 290 and len(true & found) / len(true) >= 0.95 and found <= true
