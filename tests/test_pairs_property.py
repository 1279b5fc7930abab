"""Property tests of the pair build against an independent Python statement of the rules."""

from __future__ import annotations

from collections import defaultdict

from helpers import write_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefpipe.ingest import ingest_file
from prefpipe.warehouse import Warehouse

response = st.fixed_dictionaries({"rank": st.one_of(st.none(), st.integers(1, 5)), "dropped": st.booleans()})
annotation = st.tuples(st.integers(0, 6), st.lists(response, min_size=2, max_size=9), st.booleans())


def expected_pairs(prompt: int, items: list[dict], edit: bool) -> set[tuple]:
    comparable = {f"r{i}": r["rank"] for i, r in enumerate(items) if r["rank"] is not None and not r["dropped"]}
    if edit:
        comparable["edit"] = 0
    return {(f"p{prompt}", c, r, rank_r - rank_c) for c, rank_c in comparable.items()
            for r, rank_r in comparable.items() if rank_c < rank_r}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(annotation, min_size=1, max_size=12))
def test_pairs_are_the_ordered_comparable_pairs(tmp_path_factory, settings_factory, batch):
    tmp = tmp_path_factory.mktemp("prop")
    lines, expected = [], set()
    for n, (prompt, items, edit) in enumerate(batch):
        responses = [{"response_id": f"r{i}", "text": f"{n} {i}"} | ({"rank": r["rank"]} if r["rank"] else {})
                     | ({"dropped": True} if r["dropped"] else {}) for i, r in enumerate(items)]
        if edit:
            responses.append({"response_id": "edit", "text": f"{n} edit", "edited_from": "r0"})
        lines.append({"prompt_id": f"p{prompt}", "prompt": "x", "annotation_id": f"a{n}", "responses": responses})
        comparable = sum(r["rank"] is not None and not r["dropped"] for r in items) + edit
        if comparable >= 2 and len(responses) <= 9:
            expected |= {(f"a{n}", *p) for p in expected_pairs(prompt, items, edit)}

    with Warehouse(tmp / "w.duckdb") as wh:
        summary = ingest_file(wh, write_batch(tmp / "b.jsonl", *lines), settings_factory(tmp))
        assert summary.balanced
        got = wh.con.execute("SELECT annotation_id, prompt_id, chosen_id, rejected_id, margin FROM pairs").fetchall()
        assert set(got) == expected and len(got) == len(expected)
        weights = defaultdict(float)
        for annotation_id, weight in wh.con.execute("SELECT annotation_id, weight FROM pairs").fetchall():
            weights[annotation_id] += weight
        assert all(abs(w - 1) < 1e-9 for w in weights.values())
        crossing = wh.con.execute("SELECT prompt_id FROM pairs GROUP BY prompt_id HAVING count(DISTINCT split) > 1")
        assert crossing.fetchall() == []


def test_splits_follow_the_configured_shares(tmp_path, settings_factory):
    lines = [{"prompt_id": f"p{i}", "prompt": f"x {i}", "responses": [{"response_id": "a", "text": "a", "rank": 1},
                                                                  {"response_id": "b", "text": "b", "rank": 2}]}
             for i in range(4000)]
    with Warehouse(tmp_path / "w.duckdb") as wh:
        ingest_file(wh, write_batch(tmp_path / "b.jsonl", *lines), settings_factory(tmp_path, splits=(0.8, 0.1, 0.1)))
        shares = dict(wh.con.execute("SELECT split, count(*) / 4000 FROM pairs GROUP BY split").fetchall())
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["validation"] - 0.1) < 0.02
    assert abs(shares["test"] - 0.1) < 0.02
