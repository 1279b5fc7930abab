"""Fixtures shared by the tests: one Prefect server for the test processes, settings on a temporary home, a
warehouse, ingest, a home for the analyses."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest
from helpers import LLMBAR, first_rows, write_batch

from prefpipe.ingest import ingest_file  # the package sets no telemetry, no hub (prefpipe.OFFLINE)
from prefpipe.settings import Settings
from prefpipe.warehouse import Warehouse

# a command run in a subprocess without the test server starts its home's shared Prefect server: let it stop
# soon after, rather than idle for a minute beside the other tests
os.environ.setdefault("PREFPIPE_PREFECT_IDLE", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):  # three workers share two cores: one torch thread each, in-process
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One Prefect server for every test that runs a real flow, shared by the test processes: prefpipe's own
    shared server (prefpipe.prefect_server) of a home in the run's temporary folder, started from the migrated
    template database by the first worker that needs it and stopped once no worker holds it. Set in this process's
    Prefect settings only: a subprocess gets it where a test passes PREFECT_API_URL on."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefpipe.prefect_server import prefect_api

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "prefect-home"
    saved = os.environ.pop("PREFECT_API_URL", None)
    try:
        with prefect_api(shared, start_timeout_s=300, idle_s=2) as url:
            os.environ.pop("PREFECT_API_URL")
            with temporary_settings({PREFECT_API_URL: url}):
                yield
    finally:
        if saved is not None:
            os.environ["PREFECT_API_URL"] = saved


@pytest.fixture
def nightly_deployment(prefect_harness):
    """The shared server's URL for a test that creates the `nightly/nightly` deployment, deleted after it. Such
    tests share one name on one server, so they also carry `helpers.ONE_DEPLOYMENT` (one worker, one at a time)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    yield PREFECT_API_URL.value()
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        client.delete_deployment(client.read_deployment_by_name("nightly/nightly").id)


@pytest.fixture(scope="session")
def settings_factory():
    def make(tmp: Path, **overrides) -> Settings:
        return Settings.from_env(**{"home": tmp / "home", "warehouse": tmp / "warehouse.duckdb",
                                    "data_docs": False, "max_quarantined_share": 1.0} | overrides)
    return make


@pytest.fixture
def settings(tmp_path: Path, settings_factory) -> Settings:
    return settings_factory(tmp_path)


@pytest.fixture
def wh(settings: Settings):
    with Warehouse.open(settings) as warehouse:
        yield warehouse


@pytest.fixture
def ingest(wh: Warehouse, settings: Settings, tmp_path: Path):
    """Write the given lines as a batch file and ingest it; returns the summary."""
    counter = iter(range(10**6))

    def run(*lines: dict | str, fmt: str = "auto", **overrides):
        path = write_batch(tmp_path / f"batch-{next(counter)}.jsonl", *lines)
        summary = ingest_file(wh, path, settings.with_(**overrides) if overrides else settings, fmt)
        assert summary.balanced, summary
        return summary

    return run


HOME_SPLITS = (0.6, 0.1, 0.3)


@pytest.fixture(scope="session")
def home_template(tmp_path_factory, settings_factory) -> Path:
    """The analyses' home, built once per test process (an ingest and two models cost 15-25 s on a busy machine):
    a warehouse with a synthetic batch, two tiny reward models (helpful, harmless) and a small evaluation set."""
    from prefpipe.registry import add_model, register_evalset
    from prefpipe.synth import synthetic_batch, tiny_reward_model

    root = tmp_path_factory.mktemp("home-template")
    settings = settings_factory(root, splits=HOME_SPLITS)
    with Warehouse.open(settings) as wh:
        ingest_file(wh, synthetic_batch(root / "b.jsonl", 120, bad_lines=0), settings)
        for name, seed in (("helpful", 1), ("harmless", 2)):
            add_model(wh, tiny_reward_model(root / name, seed=seed, positions=2048), name)
        register_evalset(wh, settings.home, first_rows(LLMBAR, 20, root / "small.jsonl"), "small")
    return root


@pytest.fixture
def home(prefect_harness, home_template, tmp_path, settings_factory, monkeypatch):
    """A copy of the analyses' home (`home_template`) in this test's folder, set in the environment. The registry
    names the template's models and set, which no test changes."""
    shutil.copytree(home_template, tmp_path, dirs_exist_ok=True)
    settings = settings_factory(tmp_path, splits=HOME_SPLITS)
    for name in ("home", "warehouse"):
        monkeypatch.setenv(f"PREFPIPE_{name.upper()}", str(getattr(settings, name)))
    return settings


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny reward model (BERT-like, random weights, 2048 positions), once per test module."""
    from prefpipe.synth import tiny_reward_model

    return tiny_reward_model(tmp_path_factory.mktemp("model") / "tiny", positions=2048)


@pytest.fixture(scope="session")
def s3():
    """One S3-compatible server for the session (moto's, on a loopback port, real HTTP), with IAM enforced
    once set up: buckets `lake` and `other-bucket`, a user who may do anything (`admin`) and one who may
    only read (`reader`). Yields the environment of each user (AWS_ENDPOINT_URL and keys)."""
    import json
    import logging

    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    base = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_DEFAULT_REGION": "us-east-1"}
    setup = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup", "endpoint_url": base["AWS_ENDPOINT_URL"],
             "region_name": "us-east-1"}
    iam, s3 = boto3.client("iam", **setup), boto3.client("s3", **setup)
    for bucket in ("lake", "other-bucket"):
        s3.create_bucket(Bucket=bucket)
    users = {}
    for user, actions in (("admin", ["s3:*"]), ("reader", ["s3:Get*", "s3:List*"])):
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="lake", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        users[user] = base | {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    requests.post(f"{base['AWS_ENDPOINT_URL']}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    yield users
    server.stop()


@pytest.fixture
def bucket(s3, monkeypatch, tmp_path):
    """The admin's environment set for this process, a cache of its own, and a fresh prefix of bucket `lake`."""
    import uuid

    from prefpipe import store

    for name, value in s3["admin"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PREFPIPE_CACHE", str(tmp_path / "cache"))
    store.filesystem.cache_clear()
    yield store.Bucket(f"s3://lake/t-{uuid.uuid4().hex[:8]}")
    store.filesystem.cache_clear()
