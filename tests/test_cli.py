"""The command line: exit codes, one-line errors, and evaluation on an empty home."""

from __future__ import annotations

import pytest
from helpers import LLMBAR, cli, first_rows, run_cli

from prefpipe.warehouse import Warehouse

pytestmark = pytest.mark.slow


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
        "prefpipe: error: --timezone: must be an IANA time zone such as UTC, got 'Mars/Base'")
    for threshold in ("nan", "-1", "inf"):  # NaN never flags a drop
        for command in ("nightly", "report", "serve"):
            assert run_cli(command, "--threshold", threshold, env=home).stderr == (
                f"prefpipe: error: --threshold: must be a finite number of at least 0, got {float(threshold)}\n")
    assert not (tmp_path / "home").exists()  # nothing started, nothing written
    for name, value, reason in [
            ("PREFPIPE_DEDUP_PERMUTATIONS", "0", "dedup_permutations (PREFPIPE_DEDUP_PERMUTATIONS): must be at least 1"),
            ("PREFPIPE_DEDUP_BANDS", "7", "dedup_bands (PREFPIPE_DEDUP_BANDS): must divide the permutations (128)"),
            ("PREFPIPE_PREFECT_START_TIMEOUT", "nan", "PREFPIPE_PREFECT_START_TIMEOUT: must be a finite number of "
                                                     "seconds, at least 0, got nan"),
            ("PREFPIPE_PREFECT_IDLE", "soon", "PREFPIPE_PREFECT_IDLE: must be a number of seconds, got 'soon'")]:
        done = run_cli("stats", env=home | {name: value})
        assert done.stderr.startswith(f"prefpipe: error: {reason}"), (name, done.stderr)


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
    for name in ("../../x", "a\nb"):  # refused before anything is written
        done = run_cli("evalset", "add", "--from-split", "test", "--name", name, env=env)
        assert done.returncode == 1 and done.stderr.startswith("prefpipe: error: --name: must be one word")
        assert len(done.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []
    assert run_cli("models", env=env).stdout.startswith("(no models yet")  # listing makes no warehouse
    assert list(tmp_path.iterdir()) == []
    llmbar = first_rows(LLMBAR, 100, tmp_path.parent / f"{tmp_path.name}-llmbar.jsonl")
    done = run_cli("evalset", "add", str(llmbar), "--name", "llmbar", env=env)  # no ingest needed
    assert done.returncode == 0 and "llmbar: version" in done.stdout and "100 examples" in done.stdout
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
        f"prefpipe: error: {policy / 'config.json'}: a causal LM, not a reward model: to score a DPO policy, give its --reference; to score it as a "
        "generative judge, --judge")
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
