"""A lake in a bucket, against a real S3-compatible server (moto's, on a loopback port, over HTTP): runs
committed by their manifest, one run per unit and night across writers, sandboxed SQL, and one-line errors for a
bad configuration, in bounded time, with nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from helpers import LLMBAR, first_rows, run_cli

from prefpipe import lake, lake_runs, published, store
from prefpipe.analyst import analyst_connection, read_buckets, read_only_query
from prefpipe.errors import InputError
from prefpipe.settings import Settings
from prefpipe.synth import synthetic_lake

pytestmark = pytest.mark.xdist_group("bucket")  # one moto server per worker that runs these
DAY = date(2026, 12, 1)


def objects(where: store.Bucket) -> dict[str, store.Object]:
    return store.listing(where) if store.filesystem().exists(where.key) else {}


def run_folders(where: store.Bucket) -> set[str]:
    """The results run folders that hold files (committed or not)."""
    return {"/".join(name.split("/")[:4]) for name in objects(where) if not name.startswith((".", "_"))}


def test_a_run_is_seen_only_once_its_manifest_is_written(bucket):
    table = pa.table({"x": [1.0, 2.5]})
    folder = lake.write_partition(bucket, lake.REWARDS.partition(run_date=DAY, run_id="20261201-aaaa"),
                                  {"candidates": table, "rewards": table})
    assert folder == bucket / "run_date=2026-12-01/run_id=20261201-aaaa"
    assert set(objects(bucket)) == {f"run_date=2026-12-01/run_id=20261201-aaaa/{t}.parquet"
                                    for t in ("candidates", "rewards")} | {
        "_manifests/run_date=2026-12-01/run_id=20261201-aaaa.json"}  # the files, then the commit
    # a writer killed before its manifest: its files are there, its run is not
    store.filesystem().pipe_file(f"{bucket.key}/run_date=2026-12-01/run_id=20261201-bbbb/candidates.parquet", b"x")
    found, foreign = lake_runs.find_runs(bucket, (lake.REWARDS,))
    [run] = found["rewards"]
    assert run.is_relative_to(store.mirror_of(bucket)) and lake.pq.read_table(run / "rewards.parquet") == table
    assert foreign == []  # readers list only the commits
    left = store.mirror_of(bucket) / ".staging-dead"  # what a reader killed while copying runs left
    (left / "run").mkdir(parents=True)
    os.utime(left, (0, 0))
    lake_runs.find_runs(bucket, (lake.REWARDS,))
    assert not left.exists()
    with pytest.raises(FileExistsError, match="already there"):  # a run is never replaced
        lake.write_partition(bucket, lake.REWARDS.partition(run_date=DAY, run_id="20261201-aaaa"), {"rewards": table})


def test_a_changed_object_is_refused_not_read(bucket):
    table = pa.table({"x": [1.0]})
    lake.write_partition(bucket, lake.REWARDS.partition(run_date=DAY, run_id="r"), {"candidates": table,
                                                                                     "rewards": table})
    key = f"{bucket.key}/run_date=2026-12-01/run_id=r/rewards.parquet"
    data = bytearray(store.filesystem().cat_file(key))
    data[-12] ^= 1  # same size, other bytes
    store.filesystem().pipe_file(key, bytes(data))
    with pytest.raises(store.LakeError, match="differ from its run's manifest"):
        lake_runs.find_runs(bucket, (lake.REWARDS,))


def test_two_writers_of_one_unit_and_night_leave_one_run(bucket):
    """Two machines score the same unit at once: each writes its run, the first to claim the unit wins, the
    other removes its run; a reader counts the unit once at any moment."""
    def write(run_id: str):
        synthetic = lake.Run(run_id, DAY, "m", "hash-m", "set", "hash-set", "v1")
        scores = pa.table({"example_id": ["e"], "score": [1.0]})
        return lake.write_results(bucket, synthetic, scores, pa.table({"score": [1.0]}))

    with ThreadPoolExecutor(4) as pool:
        written = list(pool.map(write, [f"20261201-{i:04d}" for i in range(4)]))
    assert sum(folder is not None for folder in written) == 1
    assert len(run_folders(bucket)) == 1 and len(lake_runs.find_runs(bucket, (lake.RESULTS,))[0]["results"]) == 1
    assert write("20261201-late") is None  # too late: removed
    assert len(run_folders(bucket)) == 1 and len(store.runs_of(bucket)) == 1


def test_sql_reads_the_bucket_and_nothing_else(bucket, s3, tmp_path):
    synthetic_lake(bucket / "results", {"alpha": 1.0, "beta": 0.5}, [date(2026, 11, 30), DAY], examples=4)
    store.filesystem().pipe_file("other-bucket/x.parquet", b"secret")
    con = analyst_connection(bucket / "results").con
    board = dict(read_only_query(con, "SELECT model_id, count(DISTINCT evalset) FROM leaderboard GROUP BY ALL")[1])
    assert board == {"alpha": 2, "beta": 2}  # two sets each
    own = f"{bucket}/results/evalset=bench/model=alpha/run_date=2026-12-01/run_id=20261201-synth/summary.parquet"
    assert read_only_query(con, f"SELECT count(*) FROM read_parquet('{own}')")[1][0][0] > 0  # its own prefix
    for refused in ("SELECT * FROM read_parquet('s3://other-bucket/x.parquet')",  # another bucket
                    "SELECT * FROM read_parquet('s3://lake/elsewhere/x.parquet')",  # another prefix
                    f"SELECT * FROM read_parquet('{tmp_path}/x.parquet')"):  # this machine's disk
        with pytest.raises(InputError) as e:
            read_only_query(con, refused)
        assert "\n" not in str(e.value) and "Permission" in str(e.value)
    with pytest.raises(InputError, match="only reads"):
        read_only_query(con, f"COPY (SELECT 1) TO '{bucket}/results/x.parquet'")
    # the same through the command, with the lake named by --lake
    done = run_cli("sql", "SELECT model_id, evalset FROM leaderboard ORDER BY ALL", "--lake", str(bucket),
                   env=s3["admin"] | {"PREFPIPE_HOME": str(tmp_path / "home"), "PREFPIPE_CACHE": str(tmp_path / "c2")})
    assert done.returncode == 0 and "alpha" in done.stdout and "house" in done.stdout, done


def test_httpfs_gets_the_standard_configuration_as_one_temporary_secret(s3, monkeypatch):
    """Where DuckDB's httpfs is installed, the analyst reads s3:// with it (the test above then runs through it):
    its secret comes from the same AWS variables as s3fs's, quoted, in one statement DuckDB parses."""
    for name, value in s3["admin"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "it's")
    secret = store.httpfs_secret()
    [statement] = duckdb.connect().extract_statements(secret)
    assert statement.type.name == "CREATE" and secret.startswith("CREATE TEMPORARY SECRET")
    endpoint = s3["admin"]["AWS_ENDPOINT_URL"].removeprefix("http://")
    for part in ("KEY_ID 'it''s'", f"SECRET '{s3['admin']['AWS_SECRET_ACCESS_KEY']}'", "REGION 'us-east-1'",
                 f"ENDPOINT '{endpoint}'", "USE_SSL false", "URL_STYLE 'path'"):
        assert part in secret
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata service to ask, here
    assert store.httpfs_secret() is None  # no credentials: fsspec reads (and says so if it cannot)
    installed = duckdb.connect().sql("SELECT installed FROM duckdb_extensions() WHERE extension_name = 'httpfs'")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "it's")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    assert read_buckets(duckdb.connect()) == ("httpfs" if installed.fetchall() == [(True,)] else "fsspec")


def test_a_combinations_reference_lm_goes_to_workers_through_the_bucket(bucket, model_dir, tmp_path, monkeypatch):
    from prefpipe.config import Combination
    from prefpipe.evaluation import combo_state
    from tasks.nightly import Contender, localized, publish_units

    combo = Combination("sampled", ("a",), reference_lm=str(model_dir))
    here = Contender("sampled", None, combo=combo, components={"a": (model_dir, None)})
    [sent], _ = publish_units(bucket / "results", [here], [])
    assert sent.combo.reference_lm.startswith(f"{bucket}/results/.published/models/")
    monkeypatch.setenv("PREFPIPE_CACHE", str(tmp_path / "worker-cache"))  # another machine
    there, _ = localized(sent, {"path": None})
    assert Path(there.combo.reference_lm).is_relative_to(tmp_path / "worker-cache")
    assert combo_state(there.combo, there.components) == combo_state(combo, here.components)  # one unit everywhere


def test_table_copies_are_published_to_the_bucket_and_read_back(bucket, wh, ingest):
    from helpers import annotation

    from prefpipe.tables import latest_tables, publish_tables

    ingest(annotation("p-1", 1, 2, 3), annotation("p-2", 2, 1))
    for _ in range(3):
        newest = publish_tables(wh.con, bucket / "tables")
    copy = latest_tables(bucket / "tables")
    copies = {n.split("/")[0] for n in objects(bucket / "tables") if not n.startswith("_")}
    assert copy.name == newest.name and copies == set(store.runs_of(bucket / "tables")) and len(copies) == 2
    con = analyst_connection(bucket / "results", bucket / "tables").con
    assert read_only_query(con, "SELECT count(*) FROM annotations")[1] == [(2,)]


def test_a_bucket_lake_is_configured_by_url_and_bad_urls_are_refused(monkeypatch):
    monkeypatch.setenv("PREFPIPE_LAKE", "s3://lake/team/")
    settings = Settings.from_env(home="h")
    assert settings.results == store.Bucket("s3://lake/team/results") and settings.warehouse.name == "warehouse.duckdb"
    monkeypatch.setenv("PREFPIPE_S3_TIMEOUT", "soon")
    store.filesystem.cache_clear()
    with pytest.raises(InputError, match="PREFPIPE_S3_TIMEOUT: must be a number of seconds, got 'soon'"):
        store.filesystem()
    monkeypatch.delenv("PREFPIPE_S3_TIMEOUT")
    with pytest.raises(InputError, match=r"PREFPIPE_WAREHOUSE.*only the lake can be in a bucket"):
        Settings.from_env(home="h", warehouse="s3://lake/w.duckdb")
    for bad, why in (("s3://Lake/x", "bucket name"), ("s3://lake/../x", "prefix"), ("gs://lake", "s3://"),
                     ("s3://lake/a*b", "prefix")):
        with pytest.raises(InputError, match=why):
            Settings.from_env(home="h", lake=bad)


@pytest.mark.parametrize("case", ["endpoint", "credentials", "bucket", "read-only"])
def test_a_bad_configuration_fails_in_one_line_in_bounded_time_and_writes_nothing(case, s3, bucket, monkeypatch):
    where = {"bucket": store.Bucket("s3://no-such-bucket/x")}.get(case, bucket)
    env = {"endpoint": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"},  # nothing listens there
           "credentials": {"AWS_SECRET_ACCESS_KEY": "not-the-secret-0123"},
           "read-only": s3["reader"]}.get(case, {})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store.filesystem.cache_clear()
    expected = {"endpoint": "does not answer", "credentials": "the credentials",
                "bucket": "bucket does not exist", "read-only": "read-only"}[case]
    started = time.monotonic()
    with pytest.raises(store.LakeError, match=expected) as e:
        store.check_bucket(where, write=True)
    assert time.monotonic() - started < 15 and "\n" not in str(e.value) and str(where) in str(e.value)
    assert "not-the-secret-0123" not in str(e.value) and s3["admin"]["AWS_SECRET_ACCESS_KEY"] not in str(e.value)  # no secret
    with pytest.raises(store.LakeError, match=expected.split()[-1]):  # a writer stops at its first request
        lake.write_partition(where, lake.REWARDS.partition(run_date=DAY, run_id="r"), {"rewards": pa.table({"x": [1]})})
    for name, value in s3["admin"].items():
        monkeypatch.setenv(name, value)
    store.filesystem.cache_clear()
    assert case == "bucket" or objects(bucket) == {}  # nothing half-written


WRITER = """
import os, signal, sys
import duckdb
import pyarrow as pa
from datetime import date
from pathlib import Path
from prefpipe import lake, lake_runs, published, store
where, run_id, kill = store.location(sys.argv[1]), sys.argv[2], sys.argv[3] == "kill"
fs = store.filesystem()
real = fs.pipe_file
def pipe_file(path, data, **kwargs):
    if kill and f"/{store.COMMITS}/" in path:
        os.kill(os.getpid(), signal.SIGKILL)  # every file uploaded, the manifest not yet: no cleanup runs
    return real(path, data, **kwargs)
fs.pipe_file = pipe_file
run = lake.Run(run_id, date(2026, 12, 1), "m", "hash-m", "set", "hash-set", "v1")
table = pa.table({"example_id": ["e1", "e2"], "score": [0.25, 0.75]})
print("written" if lake.write_results(where, run, table, pa.table({"score": [0.5]})) else "lost")
"""


def writer(bucket, run_id: str, kill: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(bucket), run_id, "kill" if kill else "-"],
                            stdout=subprocess.PIPE, text=True)


def visible(bucket) -> list:
    return lake_runs.find_runs(bucket, (lake.RESULTS,))[0]["results"]


def test_a_writer_killed_before_its_manifest_leaves_no_run_and_changes_nothing_else(bucket, monkeypatch):
    synthetic_lake(bucket, {"alpha": 1.0}, [DAY], examples=2, sets={"house": ("helpfulness",)})
    before = objects(bucket)
    killed = writer(bucket, "20261201-killed", kill=True)
    assert killed.wait(timeout=60) == -9
    after = objects(bucket)
    left = {name for name in after if "20261201-killed" in name}
    assert left == {f"evalset=set/model=m/run_date=2026-12-01/run_id=20261201-killed/{t}.parquet"
                    for t in ("scores", "summary")}  # uploaded, never committed
    assert {k: v for k, v in after.items() if k not in left} == before  # nothing else changed
    assert [run.parts[-4] for run in visible(bucket)] == ["evalset=house"]  # the killed run is not seen
    again = writer(bucket, "20261201-next")
    assert again.communicate(timeout=60)[0].strip() == "written"  # the next night's writer writes the unit
    assert sorted(run.parts[-4] for run in visible(bucket)) == ["evalset=house", "evalset=set"]
    assert store.sweep(bucket, 4) == [] and left <= set(objects(bucket))  # young: its writer may be at work...
    monkeypatch.setattr(store, "STALE_STAGING_S", 0)
    assert store.sweep(bucket, 4) == ["evalset=set/model=m/run_date=2026-12-01/run_id=20261201-killed"]
    assert not left & set(objects(bucket)) and len(visible(bucket)) == 2  # ...a day old: swept, nothing else


def test_two_writer_processes_racing_on_one_unit_leave_one_visible_run(bucket):
    racers = [writer(bucket, f"20261201-racer{i}") for i in range(2)]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert outcomes == ["lost", "written"]
    [run] = visible(bucket)
    assert run_folders(bucket) == {"/".join(run.parts[-4:])}


def test_a_model_is_published_once_by_its_hash_and_a_worker_gets_a_verified_copy(bucket, model_dir, tmp_path,
                                                                                 monkeypatch):
    from prefpipe.files import content_hash, folder_hash

    env = {"PREFPIPE_HOME": str(tmp_path / "home")}
    done = run_cli("models", "add", str(model_dir), "--name", "tiny", "--publish", "--lake", str(bucket), env=env)
    url = f"{bucket}/results/.published/models/{folder_hash(model_dir)}"
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == f"published {model_dir} to {url}", done
    before = objects(bucket / "results/.published")
    assert published.publish_model(bucket / "results", model_dir) == url and objects(bucket / "results/.published") == before
    monkeypatch.setenv("PREFPIPE_CACHE", str(tmp_path / "worker-cache"))  # another machine's cache
    copy = published.local_copy(url)
    assert copy.is_relative_to(tmp_path / "worker-cache") and folder_hash(copy) == folder_hash(model_dir)
    key = f"{store.Bucket(url).key}/config.json"
    store.filesystem().pipe_file(key, store.filesystem().cat_file(key).replace(b"{", b"{ ", 1))  # changed there
    monkeypatch.setenv("PREFPIPE_CACHE", str(tmp_path / "third-cache"))
    with pytest.raises(store.LakeError, match="differ from its manifest"):
        published.local_copy(url)
    refused = run_cli("models", "add", str(model_dir), "--name", "t2", "--publish", env=env)
    assert refused.returncode != 0 and "needs a lake in a bucket" in refused.stderr and "\n" not in refused.stderr.strip()
    small = first_rows(LLMBAR, 5, tmp_path / "small.jsonl")
    done = run_cli("evalset", "add", str(small), "--name", "small", "--publish", "--lake", str(bucket), env=env)
    assert done.returncode == 0, done
    url = done.stdout.splitlines()[-1].removeprefix("published to ")
    assert url.startswith(f"{bucket}/results/.published/evalsets/{content_hash(small)}/")
    assert content_hash(published.local_copy(url)) == content_hash(small)
