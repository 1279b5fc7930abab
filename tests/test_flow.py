"""Integration: the real ingest flow on a real DuckDB file with the real GX suite and Prefect."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import LLMBAR, PANDALM, ROOT, cli, first_rows, read_deployment, run_cli

from flows.ingest import ingest_flow
from prefpipe.processes import _parent, descendants
from prefpipe.synth import synthetic_batch
from prefpipe.warehouse import Warehouse

CONSISTENT = """
SELECT (SELECT count(*) FROM batches), (SELECT count(*) FROM annotations), (SELECT count(*) FROM responses),
       (SELECT count(*) FROM pairs), (SELECT count(*) FROM quarantine),
       (SELECT count(*) FROM pairs ANTI JOIN annotations USING (annotation_id)),
       (SELECT coalesce(sum(loaded), 0) FROM batches)"""


def one_model_one_set(settings, tmp_path: Path):
    """A warehouse with one tiny reward model and the first 20 LLMBar examples as the set `small`."""
    from prefpipe.registry import add_model, register_evalset
    from prefpipe.synth import tiny_reward_model

    small = first_rows(LLMBAR, 20,
                       tmp_path / "small.jsonl")
    with Warehouse.open(settings) as wh:
        add_model(wh, tiny_reward_model(tmp_path / "rm", positions=2048), "rm")
        register_evalset(wh, settings.home, small, "small")
    return settings


pytestmark = pytest.mark.slow


def test_flow_ingests_a_folder_and_writes_data_docs(prefect_harness, tmp_path, settings_factory):
    folder = tmp_path / "batches"
    synthetic_batch(folder / "a.jsonl", 120, seed=1)
    synthetic_batch(folder / "b.jsonl", 80, seed=2, bad_lines=0)
    settings = settings_factory(tmp_path, data_docs=True)
    first = ingest_flow([str(folder)], settings=settings)
    assert [(s.status, s.loaded, s.quarantined) for s in first] == [("loaded", 120, 3), ("loaded", 80, 0)]
    assert all(s.balanced for s in first)
    assert (settings.docs_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    again = ingest_flow([str(folder / "a.jsonl")], settings=settings)
    assert [(s.status, s.skipped) for s in again] == [("skipped", 123)]
    with Warehouse(settings.warehouse) as wh:
        batches, annotations, *_ = wh.con.execute(CONSISTENT).fetchone()
    assert (batches, annotations) == (2, 200)


def test_a_load_killed_midway_leaves_all_or_nothing_and_a_rerun_matches_a_clean_run(
        prefect_harness, tmp_path, settings_factory):
    from prefect.settings import PREFECT_API_URL

    batch = synthetic_batch(tmp_path / "big.jsonl", 40_000, seed=3)
    clean = ingest_flow([str(batch)], settings=settings_factory(tmp_path / "clean"))[0]
    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFPIPE_WAREHOUSE": str(tmp_path / "w.duckdb"),
           "PREFPIPE_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "prefpipe.cli", "ingest", str(batch)], cwd=ROOT,
                            env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # the load starts as soon as validation is done
        if "Task run 'validate" in line and "Completed" in line:
            time.sleep(0.05)
            break
    [worker] = [p for p in descendants(proc.pid) if _parent(p) == proc.pid]  # the process doing the load
    os.kill(worker, signal.SIGKILL)
    proc.wait()
    with Warehouse(tmp_path / "w.duckdb") as wh:
        batches, annotations, _responses, pairs, quarantined, orphans, loaded = wh.con.execute(CONSISTENT).fetchone()
    assert orphans == 0 and loaded == annotations
    assert (batches, annotations, pairs, quarantined) in {(0, 0, 0, 0), (1, clean.loaded, clean.pairs, clean.quarantined)}
    rerun = cli("ingest", str(batch), env=env)
    assert rerun.returncode == 0, rerun.stderr
    with Warehouse(tmp_path / "w.duckdb") as wh:
        batches, annotations, _responses, pairs, quarantined, orphans, loaded = wh.con.execute(CONSISTENT).fetchone()
    assert (batches, annotations, pairs, quarantined) == (1, clean.loaded, clean.pairs, clean.quarantined)


def test_a_folder_is_ingested_file_by_file_and_every_outcome_is_reported(prefect_harness, tmp_path):
    import gzip

    from prefect.settings import PREFECT_API_URL

    folder = tmp_path / "batches"
    synthetic_batch(folder / "a.jsonl", 50, seed=1, bad_lines=0)
    whole = gzip.compress(synthetic_batch(tmp_path / "b.jsonl", 30, seed=2).read_bytes())
    (folder / "b.jsonl.gz").write_bytes(whole[: len(whole) // 2])  # a transfer cut short
    synthetic_batch(folder / "c.jsonl", 40, seed=3, bad_lines=0)
    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFPIPE_HOME": str(tmp_path / "home")}
    done = cli("ingest", str(folder), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert done.stderr.splitlines() == [f"prefpipe: error: {folder / 'b.jsonl.gz'}: truncated gzip: Compressed file "
                                        "ended before the end-of-stream marker was reached"]
    outcomes = [line.split()[:4] for line in done.stdout.splitlines() if line.startswith(str(folder))]
    assert outcomes == [[str(folder / "a.jsonl"), "loaded", "50", "50"], [str(folder / "b.jsonl.gz"), "failed", "0", "0"],
                        [str(folder / "c.jsonl"), "loaded", "40", "40"]]
    published = cli("sql", "SELECT count(*) AS n FROM annotations", "--format", "csv", env=env)
    assert published.stdout.splitlines() == ["n", "90"]  # the copies hold what was committed


def test_a_second_writer_waits_then_says_the_warehouse_is_busy(tmp_path):
    path = tmp_path / "w.duckdb"
    with Warehouse(path):
        started = time.monotonic()
        result = cli("stats", "--warehouse", str(path), env={"PREFPIPE_LOCK_TIMEOUT": "1.5"})
        waited = time.monotonic() - started
    assert result.returncode == 1
    assert "warehouse is busy" in result.stderr and "waited 1.5 s" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and waited >= 1.5
    assert cli("stats", "--warehouse", str(path)).returncode == 0  # the file is fine afterwards


def test_cli_exit_codes_and_one_line_errors(tmp_path):
    for command in ([], ["ingest"], ["stats"], ["demo"]):
        assert run_cli(*command, "--help").returncode == 0
    usage = run_cli("ingest", "--no-such-flag", "x")
    assert usage.returncode == 2
    missing = cli("ingest", str(tmp_path / "nope.jsonl"), "--warehouse", str(tmp_path / "w.duckdb"))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [f"prefpipe: error: {tmp_path / 'nope.jsonl'}: no such file or folder"]
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt_id,text\np,x\n")
    wrong = cli("ingest", str(bad), "--warehouse", str(tmp_path / "w.duckdb"))
    assert wrong.returncode == 1
    assert f"prefpipe: error: {bad}: missing column(s) prompt, response_id" in wrong.stderr
    assert "Traceback" not in missing.stderr
    empty = run_cli("stats", "--warehouse", str(tmp_path / "none.duckdb"))
    assert empty.returncode == 1 and "no warehouse yet" in empty.stderr
    for limit in ("lots", "1GB'; CREATE TABLE pwned AS SELECT 1; --"):  # bound, never pasted into the SQL
        bad_memory = run_cli("stats", "--warehouse", str(tmp_path / "w.duckdb"), env={"PREFPIPE_MEMORY_LIMIT": limit})
        assert bad_memory.returncode == 1
        assert bad_memory.stderr.strip().splitlines() == [
            f"prefpipe: error: memory_limit (PREFPIPE_MEMORY_LIMIT): must be a size such as 2.5GB, got {limit!r}"]
    with Warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'pwned'").fetchone() == (0,)
    home = {"PREFPIPE_HOME": str(tmp_path / "home")}
    assert run_cli("nightly", "--task-runner", "ray", env=home).stderr.strip() == (
        "prefpipe: error: --task-runner: must be one of threads, dask, got 'ray'")
    assert run_cli("serve", "--timezone", "Mars/Base", env=home).stderr.strip() == (
        'prefpipe: error: --timezone: Invalid timezone: "Mars/Base" (specify in IANA tzdata format, for example, '
        "America/New_York)")


def test_cli_ingests_a_public_format_then_shows_agreement_and_exports(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    pandalm = PANDALM
    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFPIPE_HOME": str(tmp_path)}
    ingested = cli("ingest", str(pandalm), env=env)
    assert ingested.returncode == 0, ingested.stderr
    assert "2997" in ingested.stdout and "text 18" in ingested.stdout
    stats = run_cli("stats", env=env)
    assert stats.returncode == 0, stats.stderr
    assert "Agreement where a prompt was judged more than once" in stats.stdout and "fleiss_kappa" in stats.stdout
    assert "annotator1" in stats.stdout
    exported = run_cli("export", str(tmp_path / "train.parquet"), "--split", "all", env=env)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == f"{tmp_path / 'train.parquet'}: 2657 pairs (all)"
    wrong = run_cli("export", str(tmp_path / "x.csv"), env=env)
    assert wrong.returncode == 1 and wrong.stderr.strip() == f"prefpipe: error: {tmp_path / 'x.csv'}: the output must end in .jsonl or .parquet"


def test_train_flow_registers_the_model_and_publishes_its_metrics(prefect_harness, tmp_path, settings_factory):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.train import train_flow
    from prefpipe.errors import InputError
    from prefpipe.registry import list_models
    from prefpipe.synth import tiny_reward_model
    from prefpipe.train import TrainConfig

    settings = settings_factory(tmp_path, splits=(0.7, 0.15, 0.15))
    config = TrainConfig(base=str(tiny_reward_model(tmp_path / "tiny")), lr=3e-3, epochs=2, max_tokens=2048)
    with pytest.raises(InputError, match="no training pairs: ingest annotations first"):
        train_flow(config, settings=settings, name="empty")
    assert not (settings.models / "empty").exists()

    ingest_flow([str(synthetic_batch(tmp_path / "batch.jsonl", 200, bad_lines=0))], settings=settings)
    umask = os.umask(0o022)
    try:
        result = train_flow(config, settings=settings, name="tiny-bt", progress=False)
    finally:
        os.umask(umask)
    run_dir = Path(result["path"])
    for path in (run_dir, *run_dir.iterdir()):  # others (analysts, Dask workers) can read the model
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    assert result["metrics"]["test"]["accuracy"] > 0.7
    with Warehouse.open(settings) as wh:
        columns, rows = list_models(wh)
        record = wh.con.execute("SELECT pairs, data_hash, len(batch_ids), active, hyperparameters ->> 'loss' "
                                "FROM models").fetchall()
    assert [r[columns.index("model_id")] for r in rows] == ["tiny-bt"]
    assert rows[0][columns.index("test_accuracy")] == round(result["metrics"]["test"]["accuracy"], 3)
    snapshot = result["figures"]
    assert record == [(snapshot["comparisons"] // 2, record[0][1], 1, True, "bt")]  # 2 epochs over the pairs
    with pytest.raises(InputError, match="already exists"):
        train_flow(config, settings=settings, name="tiny-bt")
    two = train_flow(config, settings=settings, name="tiny-2", processes=2, progress=False)  # torchrun, gloo
    assert two["figures"]["processes"] == 2 and two["metrics"]["test"]["accuracy"] > 0.7

    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["reward-model-metrics",
                                                                        "reward-model-calibration"])))}
    assert artifacts["reward-model-calibration"].data.startswith("data:image/png;base64,")
    table = artifacts["reward-model-metrics"].data
    assert "validation" in table and "ann-0" in table


def test_cli_train_errors_are_one_line(tmp_path):
    env = {"PREFPIPE_HOME": str(tmp_path)}
    done = run_cli("train", env=env)
    assert done.returncode == 1 and done.stderr.strip().endswith("no warehouse yet; run `prefpipe ingest` first")
    (tmp_path / "warehouse.duckdb").touch()
    done = run_cli("train", "--loss", "hinge", env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == "prefpipe: error: --loss: must be one of bt, bt-margin, plackett-luce, got 'hinge'"
    done = run_cli("train", "--resume", "nothing-here", env=env)
    assert done.returncode == 1 and "no training run of that name" in done.stderr
    done = run_cli("train", "--name", "../escape", env=env)
    assert done.stderr.strip().startswith("prefpipe: error: --name: must be one word") and done.returncode == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]


def test_cli_evaluates_models_trained_elsewhere_on_an_empty_home(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    from prefpipe.synth import tiny_reward_model

    env = {"PREFPIPE_HOME": str(tmp_path)}
    llmbar = LLMBAR
    for name in ("../../x", "a\nb"):  # refused before anything is written
        done = run_cli("evalset", "add", "--from-split", "test", "--name", name, env=env)
        assert done.returncode == 1 and done.stderr.startswith("prefpipe: error: --name: must be one word")
        assert len(done.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []
    assert run_cli("models", env=env).stdout.startswith("(no models yet")  # listing makes no warehouse
    assert list(tmp_path.iterdir()) == []
    done = run_cli("evalset", "add", str(llmbar), "--name", "llmbar", env=env)  # no ingest needed
    assert done.returncode == 0 and "llmbar: version" in done.stdout and "419 examples" in done.stdout
    assert "unchanged, already registered" in run_cli("evalset", "add", str(llmbar), "--name", "llmbar", env=env).stdout
    assert "llmbar" in run_cli("evalset", "list", env=env).stdout
    done = run_cli("evalset", "add", "--name", "x", env=env)
    assert done.returncode == 1 and done.stderr.strip() == "prefpipe: error: give a file or --from-split SPLIT (one of them)"

    folder = tiny_reward_model(tmp_path / "m")
    assert run_cli("models", "add", str(folder), "--name", "outside", env=env).returncode == 0
    policy, reference = (tiny_reward_model(tmp_path / n, "causal-lm", seed=s) for n, s in (("policy", 1), ("ref", 2)))
    done = run_cli("models", "add", str(policy), "--reference", str(reference), "--name", "dpo", env=env)
    assert done.returncode == 0 and done.stdout.strip() == f"dpo: registered ({policy}, DPO policy against {reference}), active"
    done = run_cli("models", "add", str(policy), "--name", "no-reference", env=env)
    assert done.returncode == 1 and done.stderr.strip() == (
        f"prefpipe: error: {policy / 'config.json'}: a causal LM, not a reward model: to score a DPO policy, give its --reference")
    done = run_cli("models", "add", str(tmp_path / "gone"), "--name", "gone", env=env)
    assert done.stderr.strip() == f"prefpipe: error: {tmp_path / 'gone'}: no such model folder"
    done = run_cli("models", "add", str(folder), "--name", "dpo", env=env)  # the id is taken: its record is kept
    assert done.returncode == 1 and "dpo: --name: already registered" in done.stderr and "--replace" in done.stderr
    nightly = cli("nightly", env=env | {"PREFECT_API_URL": PREFECT_API_URL.value()})
    assert nightly.returncode == 0, nightly.stdout[-2000:] + nightly.stderr
    assert nightly.stderr == ""  # Prefect's run log is the command's output
    board = run_cli("sql", "SELECT model_id, value FROM leaderboard WHERE name = 'Chat Hard'", "--format", "csv", env=env)
    assert sorted(line.split(",")[0] for line in board.stdout.splitlines()) == ["dpo", "model_id", "outside"]
    assert run_cli("models", "deactivate", "dpo", env=env).returncode == 0
    assert run_cli("models", "deactivate", "outside", env=env).returncode == 0
    listed = run_cli("models", env=env).stdout
    assert "outside" in listed and "False" in listed
    done = run_cli("sql", "SELECT model_id, active FROM models", "--format", "csv", env=env)  # the published copy
    assert sorted(done.stdout.splitlines()) == ["dpo,False", "model_id,active", "outside,False"]
    done = run_cli("models", "deactivate", "nobody", env=env)
    assert done.returncode == 1 and "no such model in the registry" in done.stderr


def test_nightly_flow_scores_every_unit_skips_reruns_isolates_failures_and_names_regressions(
        prefect_harness, tmp_path, settings_factory):
    from datetime import date

    import pyarrow as pa
    import pyarrow.parquet as pq

    from flows.nightly import nightly_flow
    from prefpipe.errors import PrefpipeError
    from prefpipe.ingest import ingest_file
    from prefpipe.registry import add_model, register_evalset, set_active
    from prefpipe.synth import tiny_reward_model

    settings = settings_factory(tmp_path)
    llmbar = LLMBAR
    small = first_rows(llmbar, 40, tmp_path / "small.jsonl")
    models = {name: tiny_reward_model(tmp_path / name, seed=seed, positions=2048) for name, seed in (("a", 1), ("b", 2))}
    with Warehouse.open(settings) as wh:
        ingest_file(wh, synthetic_batch(tmp_path / "batch.jsonl", 60), settings)  # for the throughput query
        for name, folder in models.items():
            add_model(wh, folder, name)
        register_evalset(wh, settings.home, llmbar, "llmbar")
        register_evalset(wh, settings.home, small, "small")

    def run_folders():
        return sorted(str(p.parent.relative_to(settings.results)) for p in settings.results.rglob("summary.parquet"))

    first = nightly_flow(settings, run_date=date(2026, 11, 27))
    assert len(run_folders()) == 4 and len(first["leaderboard"]) == 4
    assert {(r["model_id"], r["evalset"]) for r in first["leaderboard"]} == {(m, s) for m in "ab"
                                                                            for s in ("llmbar", "small")}
    second = nightly_flow(settings, run_date=date(2026, 11, 27))
    assert all(v.startswith("skipped") for v in second["units"].values()) and len(run_folders()) == 4

    # analysts: every example query answers; a statement that would write is refused
    env = {"PREFPIPE_HOME": str(settings.home)}
    for query in sorted((ROOT / "sql" / "queries").glob("*.sql")):
        done = run_cli("sql", "-f", str(query), "--format", "csv", env=env)
        assert done.returncode == 0, (query.name, done.stderr)
        assert len(done.stdout.splitlines()) > 1, query.name  # a header and rows
    weeks = json.loads(run_cli("sql", "-f", str(ROOT / "sql" / "queries" / "annotation_throughput.sql"), "--format", "json", env=env).stdout)
    assert [w["week"] for w in weeks] == ["2026-11-02"] and weeks[0]["annotations"] == 60
    models_in_sql = run_cli("sql", "SELECT model_id, active FROM models ORDER BY model_id", "--format", "csv", env=env)
    assert models_in_sql.stdout.splitlines() == ["model_id,active", "a,True", "b,True"]
    board = json.loads(run_cli("sql", "SELECT * FROM leaderboard WHERE level = 'subset'", "--format", "json",
                           env=env).stdout)
    small_subsets = {json.loads(line)["subset"] for line in small.read_text().splitlines()}
    assert len(board) == 2 * (5 + len(small_subsets))  # two models x (the LLMBar subsets + the small set's)
    done = run_cli("sql", "DELETE FROM history", env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == ("prefpipe: error: sql: prefpipe sql only reads: a DELETE statement would change "
                                   "something; use SELECT (or EXPLAIN SELECT)")

    (models["b"] / "model.safetensors").write_bytes(b"not a model")  # a corrupted model fails only its units
    with pytest.raises(PrefpipeError, match=r"2 unit\(s\) failed: b on llmbar: .*; b on small: "):
        nightly_flow(settings, run_date=date(2026, 11, 27))
    assert len(run_folders()) == 4  # a's results exist (skipped); b wrote nothing

    # a better result "last night" makes tonight's identical scores a regression
    with Warehouse.open(settings) as wh:
        set_active(wh, "b", False)
    [real] = [f for f in run_folders() if f.startswith("evalset=small/model=a/")]
    night = settings.results / "evalset=small" / "model=a" / "run_date=2026-11-28" / "run_id=fake"
    night.mkdir(parents=True)
    summary = pq.read_table(settings.results / real / "summary.parquet").to_pylist()
    pq.write_table(pa.Table.from_pylist([r | {"value": 1.0, "run_date": date(2026, 11, 28), "run_id": "fake"}
                                         for r in summary]), night / "summary.parquet")
    (night / "scores.parquet").write_bytes((settings.results / real / "scores.parquet").read_bytes())
    with pytest.raises(PrefpipeError, match=r"2 regression\(s\) beyond 0.02: a on small Chat Hard -0\.\d+; a on small llmbar-natural"):
        nightly_flow(settings, force=True, run_date=date(2026, 11, 29))


def test_nightly_units_run_on_dask_a_local_cluster_or_a_scheduler_address(prefect_harness, tmp_path, settings_factory):
    from datetime import date

    import pyarrow.parquet as pq
    from distributed import Client, LocalCluster

    from flows.nightly import nightly_flow
    from prefpipe.errors import InputError
    from prefpipe.registry import add_model, register_evalset
    from prefpipe.synth import tiny_reward_model

    settings = settings_factory(tmp_path)
    llmbar = LLMBAR
    small = first_rows(llmbar, 30, tmp_path / "small.jsonl")
    with Warehouse.open(settings) as wh:
        add_model(wh, tiny_reward_model(tmp_path / "rm", positions=2048), "rm")
        add_model(wh, tiny_reward_model(tmp_path / "policy", "causal-lm", seed=1, positions=2048), "dpo",
                  reference=tiny_reward_model(tmp_path / "reference", "causal-lm", seed=2, positions=2048))
        register_evalset(wh, settings.home, small, "small")

    def margins(day: str) -> dict:
        found = {}
        for path in settings.results.glob(f"evalset=small/model=*/run_date={day}/*/scores.parquet"):
            rows = pq.read_table(path).to_pylist()
            found[rows[0]["model_id"]] = [round(r["margin"], 5) for r in rows]
        return found

    local = nightly_flow(settings, task_runner="dask", run_date=date(2026, 11, 27))  # a local cluster
    assert sorted(local["units"]) == ["dpo on small", "rm on small"]
    assert not any(v.startswith("skipped") for v in local["units"].values())
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None, processes=True) as cluster:
        nightly_flow(settings, force=True, task_runner="dask", dask_address=cluster.scheduler_address,
                     run_date=date(2026, 11, 28))
        with Client(cluster) as client:  # the units went through this cluster's scheduler
            assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter) > 0
    first, second = margins("2026-11-27"), margins("2026-11-28")
    assert sorted(first) == ["dpo", "rm"] and first == second and len(first["rm"]) == 30
    with pytest.raises(InputError, match=r"--task-runner: must be one of threads, dask, got 'ray'"):
        nightly_flow(settings, task_runner="ray")
    with pytest.raises(InputError, match=r"--dask-address: a Dask scheduler address needs --task-runner dask"):
        nightly_flow(settings, dask_address="tcp://127.0.0.1:8786")


def test_serve_starts_a_local_server_and_runs_the_nightly_deployment_on_its_schedule(tmp_path, settings_factory):
    import socket

    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    settings = one_model_one_set(settings_factory(tmp_path), tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {
        "PREFECT_HOME": str(tmp_path / "prefect"), "PREFPIPE_HOME": str(settings.home),
        "PREFPIPE_WAREHOUSE": str(settings.warehouse)}
    assert run_cli("serve", "--cron", "not a cron", env=env).stderr.strip() == (
        'prefpipe: error: --cron: Invalid cron string: "not a cron"')
    serve = subprocess.Popen([sys.executable, "-m", "prefpipe.cli", "serve", "--cron", "5 3 * * *", "--timezone",
                              "Europe/Paris", "--port", str(port)], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deployment = read_deployment(url, "nightly/nightly", wait_s=150)
        [schedule] = deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == ("5 3 * * *", "Europe/Paris",
                                                                                         True)
        assert deployment.parameters == {"threshold": 0.02, "task_runner": "threads", "dask_address": None}
        with temporary_settings({PREFECT_API_URL: url}):
            run = run_deployment("nightly/nightly", timeout=240)  # what the schedule does at 03:05
        assert run.state.is_completed(), run.state
        assert len(list(settings.results.glob("evalset=small/model=rm/run_date=*/*/scores.parquet"))) == 1
    finally:
        serve.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            output = serve.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired as e:
            serve.kill()
            pytest.fail(f"serve did not stop 60 s after Ctrl-C; its output ends: {(e.output or b'')[-3000:]!r}")
    assert serve.returncode == 0, output
    assert "stopped; the schedule is paused until the next `prefpipe serve`" in output
    assert "Traceback" not in output
    with socket.socket() as s:  # the server it started is gone
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_prefect_yaml_deploys_the_same_nightly_flow_to_a_work_pool(prefect_harness):
    import yaml
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    env = {"PREFECT_API_URL": url}
    assert subprocess.run([sys.executable, "-m", "prefect", "work-pool", "create", "prefpipe", "--type", "process"],
                          cwd=ROOT, env=os.environ | env, capture_output=True, timeout=120).returncode == 0
    done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=ROOT,
                          env=os.environ | env | {"PWD": str(ROOT)}, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    deployment = read_deployment(url, "nightly/nightly")
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"][0]
    assert deployment.work_pool_name == "prefpipe" and deployment.entrypoint == "flows/nightly.py:nightly_flow"
    assert deployment.schedules[0].schedule.cron == "0 2 * * *"  # serve's default
    assert deployment.parameters == declared["parameters"] == {"threshold": 0.02, "task_runner": "threads",
                                                               "dask_address": None}
    assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]


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
