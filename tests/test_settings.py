"""Settings (prefpipe.settings): defaults < PREFPIPE_* variables < explicit overrides; every path follows the
home unless set; every bad value is a one-line error naming its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefpipe.errors import InputError
from prefpipe.settings import PATHS, TASK_RUNNERS, Settings, check_threshold


def test_every_path_follows_the_home_unless_it_is_set(monkeypatch, tmp_path):
    for name in PATHS:
        monkeypatch.delenv(f"PREFPIPE_{name.upper()}", raising=False)
    monkeypatch.setenv("PREFPIPE_HOME", str(tmp_path / "team"))
    monkeypatch.setenv("PREFPIPE_RESULTS", str(tmp_path / "lake"))
    settings = Settings.from_env()
    assert settings.results == tmp_path / "lake"
    assert {name: getattr(settings, name) for name in PATHS if name != "results"} == {
        "home": tmp_path / "team", "lake": tmp_path / "team", "warehouse": tmp_path / "team" / "warehouse.duckdb",
        "models": tmp_path / "team" / "models", "tables": tmp_path / "team" / "tables",
        "rewards": tmp_path / "team" / "rewards", "analysis": tmp_path / "team" / "analysis",
        "report": tmp_path / "team" / "report"}
    assert Settings.from_env(home=tmp_path / "mine", results=None).models == tmp_path / "mine" / "models"  # None: not given


def test_variables_override_defaults_and_flags_override_variables(monkeypatch):
    monkeypatch.setenv("PREFPIPE_LOCK_TIMEOUT", "5")
    monkeypatch.setenv("PREFPIPE_DEDUP_THRESHOLD", "0.9")
    settings = Settings.from_env(lock_timeout_s=7.5)
    assert (settings.lock_timeout_s, settings.dedup.threshold, settings.dedup.ngram) == (7.5, 0.9, Settings.dedup_ngram)
    assert settings.task_runner == TASK_RUNNERS[0] == "threads" and settings.demo_annotations == 400


@pytest.mark.parametrize("variable,value,message", [
    ("PREFPIPE_LOCK_TIMEOUT", "soon", "PREFPIPE_LOCK_TIMEOUT: must be a number of seconds, got 'soon'"),
    ("PREFPIPE_PREFECT_IDLE", "-1", "PREFPIPE_PREFECT_IDLE: must be a finite number of seconds, at least 0, got -1.0"),
    ("PREFPIPE_DEDUP_NGRAM", "2.5", "PREFPIPE_DEDUP_NGRAM: must be a whole number, got '2.5'"),
])
def test_a_bad_variable_is_a_one_line_error_naming_it(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(InputError) as error:
        Settings.from_env()
    assert str(error.value) == message


def test_bad_values_given_directly_are_refused():
    for values, field in (({"splits": (0.5, 0.5, 0.5)}, "splits"), ({"max_responses": 1}, "max_responses"),
                          ({"task_runner": "ray"}, "--task-runner"), ({"max_quarantined_share": 2}, "max_quarantined")):
        with pytest.raises(InputError, match=f"^{field}"):
            Settings(**values).check()
    assert check_threshold(0) == 0.0
    for bad in (float("nan"), -0.1, float("inf"), True):
        with pytest.raises(InputError, match=r"^--threshold: must be a finite number of at least 0"):
            check_threshold(bad)
    assert isinstance(Settings().home, Path)


def test_the_lake_takes_results_rewards_analyses_and_table_copies_along(monkeypatch, tmp_path):
    for name in PATHS:
        monkeypatch.delenv(f"PREFPIPE_{name.upper()}", raising=False)
    monkeypatch.setenv("PREFPIPE_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("PREFPIPE_REWARDS", str(tmp_path / "mine"))  # a path of its own still wins
    settings = Settings.from_env(home=tmp_path / "home")
    assert (settings.results, settings.analysis, settings.tables, settings.rewards) == (
        tmp_path / "lake" / "results", tmp_path / "lake" / "analysis", tmp_path / "lake" / "tables", tmp_path / "mine")
    assert (settings.warehouse, settings.models, settings.report) == (
        tmp_path / "home" / "warehouse.duckdb", tmp_path / "home" / "models", tmp_path / "home" / "report")
    assert Settings.from_env(home=tmp_path / "home", lake=tmp_path / "flag").results == tmp_path / "flag" / "results"
