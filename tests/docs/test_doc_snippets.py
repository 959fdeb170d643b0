"""Run every Python code block of the documentation against a real local server.

Each ``.. code-block:: python`` in ``docs/*.rst`` is one test, run in page order. The blocks of a
page share one namespace, so a later block can use what an earlier one defined. A page starts with
these names already set (the pages say where they come from, e.g. "an ``account`` made as in
Accounts and authentication"):

``account``
    a :class:`kloudless.Account` for a fresh ``local`` account of its own, with a bearer token;
``token``, ``account_id``
    that account's bearer token and id;
``app_id``, ``api_key``
    the application's id and API key;
``app_token``
    an application-level token of that application (``kloudless apps show --app-token``);
``developer_key``
    the server's developer key (the management API, ``KLOUDLESS_DEVELOPER_KEY``);
``base_url``
    the server's URL (``http://127.0.0.1:<port>``);
``webdav_url``, ``webdav_username``, ``webdav_password``
    a WebDAV server (WsgiDAV on 127.0.0.1, standing in for a Nextcloud) and its credentials;
``caldav_url``, ``caldav_username``, ``caldav_password``
    a CalDAV server (Radicale on 127.0.0.1) and its credentials.

The same values are in the environment as ``KLOUDLESS_BASE_URL``, ``KLOUDLESS_TOKEN``,
``KLOUDLESS_ACCOUNT_ID``, ``KLOUDLESS_APP_ID``, ``KLOUDLESS_API_KEY`` and
``KLOUDLESS_DEVELOPER_KEY``, and
``kloudless.configuration["base_url"]`` points at the server. Global state a block changes
(``kloudless.configuration``, the ``kloudless`` logger) belongs to its page: it is put back for
the page's next block and removed before any other test runs. Blocks run in a temporary working
directory.
"""

from __future__ import annotations

import copy
import gc
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from rst_snippets import ALLOWED_LANGUAGES, Snippet, all_snippets, blocks_of, pages, snippets_of

SNIPPETS = all_snippets()


@dataclass
class PageState:
    """What one page's blocks share: their namespace and the global state they set."""

    namespace: dict[str, Any]
    credentials: Any
    workdir: Path
    configuration: dict[str, Any]
    logger_level: int
    logger_handlers: list[logging.Handler]
    logger_propagate: bool
    done: int = 0
    failed: str = ""
    sessions: list[requests.Session] = field(default_factory=list)


_PAGES: dict[str, PageState] = {}


def _configuration() -> dict[str, Any]:
    from kloudless import configuration

    return configuration


def _new_page(
    server: Any, dav: Any, cal: Any, tmp_path_factory: pytest.TempPathFactory
) -> PageState:
    import kloudless

    creds = server.new_account()
    config = copy.deepcopy(_configuration())
    config["base_url"] = server.base_url
    logger = logging.getLogger("kloudless")
    return PageState(
        namespace={
            "__name__": "__docs__",
            "account": kloudless.Account(token=creds.token, base_url=server.base_url),
            "token": creds.token,
            "account_id": creds.account_id,
            "app_id": creds.app_id,
            "api_key": creds.api_key,
            "app_token": creds.app_token,
            "developer_key": creds.developer_key,
            "base_url": creds.base_url,
            "webdav_url": dav.url,
            "webdav_username": dav.username,
            "webdav_password": dav.password,
            "caldav_url": cal.url,
            "caldav_username": cal.username,
            "caldav_password": cal.password,
        },
        credentials=creds,
        workdir=tmp_path_factory.mktemp("docs-page"),
        configuration=config,
        logger_level=logger.level,
        logger_handlers=list(logger.handlers),
        logger_propagate=logger.propagate,
    )


def _swap_configuration(new: dict[str, Any]) -> dict[str, Any]:
    """Replace the contents of ``kloudless.configuration``; :returns: the previous contents."""
    config = _configuration()
    old = copy.deepcopy(config)
    config.clear()
    config.update(copy.deepcopy(new))
    return old


def _run_block(state: PageState, snippet: Snippet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run one block with its page's global state in place, and save that state afterwards."""
    creds = state.credentials
    for name, value in {
        "KLOUDLESS_BASE_URL": creds.base_url,
        "KLOUDLESS_TOKEN": creds.token,
        "KLOUDLESS_ACCOUNT_ID": str(creds.account_id),
        "KLOUDLESS_APP_ID": creds.app_id,
        "KLOUDLESS_API_KEY": creds.api_key,
        "KLOUDLESS_DEVELOPER_KEY": creds.developer_key,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(state.workdir)
    # tempfile.mkdtemp() in a block then lands in the test's temporary folder, not in /tmp.
    monkeypatch.setattr(tempfile, "tempdir", str(state.workdir))
    logger = logging.getLogger("kloudless")
    saved_logger = (logger.level, list(logger.handlers), logger.propagate)
    logger.setLevel(state.logger_level)
    logger.handlers[:] = state.logger_handlers
    logger.propagate = state.logger_propagate
    saved_config = _swap_configuration(state.configuration)
    # Other loggers a block may configure (basicConfig, urllib3) are put back right after it.
    others = {name: _logger_state(name) for name in ("", "urllib3")}
    try:
        code = compile(snippet.code, f"docs/{snippet.page}:{snippet.line}", "exec")
        exec(code, state.namespace)  # noqa: S102 - running the documentation is the point
    finally:
        state.configuration = _swap_configuration(saved_config)
        state.logger_level, state.logger_handlers, state.logger_propagate = (
            logger.level,
            list(logger.handlers),
            logger.propagate,
        )
        logger.setLevel(saved_logger[0])
        logger.handlers[:] = saved_logger[1]
        logger.propagate = saved_logger[2]
        for name, saved in others.items():
            _restore_logger(name, saved)
        state.sessions.extend(
            v for v in state.namespace.values() if isinstance(v, requests.Session)
        )


def _logger_state(name: str) -> tuple[int, list[logging.Handler], list[Any]]:
    log = logging.getLogger(name)
    return log.level, list(log.handlers), list(log.filters)


def _restore_logger(name: str, saved: tuple[int, list[logging.Handler], list[Any]]) -> None:
    log = logging.getLogger(name)
    for handler in log.handlers:
        if handler not in saved[1]:
            handler.close()
    log.setLevel(saved[0])
    log.handlers[:] = saved[1]
    log.filters[:] = saved[2]


def _close_page(state: PageState) -> None:
    """Close every client a page made, so no connection outlives its test."""
    for session in state.sessions:
        session.close()
    for value in state.namespace.values():
        if isinstance(value, requests.Session):
            value.close()
    state.namespace.clear()
    gc.collect()


@pytest.fixture(scope="session")
def _page_states() -> Iterator[dict[str, PageState]]:
    try:
        yield _PAGES
    finally:
        for state in _PAGES.values():
            _close_page(state)
        _PAGES.clear()


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.name for s in SNIPPETS])
def test_doc_snippet(
    snippet: Snippet,
    doc_server: Any,
    webdav: Any,
    caldav: Any,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    _page_states: dict[str, PageState],
) -> None:
    """The block runs without an exception, after the page's earlier blocks."""
    page_snippets = snippets_of(_page_path(snippet.page))
    state = _page_states.get(snippet.page)
    if state is None:
        state = _page_states[snippet.page] = _new_page(doc_server, webdav, caldav, tmp_path_factory)
    try:
        # Run the earlier blocks of the page first if this test runs on its own (``-k``).
        while state.done < snippet.index and not state.failed:
            earlier = page_snippets[state.done]
            try:
                _run_block(state, earlier, monkeypatch)
            except BaseException as exc:
                state.failed = f"{earlier.name} failed: {exc!r}"
            state.done += 1
        if state.failed:
            pytest.fail(f"an earlier block of the page failed ({state.failed})")
        if state.done == snippet.index:
            try:
                _run_block(state, snippet, monkeypatch)
            except BaseException as exc:
                state.failed = f"{snippet.name} failed: {exc!r}"
                raise
            finally:
                state.done += 1
    finally:
        if snippet.index == len(page_snippets) - 1:
            _close_page(state)


def _page_path(page: str) -> Path:
    return next(p for p in pages() if p.name == page)


def test_pages_have_snippets() -> None:
    """The extraction finds the blocks (a broken parser would silently run nothing)."""
    assert len(SNIPPETS) >= 20
    assert {s.page for s in SNIPPETS} >= {"getting-started.rst", "storage.rst", "calendar.rst"}


def test_code_blocks_are_runnable_or_known() -> None:
    """Every code block is either run here or in a language other tests cover.

    Python must be written as ``.. code-block:: python`` (other spellings would escape this test),
    and ``.. snippet: no-run`` stays rare.
    """
    no_run = 0
    for page in pages():
        for block in blocks_of(page):
            where = f"{block.page}:{block.line}"
            assert block.directive == "code-block", f"{where}: use '.. code-block::'"
            assert block.language in ALLOWED_LANGUAGES, f"{where}: language {block.language!r}"
            if block.language == "python":
                assert block.code.strip(), f"{where}: empty python block"
                no_run += block.no_run
            else:
                assert not block.no_run, f"{where}: no-run marks python blocks only"
    assert no_run <= 3, "too many python blocks are excluded with '.. snippet: no-run'"


def test_snippets_compile() -> None:
    """Every runnable block is valid Python (reported per block, before any server starts)."""
    for snippet in SNIPPETS:
        compile(snippet.code, f"docs/{snippet.page}:{snippet.line}", "exec")
