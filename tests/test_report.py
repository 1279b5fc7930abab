"""The morning report: a static site of the lake, checked as files and in a real browser (Debian's headless
Chromium, driven by Selenium through Debian's chromedriver; without them the browser tests skip, saying why)."""

from __future__ import annotations

import json
import os
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import run_cli
from hypothesis import given
from hypothesis import strategies as st

from prefpipe.analyst import analyst_connection
from prefpipe.report import MARKER, write_report
from prefpipe.report.pages import td
from prefpipe.sql import sql
from prefpipe.synth import LAKE_SETS, synthetic_lake, synthetic_registry

MODELS = {"alpha": 1.6, "beta": 1.0, "gamma": 0.4}
NIGHTS = [date(2026, 11, 27), date(2026, 11, 28)]
HOSTILE = '<b>bold</b> & "quoted"'  # a custom subset's name, shown as text
SETS = {"bench": LAKE_SETS["bench"], "house": ("helpfulness", HOSTILE)}
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


class Cells(HTMLParser):
    """The text of each table row of a page."""

    def __init__(self, page: str):
        super().__init__()
        self.rows: list[list[str]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_data(self, data):
        if self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


@pytest.fixture(scope="module")
def lake(tmp_path_factory, settings_factory):
    """3 models x 2 sets x 2 nights; beta's score on bench drops on the second night (the planted regression);
    6 of bench's 96 examples matched gamma's training data."""
    tmp = tmp_path_factory.mktemp("lake")
    settings = settings_factory(tmp)
    synthetic_lake(settings.results, MODELS, NIGHTS, sets=SETS, drops={("beta", "bench"): 1.5},
                   contaminated={("gamma", "bench"): 6})
    synthetic_registry(settings, list(MODELS))
    write_report(settings)
    return settings


def leaderboard_scores(settings) -> dict[tuple[str, str], str]:
    """(model, set) -> the headline to 4 decimals, from the analysts' leaderboard query."""
    con = analyst_connection(settings.results, settings.tables).con
    return {(r["model_id"], r["evalset"]): f"{r['score'] if r['score'] is not None else r['custom']:.4f}"
            for r in con.sql(sql("queries/leaderboard.sql")).to_arrow_table().to_pylist()}


def test_the_report_holds_every_page_and_figure(lake):
    report = lake.report
    index = (report / "index.html").read_text()
    rows = Cells(index).rows[1:]
    assert {(r[0], r[1]): r[2] for r in rows} == leaderboard_scores(lake)
    assert {r[-1].strip() for r in rows} == {"classifier"}  # the kind of model
    contamination = {(r[0], r[1]): r[8:11] for r in rows}  # examples, share, decontaminated score
    assert contamination.pop(("gamma", "bench"))[:2] == ["6", "0.0625"]
    assert all(c[:2] == ["0", "0.0000"] and c[2] == s for c, s in zip(
        contamination.values(), [r[2] for r in rows if (r[0], r[1]) != ("gamma", "bench")], strict=True))
    changes = {(r[0], r[1]): float(r[3]) for r in rows}  # scores only rise, but for the planted drop
    assert changes.pop(("beta", "bench")) < -0.02 and all(c >= 0 for c in changes.values()), rows
    for model in MODELS:
        page = (report / "models" / f"{model}.html").read_text()
        for kind in ("history", "calibration", "length"):
            assert f'src="../figures/{model}-{kind}.svg"' in page
            assert (report / "figures" / f"{model}-{kind}.svg").read_text().startswith("<?xml")
        assert "<figcaption>" in page and f"hash-{model}" in page and "<dt>loss</dt><dd>bt</dd>" in page
    regressions = Cells((report / "regressions.html").read_text()).rows[1:]
    assert regressions and {(r[0], r[1]) for r in regressions} == {("beta", "bench")}
    assert any(r[2:4] == ["score", "score"] for r in regressions)
    assert "No analyses yet" in (report / "analyses.html").read_text()
    assert (report / MARKER).is_file() and not list(report.parent.glob(".staging-*"))


@given(st.text())
def test_any_text_shows_as_itself(text):
    """A subset or set name is text, never markup: the cell's text is the name, whatever it holds."""
    assert Cells(f"<table><tr>{td(text)}</tr></table>").rows == [[text]]


def test_an_empty_lake_says_no_results_yet(settings):
    index = write_report(settings)
    assert "No results yet" in index.read_text()
    assert "No results yet" in (index.parent / "regressions.html").read_text()
    assert not list((index.parent / "models").iterdir())


def test_bad_out_is_a_one_line_error_and_nothing_is_replaced(tmp_path, settings):
    env = {"PREFPIPE_HOME": str(settings.home)}
    file = tmp_path / "report.html"
    file.write_text("mine")
    done = run_cli("report", "--out", str(file), env=env)
    assert done.returncode == 1 and done.stderr.strip() == f"prefpipe: error: --out: {file} is a file, not a folder"
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    done = run_cli("report", "--out", str(mine), env=env)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1 and "holds other files" in done.stderr
    assert (mine / "thesis.tex").read_text() == "years of work" and file.read_text() == "mine"
    done = run_cli("report", "--out", str(tmp_path / "new"), env=env)  # a new folder; then replaced whole
    assert done.returncode == 0 and done.stdout.strip().endswith(str(tmp_path / "new" / "index.html"))
    assert run_cli("report", "--out", str(tmp_path / "new"), env=env).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    (tmp_path / "to-new").symlink_to(tmp_path / "new")  # a link to an earlier report: written where it points
    (tmp_path / "empty").mkdir()
    (tmp_path / "to-empty").symlink_to(tmp_path / "empty")
    for link, target in (("to-new", "new"), ("to-empty", "empty")):
        done = run_cli("report", "--out", str(tmp_path / link), env=env)
        assert done.returncode == 0 and done.stdout.strip().endswith(str(tmp_path / target / "index.html"))
        assert (tmp_path / link).is_symlink() and (tmp_path / link / "index.html").is_file()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    done = run_cli("report", "--out", str(tmp_path / "dangling"), env=env)
    assert done.stderr == (f"prefpipe: error: --out: {tmp_path / 'dangling'} is a link to {tmp_path / 'nowhere'}, "
                           "which does not exist\n")
    for here in (".", str(Path.cwd().parent)):
        done = run_cli("report", "--out", here, env=env)
        assert done.stderr == (f"prefpipe: error: --out: {Path(here).resolve()} is the current folder or holds it: "
                               "give a folder beside it\n")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert not (tmp_path / "nowhere").exists()


# -- in a real browser ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's), with its console and network logs."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.skip(f"no {' or '.join(missing)}: the browser tests need Debian's chromium and chromium-driver "
                    "(`make test` installs them where apt-get is usable)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager never downloads a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def visible_rows(browser) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    return [[c.text for c in row.find_elements(By.TAG_NAME, "td")]
            for row in browser.find_elements(By.CSS_SELECTOR, "tbody tr")]


@pytest.mark.slow
def test_the_report_in_a_browser(lake, browser, tmp_path):
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("PREFPIPE_SCREENSHOTS", tmp_path))
    browser.get((lake.report / "index.html").as_uri())
    rows = visible_rows(browser)
    assert {(r[0], r[1]): r[2] for r in rows} == leaderboard_scores(lake)  # every model x set, to 4 decimals
    browser.save_screenshot(str(shots / "report-leaderboard.png"))

    header = browser.find_element(By.XPATH, "//th[text()='score']")
    header.click()
    scores = [float(r[2]) for r in visible_rows(browser)]
    assert scores == sorted(scores) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert [float(r[2]) for r in visible_rows(browser)] == sorted(scores, reverse=True)
    browser.find_element(By.XPATH, "//th[text()='model']").click()
    assert [r[0] for r in visible_rows(browser)] == sorted(r[0] for r in rows)

    browser.find_element(By.LINK_TEXT, "alpha").click()
    assert browser.current_url.endswith("/models/alpha.html") and browser.find_element(By.TAG_NAME, "h1").text == \
        "Model alpha"
    images = browser.find_elements(By.CSS_SELECTOR, "figure img")
    assert len(images) == 3 and all(browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
    assert any(r[1] == HOSTILE for r in visible_rows(browser))  # shown as text, not markup
    browser.save_screenshot(str(shots / "report-model.png"))

    browser.get((lake.report / "regressions.html").as_uri())
    planted = visible_rows(browser)
    assert planted and {(r[0], r[1]) for r in planted} == {("beta", "bench")}
    assert any(r[2:4] == ["score", "score"] for r in planted)
    browser.find_element(By.LINK_TEXT, "beta").click()
    assert browser.current_url.endswith("/models/beta.html")
    browser.get((lake.report / "analyses.html").as_uri())

    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []  # no console error
    requests = [json.loads(e["message"])["message"] for e in browser.get_log("performance")]
    urls = {m["params"]["request"]["url"] for m in requests if m["method"] == "Network.requestWillBeSent"}
    assert urls and all(u.startswith("file://") for u in urls), urls  # nothing leaves file://


@pytest.mark.slow
def test_an_empty_report_in_a_browser(settings, browser):
    browser.get(write_report(settings).as_uri())
    assert "No results yet" in browser.find_element(by="tag name", value="body").text
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
