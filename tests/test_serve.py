"""The nightly evaluation on a schedule: `prefpipe serve` with its own server, and prefect.yaml on a work pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import ONE_DEPLOYMENT, ROOT, one_model_one_set, read_deployment, run_cli

from prefpipe.settings import Settings

pytestmark = pytest.mark.slow


def test_serve_starts_a_local_server_and_runs_the_nightly_deployment_on_its_schedule(tmp_path, settings_factory):
    import socket

    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    settings = one_model_one_set(settings_factory(tmp_path), tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {
        "PREFPIPE_PREFECT_IDLE": "1", "PREFPIPE_HOME": str(settings.home),
        "PREFPIPE_WAREHOUSE": str(settings.warehouse)}
    assert run_cli("serve", "--cron", "not a cron", env=env).stderr.strip() == (
        "prefpipe: error: --cron: must be a cron expression such as '0 2 * * *', got 'not a cron'")
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
    deadline = time.monotonic() + 20  # the shared server it started stops once unused (PREFPIPE_PREFECT_IDLE)
    while time.monotonic() < deadline and not port_closed(port):
        time.sleep(0.5)
    assert port_closed(port)


def port_closed(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@ONE_DEPLOYMENT
def test_prefect_yaml_deploys_the_same_nightly_flow_to_a_work_pool(nightly_deployment):
    import yaml

    url = nightly_deployment
    env = {"PREFECT_API_URL": url}
    assert subprocess.run([sys.executable, "-m", "prefect", "work-pool", "create", "prefpipe", "--type", "process"],
                          cwd=ROOT, env=os.environ | env, capture_output=True, timeout=120).returncode == 0
    done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=ROOT,
                          env=os.environ | env | {"PWD": str(ROOT)}, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    deployment = read_deployment(url, "nightly/nightly")
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"][0]
    assert deployment.work_pool_name == "prefpipe" and deployment.entrypoint == "flows/nightly.py:nightly_flow"
    defaults = Settings()  # prefect.yaml is data: it must say what Settings says
    assert (deployment.schedules[0].schedule.cron, deployment.schedules[0].schedule.timezone) == (
        defaults.nightly_cron, defaults.nightly_timezone)
    assert deployment.parameters == declared["parameters"] == {"threshold": defaults.regression_threshold,
                                                               "task_runner": "threads", "dask_address": None}
    assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
