"""Shared fixtures, and the rule that CI never passes with its gold comparisons skipped."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gradient_flow_lab.app import workers
from gradient_flow_lab.app.main import app

# Set by .ci/run: there, a skipped gold test (PyTorch missing) fails the run instead of passing
# quietly with the engine never compared to autograd.
REQUIRE_GOLD = os.environ.get("GFL_REQUIRE_GOLD") == "1"
_gold_skipped: list[str] = []


def _is_gold_module(path: Path) -> bool:
    return path.suffix == ".py" and "pytest.mark.gold" in path.read_text(encoding="utf-8")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # pytest.importorskip at module level skips the whole module before its marks exist.
    if REQUIRE_GOLD and report.skipped and _is_gold_module(Path(str(report.fspath))):
        _gold_skipped.append(f"{report.nodeid}: {report.longrepr}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if REQUIRE_GOLD and report.skipped and "gold" in report.keywords:
        _gold_skipped.append(f"{report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _gold_skipped and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def engine_in_threads(monkeypatch) -> None:
    """The engine's work runs in threads of this process, not in worker processes, so that a
    test may replace one of its functions (app/workers.py: GFL_ENGINE_PROCESSES=0)."""
    monkeypatch.setattr(workers.engine_pool(), "size", 0)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def live_server():
    from tests.browser import LiveServer

    with LiveServer() as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.browser import launch_browser

    with playwright_api.sync_playwright() as playwright:
        chromium = launch_browser(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser page with a PageWatch at ``page.watch``; fails the test on console
    errors or requests to another host."""
    from tests.browser import PageWatch

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    new_page = context.new_page()
    new_page.watch = PageWatch(new_page)
    new_page.base_url = live_server.url
    yield new_page
    watch = new_page.watch
    context.close()
    assert not watch.errors, f"console errors: {watch.errors}"
    assert not watch.foreign_requests, f"requests left 127.0.0.1: {watch.foreign_requests}"


# --- `pytest` runs the fast suite; `pytest --all` (what .ci/run does) runs everything ---------

NOT_BY_DEFAULT = ("browser", "slow")


def pytest_addoption(parser):
    parser.addoption("--all", action="store_true", default=False,
                     help="also run the tests marked browser or slow (a real Chromium, servers "
                          "in processes of their own, a fresh install); .ci/run passes it")


def _runs_everything(config) -> bool:
    """--all, a marker expression (`-m browser`), or test files named on the command line
    (`pytest tests/test_browser_home.py`): the person asked for those tests, so they run."""
    if config.getoption("--all") or config.option.markexpr:
        return True
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return False  # testpaths: a plain `pytest`
    here = config.invocation_params.dir
    return all(not (here / arg.split("::")[0]).is_dir() for arg in config.args)


def pytest_collection_modifyitems(config, items):
    if _runs_everything(config):
        return
    kept, left_out = [], []
    for item in items:
        marked = any(item.get_closest_marker(name) for name in NOT_BY_DEFAULT)
        (left_out if marked else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
    config.stash[LEFT_OUT] = len(left_out)


LEFT_OUT = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter, config):
    if _gold_skipped:
        terminalreporter.section("gold tests skipped with GFL_REQUIRE_GOLD=1", red=True)
        for line in _gold_skipped:
            terminalreporter.line(line, red=True)
    left_out = config.stash.get(LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(
            f"{left_out} browser/slow tests not run: run `pytest --all` (or bash .ci/run) to "
            "include them")


@pytest.fixture(autouse=True)
def _fresh_result_caches() -> Iterator[None]:
    """Every test computes its own results: a result cached by an earlier test (perhaps with the
    engine patched) must not answer a later one."""
    from gradient_flow_lab.app.resultcache import result_cache
    from gradient_flow_lab.app.trainshare import training_runs

    result_cache().clear()
    training_runs().replays.clear()
    yield
    result_cache().clear()
    training_runs().replays.clear()
