"""The nightly evaluation through the real flow: every unit, reruns, failures, regressions, Dask, a kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import LLMBAR, ROOT, first_rows, one_model_one_set, run_cli

from prefpipe.synth import synthetic_batch
from prefpipe.warehouse import Warehouse

pytestmark = pytest.mark.slow


# A night in the life of the nightly, one behaviour a test. They share one home (two tiny models, two sets, after
# their first night), so they run on one worker (xdist_group; `make test` runs with --dist loadgroup), in any
# order: a test that changes the home puts it back, or works on a copy of its lake.
NIGHT = pytest.mark.xdist_group("nightly-home")


@pytest.fixture(scope="module")
def night(prefect_harness, tmp_path_factory, settings_factory) -> dict:
    """The warehouse with models a and b and sets llmbar (a quarter of it) and small, after its first night
    (2026-11-27)."""
    from flows.nightly import nightly_flow
    from prefpipe.ingest import ingest_file
    from prefpipe.registry import add_model, register_evalset
    from prefpipe.synth import tiny_reward_model

    tmp = tmp_path_factory.mktemp("nightly")
    settings = settings_factory(tmp)
    small = first_rows(LLMBAR, 40, tmp / "small.jsonl")
    llmbar = tmp / "llmbar.jsonl"  # every fourth example: each of the five subsets
    llmbar.write_text("".join(LLMBAR.read_text().splitlines(keepends=True)[::4]))
    models = {name: tiny_reward_model(tmp / name, seed=seed, positions=2048) for name, seed in (("a", 1), ("b", 2))}
    with Warehouse.open(settings) as wh:
        ingest_file(wh, synthetic_batch(tmp / "batch.jsonl", 60), settings)  # for the throughput query
        for name, folder in models.items():
            add_model(wh, folder, name)
        register_evalset(wh, settings.home, llmbar, "llmbar")
        register_evalset(wh, settings.home, small, "small")
    first = nightly_flow(settings, run_date=date(2026, 11, 27))
    return {"settings": settings, "models": models, "small": small, "first": first, "tmp": tmp}


def run_folders(settings) -> list[str]:
    return sorted(str(p.parent.relative_to(settings.results)) for p in settings.results.rglob("summary.parquet"))


@NIGHT
def test_a_night_scores_every_model_on_every_set_and_links_the_morning_report(night):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    settings, first = night["settings"], night["first"]
    assert len(run_folders(settings)) == 4 and len(first["leaderboard"]) == 4
    assert {(r["model_id"], r["evalset"]) for r in first["leaderboard"]} == {(m, s) for m in "ab"
                                                                            for s in ("llmbar", "small")}
    index = settings.report / "index.html"
    assert first["report"] == index and all(f'href="models/{m}.html"' in index.read_text() for m in "ab")
    with get_client(sync_client=True) as client:
        links = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["morning-report"])))
    assert any(index.resolve().as_uri() in link.data for link in links)  # (other tests' nightly runs wrote theirs)


@NIGHT
def test_a_rerun_skips_the_units_whose_results_exist(night):
    from flows.nightly import nightly_flow

    second = nightly_flow(night["settings"], run_date=date(2026, 11, 27))
    assert all(v.startswith("skipped") for v in second["units"].values()) and len(run_folders(night["settings"])) == 4


@NIGHT
def test_the_same_night_in_a_bucket_gives_the_same_scores_and_the_leaderboard_and_report_read_it(
        night, bucket, monkeypatch):
    from flows.nightly import nightly_flow
    from prefpipe import store
    from prefpipe.analyst import analyst_connection, read_only_query

    local = night["settings"]
    remote = local.with_(lake=bucket, **{name: bucket / name for name in ("results", "tables", "rewards", "analysis")},
                         report=night["tmp"] / "bucket-report")
    remote.check_lake(write=True)
    done = nightly_flow(remote, run_date=date(2026, 11, 27))
    board = done["leaderboard"]
    assert {(r["model_id"], r["evalset"]) for r in board} == {(m, s) for m in "ab" for s in ("llmbar", "small")}
    query = "SELECT model_id, evalset, example_id, score_gap FROM eval_scores WHERE run_date = DATE '2026-11-27'"

    def scores(settings) -> dict:
        con = analyst_connection(settings.results).con
        return {row[:3]: row[3] for row in read_only_query(con, query + " AND run_id = (SELECT min(run_id) FROM "
                                                                "eval_scores WHERE run_date = DATE '2026-11-27')")[1]}

    here, there = scores(local), scores(remote)
    assert len(here) > 100 and here.keys() == there.keys()
    assert max(abs(here[k] - there[k]) for k in here) <= 1e-12
    killed = "run_date=2026-11-20/run_id=20261120-killed"  # what killed writers of each kind of run left
    left = [f"{remote.results.key}/evalset=small/model=a/{killed}/scores.parquet",
            f"{remote.rewards.key}/{killed}/rewards.parquet", f"{remote.analysis.key}/analysis=tilt/{killed}/x.png",
            f"{remote.tables.key}/20261120T000000.000000Z/models.parquet"]
    for name in left:
        store.filesystem().pipe_file(name, b"what a killed writer left")
    monkeypatch.setattr(store, "STALE_STAGING_S", 0)  # as if a day old
    assert all(v.startswith("skipped") for v in nightly_flow(remote, run_date=date(2026, 11, 27))["units"].values())
    assert not any(store.filesystem().exists(name) for name in left)  # swept by the nightly, beside its units
    assert read_only_query(analyst_connection(remote.results, remote.tables).con,
                           "SELECT count(*) FROM models")[1] == [(2,)]  # the table copies went to the bucket too
    index = done["report"]  # the night's morning report, written from the bucket
    assert index == remote.report / "index.html" and 'href="models/a.html"' in index.read_text()


@NIGHT
def test_analysts_query_the_results_and_cannot_write(night):
    env = {"PREFPIPE_HOME": str(night["settings"].home)}
    for query in sorted((ROOT / "sql" / "queries").glob("*.sql")):
        done = run_cli("sql", "-f", str(query), "--format", "csv", env=env)
        assert done.returncode == 0, (query.name, done.stderr)
        rows = len(done.stdout.splitlines()) - 1  # after the header
        assert rows == 0 if query.name == "regressions.sql" else rows > 0, query.name  # one night: no regression
    weeks = json.loads(run_cli("sql", "-f", str(ROOT / "sql" / "queries" / "annotation_throughput.sql"), "--format",
                               "json", env=env).stdout)
    assert [w["week"] for w in weeks] == ["2026-11-02"] and weeks[0]["annotations"] == 60
    models_in_sql = run_cli("sql", "SELECT model_id, active FROM models ORDER BY model_id", "--format", "csv", env=env)
    assert models_in_sql.stdout.splitlines() == ["model_id,active", "a,True", "b,True"]
    board = json.loads(run_cli("sql", "SELECT * FROM leaderboard WHERE level = 'subset'", "--format", "json",
                               env=env).stdout)
    small_subsets = {json.loads(line)["subset"] for line in night["small"].read_text().splitlines()}
    assert len(board) == 2 * (5 + len(small_subsets))  # two models x (the LLMBar subsets + the small set's)
    done = run_cli("sql", "DELETE FROM history", env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == ("prefpipe: error: sql: prefpipe sql only reads: a DELETE statement would change "
                                   "something; use SELECT (or EXPLAIN SELECT)")


@NIGHT
def test_a_broken_model_fails_only_its_own_units(night):
    from flows.nightly import nightly_flow
    from prefpipe.errors import PrefpipeError

    weights = night["models"]["b"] / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(b"not a model")
    try:
        with pytest.raises(PrefpipeError, match=r"2 unit\(s\) failed: b on llmbar: .*; b on small: "):
            nightly_flow(night["settings"], run_date=date(2026, 11, 27))
        assert len(run_folders(night["settings"])) == 4  # a's results exist (skipped); b wrote nothing
    finally:
        weights.write_bytes(good)


@NIGHT
def test_a_drop_fails_the_run_naming_it_and_every_other_problem_and_the_report_shows_it(night, tmp_path):
    import shutil

    from flows.nightly import nightly_flow
    from prefpipe.errors import PrefpipeError
    from prefpipe.registry import set_active

    settings = night["settings"].with_(results=tmp_path / "results", report=tmp_path / "report")
    shutil.copytree(night["settings"].results, settings.results)  # this night's lake, apart from the others'
    [real] = [f for f in run_folders(settings) if f.startswith("evalset=small/model=a/")]
    last = settings.results / "evalset=small" / "model=a" / "run_date=2026-11-28" / "run_id=fake"
    last.mkdir(parents=True)  # a better result "last night" makes tonight's identical scores a regression
    summary = pq.read_table(settings.results / real / "summary.parquet").to_pylist()
    pq.write_table(pa.Table.from_pylist([r | {"value": 1.0, "run_date": date(2026, 11, 28), "run_id": "fake"}
                                         for r in summary]), last / "summary.parquet")
    (last / "scores.parquet").write_bytes((settings.results / real / "scores.parquet").read_bytes())
    with Warehouse.open(settings) as wh:
        set_active(wh, "b", False)
    try:
        with pytest.raises(PrefpipeError, match=r"2 regression\(s\) beyond 0.02: a on small Chat Hard -0\.\d+; "
                                                r"a on small llmbar-natural"):
            nightly_flow(settings, force=True, run_date=date(2026, 11, 29))
        index = (settings.report / "index.html").read_text()  # written all the same; b has results, is inactive
        assert '<a href="models/b.html">b</a> <span class="muted">inactive</span>' in index
        assert 'href="models/a.html">a</a></td><td>small</td>' in (settings.report / "regressions.html").read_text()
        blocker = tmp_path / "not-a-folder"  # a report that cannot be written: its line beside the others
        blocker.write_text("")
        with pytest.raises(PrefpipeError, match=rf"report: --out: {blocker} is a file, not a folder \| 2 regression"):
            nightly_flow(settings.with_(report=blocker), run_date=date(2026, 11, 29))  # (units: done, skipped)
    finally:
        with Warehouse.open(settings) as wh:
            set_active(wh, "b", True)


def test_nightly_units_run_on_dask_a_local_cluster_or_workers_that_share_only_a_bucket(
        prefect_harness, tmp_path, settings_factory, bucket):
    """A local cluster on a local lake; then a scheduler's workers with their own empty home and working folder,
    on a lake in a bucket: they fetch the models and the set from the bucket, and score the same."""
    from datetime import date

    import pyarrow.parquet as pq
    from distributed import Client, LocalCluster

    from flows.nightly import nightly_flow
    from prefpipe.analyst import analyst_connection
    from prefpipe.errors import InputError
    from prefpipe.registry import add_model, register_evalset
    from prefpipe.synth import tiny_reward_model

    settings = settings_factory(tmp_path)
    llmbar = LLMBAR
    small = first_rows(llmbar, 20, tmp_path / "small.jsonl")
    with Warehouse.open(settings) as wh:
        add_model(wh, tiny_reward_model(tmp_path / "rm", positions=2048), "rm")
        add_model(wh, tiny_reward_model(tmp_path / "policy", "causal-lm", seed=1, positions=2048), "dpo",
                  reference=tiny_reward_model(tmp_path / "reference", "causal-lm", seed=2, positions=2048))
        register_evalset(wh, settings.home, small, "small")

    local = nightly_flow(settings, task_runner="dask", run_date=date(2026, 11, 27))  # a local cluster
    assert sorted(local["units"]) == ["dpo on small", "rm on small"]
    assert not any(v.startswith("skipped") for v in local["units"].values())
    first = {}
    for path in settings.results.glob("evalset=small/model=*/run_date=2026-11-27/*/scores.parquet"):
        rows = pq.read_table(path).to_pylist()
        first[rows[0]["model_id"]] = [r["score_gap"] for r in rows]

    worker = tmp_path / "worker"  # no path of the caller's: its own home, cache and working folder
    worker.mkdir()
    remote = settings.with_(results=bucket / "results", tables=bucket / "tables")
    with (LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None, processes=True,
                       env={"PREFPIPE_HOME": str(worker / "home"), "PREFPIPE_CACHE": ""}) as cluster,
          Client(cluster) as client):
        client.run(os.chdir, str(worker))
        nightly_flow(remote, task_runner="dask", dask_address=cluster.scheduler_address, run_date=date(2026, 11, 28))
        assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter) > 0
    fetched = [p for p in (worker / "home" / "cache" / "published").rglob("*") if p.parent.name in ("models",
                                                                                                   "evalsets")]
    assert len(fetched) == 4  # the reward model, the policy, its reference and the set: from the bucket
    rows = analyst_connection(remote.results).con.execute(
        "SELECT model_id, score_gap FROM eval_scores ORDER BY model_id, example_id").fetchall()
    second = {m: [g for model, g in rows if model == m] for m in ("dpo", "rm")}
    assert sorted(first) == ["dpo", "rm"] and len(first["rm"]) == 20
    assert all(sorted(first[m]) == pytest.approx(sorted(second[m]), abs=1e-12) for m in first)
    analyst = {"PREFPIPE_HOME": str(tmp_path / "analyst"), "PREFPIPE_RESULTS": str(remote.results),
               "PREFPIPE_TABLES": str(remote.tables)}  # a laptop: the bucket, and no path of the scheduler's
    board = json.loads(run_cli("sql", "SELECT model_id, evalset FROM leaderboard GROUP BY ALL ORDER BY ALL",
                               "--format", "json", env=analyst).stdout)
    assert board == [{"model_id": "dpo", "evalset": "small"}, {"model_id": "rm", "evalset": "small"}]
    report = tmp_path / "analyst-report"
    assert run_cli("report", "--out", str(report), env=analyst).returncode == 0
    assert 'href="models/rm.html"' in (report / "index.html").read_text()  # written from the bucket
    with pytest.raises(InputError, match=r"--task-runner: must be one of threads, dask, got 'ray'"):
        nightly_flow(settings, task_runner="ray")
    with pytest.raises(InputError, match=r"--dask-address: a Dask scheduler address needs --task-runner dask"):
        nightly_flow(settings, dask_address="tcp://127.0.0.1:8786")


def test_a_nightly_run_killed_mid_write_leaves_no_partition_and_its_leftovers_are_swept(
        prefect_harness, tmp_path, settings_factory):
    from datetime import date

    from prefect.settings import PREFECT_API_URL

    from flows.nightly import nightly_flow
    from prefpipe.analyst import analyst_connection
    settings = one_model_one_set(settings_factory(tmp_path), tmp_path)
    script = f"""
import os, signal
from datetime import date
import pyarrow.parquet as pq
from flows.nightly import nightly_flow
from prefpipe import lake
from prefpipe.settings import Settings
real = pq.write_table
def write(table, where, **kwargs):
    if str(where).endswith("summary.parquet"):
        os.kill(os.getpid(), signal.SIGKILL)  # killed between the two files of a unit: no cleanup runs
    return real(table, where, **kwargs)
lake.pq.write_table = write
nightly_flow(Settings.from_env(home={str(settings.home)!r}, warehouse={str(settings.warehouse)!r}),
             run_date=date(2026, 11, 27))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value()})
    assert done.returncode == -9, done.stderr[-2000:]
    results = settings.results
    [left] = results.glob(".staging-*")  # what the kill left: hidden, holding the first file only
    assert [p.name for p in left.iterdir()] == ["scores.parquet"]
    assert list(results.glob("evalset=*")) == [] and analyst_connection(results).runs == []  # no partition to read

    nightly_flow(settings, run_date=date(2026, 11, 27))  # the next run writes the unit whole
    assert left.exists()  # young: it could belong to a unit writing now
    os.utime(left, (0, 0))  # a day old and more
    nightly_flow(settings, force=True, run_date=date(2026, 11, 28))
    assert not left.exists()
    assert analyst_connection(results).con.execute("SELECT count(DISTINCT run_id) FROM eval_scores").fetchone() == (2,)
