"""Fixtures for the collector's tests: a PostgreSQL cluster for the session, a database per test on
each back end, a running collector, and headless Chromium.

A test that needs PostgreSQL or Chromium skips with the reason when they are missing, except under
``CI=true``, where it fails: CI installs both, and a skip there would hide a broken environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def missing(message: str) -> None:
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(message + " (CI=true forbids skipping)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Any]:
    """A PostgreSQL cluster per test module (a second of start-up each).

    Not one per session: its processes belong to the ``postgres`` user, and while any runs, the
    reader probe's tests see "processes of other users" they cannot inspect.
    """
    from labs.pgcluster import PgCluster, server_bin

    if server_bin() is None:
        missing("PostgreSQL server binaries not found: apt-get install postgresql (.ci/run does)")
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database on each back end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collector.db'}"
    return request.getfixturevalue("pg_cluster").create_database()


@pytest.fixture
def fleet(db_url: str) -> Iterator[Callable[..., Any]]:
    """Factory: start a collector in-process on ``db_url`` (settings may be overridden); a ``Fleet``."""
    from posdiag.collector.settings import Settings
    from posdiag.collector.storage import open_storage

    from labs.collectorlab import Fleet, InProcessServer

    started: list[tuple[Any, Any]] = []

    def make(**overrides: Any) -> Fleet:
        server = InProcessServer(Settings(db_url=db_url, **overrides))
        storage = open_storage(db_url)
        started.append((server, storage))
        return Fleet(server.url, storage, server)

    yield make
    for server, storage in started:
        server.stop()
        storage.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    if not os.path.exists(CHROMIUM):
        missing(f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def signed_in_page(browser: Any, url: str, operator: str, **context: Any) -> Any:
    """An operator's page, signed in on the fleet page at ``url`` and ready there; what the page reports
    as an error (an exception, a console error) is collected in ``page.errors``."""
    page = browser.new_context(**context).new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
    page.goto(url + "/signin")
    page.fill("#token", operator)
    page.click("form[action='/signin'] button")
    page.wait_for_url(url + "/")
    page.wait_for_selector("body[data-ready]")
    return page
