"""Browser tests: Playwright for Python driving the system's headless Chromium.

Playwright's own browser download is not used (it is not available everywhere this project is
tested): the tests point Playwright at an installed Chromium, found as
``$KLOUDLESS_TEST_BROWSER``, ``chromium-headless-shell`` or ``chromium`` on ``PATH``. Where
neither Playwright nor a browser is installed, every test here is skipped with the reason
(``pytest -ra`` prints it; ``make test-browser`` says how to install one). CI installs Debian's
``chromium-headless-shell`` in ``.ci/run``.

Each test gets a fresh browser profile (a new user-data-dir) and a real server on 127.0.0.1
(:class:`kloudless.server.runner.ServerThread`, a fresh data dir), plus an "application" site
on a second loopback origin (another port) that receives OAuth redirects and serves the
popup-flow page.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kloudless.server.bootstrap import Credentials
from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings

#: Chromium flags for a closed network and a root user (see the module docstring).
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]
#: Playwright's own time limit for one action or navigation, milliseconds (generous: the
#: machine may be loaded; nothing here asserts on time).
ACTION_TIMEOUT_MS = 30_000
#: The docs' screenshots: tests rewrite them only when asked (``make screenshots``), so a test run
#: leaves the checkout clean; otherwise they go to a throw-away folder (still taken and checked).
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "_static" / "screenshots"
SCREENSHOTS = (
    DOCS_SCREENSHOTS
    if os.environ.get("KLOUDLESS_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / f"kloudless-screenshots-{os.getpid()}"
)
if SCREENSHOTS != DOCS_SCREENSHOTS:
    atexit.register(shutil.rmtree, SCREENSHOTS, True)


def find_browser() -> str | None:
    """:returns: the Chromium executable to drive, or None."""
    configured = os.environ.get("KLOUDLESS_TEST_BROWSER")
    if configured:
        return configured if os.path.exists(configured) else None
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if find_browser() is None:
        return (
            "no Chromium found: install Debian's chromium-headless-shell (or chromium), or set "
            "KLOUDLESS_TEST_BROWSER to a Chromium executable; see `make test-browser`"
        )
    return None


SKIP_REASON = _skip_reason()


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    if SKIP_REASON is None:
        return
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture
def browser_context() -> Iterator[Any]:
    """A Playwright browser context on a fresh profile, closed after the test."""
    from playwright.sync_api import sync_playwright

    executable = find_browser()
    assert executable is not None
    profile_dir = tempfile.TemporaryDirectory(prefix="kloudless-browser-")
    with profile_dir as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=BROWSER_ARGS,
            viewport={"width": 1280, "height": 900},
            timeout=ACTION_TIMEOUT_MS * 2,
        )
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Any:
    """A page of :func:`browser_context`."""
    return browser_context.pages[0] if browser_context.pages else browser_context.new_page()


@dataclass
class Live:
    """The server under test."""

    base_url: str
    creds: Credentials
    thread: ServerThread

    @property
    def settings(self) -> Settings:
        return self.thread.app.settings

    @property
    def store(self) -> Any:
        return self.thread.app.store


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    from tests.dav.servers import ALLOW_LOOPBACK

    settings = Settings(
        data_dir=str(tmp_path / "data"), host="127.0.0.1", port=0, allow_upstream=ALLOW_LOOPBACK
    )
    server = ServerThread(settings)
    assert server.credentials is not None
    server.start()
    try:
        yield Live(server.base_url, server.credentials, server)
    finally:
        server.stop()


@dataclass
class AppSite:
    """The application's own web site, on a second loopback origin: it records the requests
    it receives (OAuth redirects) and serves the files it was given."""

    origin: str
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.origin + path


def _site_app(site: AppSite) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        with site.lock:
            site.requests.append(path + ("?" + query if query else ""))
        if path in site.files:
            kind, body = site.files[path]
            start_response("200 OK", [("Content-Type", kind), ("Cache-Control", "no-store")])
            return [body]
        body = b"<!doctype html><title>Callback</title><h1>Back at the application</h1>"
        start_response("200 OK", [("Content-Type", "text/html")])
        return [body]

    return app


@pytest.fixture
def app_site() -> Iterator[AppSite]:
    from tests.dav.servers import ServerThread as WsgiThread

    site = AppSite(origin="")
    runner = WsgiThread(_site_app(site))
    site.origin = f"http://127.0.0.1:{runner.port}"
    runner.thread.start()
    try:
        yield site
    finally:
        runner.stop()
