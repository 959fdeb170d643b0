"""A real local API server for the documentation snippets.

The server is the one ``kloudless serve`` runs (waitress, via
:class:`kloudless.server.runner.ServerThread`) with a temporary data directory, on 127.0.0.1 and a
free port, in a background thread. It starts once per test session and stops at its end. Every
documentation page gets a fresh account of its own, so pages cannot see each other's files.

A WsgiDAV server (WebDAV) and a Radicale server (CalDAV), both on 127.0.0.1 with basic auth and a
temporary folder, stand in for a Nextcloud-style server in the pages that connect ``webdav`` and
``caldav`` accounts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The DAV test servers are shared with the DAV connector tests (importable as the ``tests``
# namespace package: pyproject sets pytest's pythonpath to the project root).
from tests.dav.servers import DavServer, ServerThread, caldav_app, webdav_app

DAV_USERNAME = "docs-user"
DAV_PASSWORD = "docs-dav-password"


@dataclass
class Credentials:
    """What a documentation page may use: one fresh account and its application."""

    base_url: str
    app_id: str
    api_key: str
    account_id: int
    token: str
    app_token: str
    #: The server's developer key (the management API; see "Managing applications").
    developer_key: str


@dataclass
class DocServer:
    """The running server and a way to make accounts on it."""

    base_url: str
    data_dir: Path
    app_id: str
    api_key: str
    store: Any
    developer_key: str

    def new_account(self) -> Credentials:
        """:returns: credentials for a new ``local`` account of the server's application."""
        account_id = self.store.create_account(self.app_id, service="local", name="docs")
        token = self.store.create_token(self.app_id, account_id)
        app_token = self.store.create_token(self.app_id, None)
        return Credentials(
            self.base_url,
            self.app_id,
            self.api_key,
            account_id,
            token,
            app_token,
            self.developer_key,
        )


@pytest.fixture(scope="session")
def doc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocServer]:
    """:returns: a local API server on 127.0.0.1 for the whole session."""
    from kloudless.server.runner import ServerThread
    from kloudless.server.settings import Settings

    data_dir = tmp_path_factory.mktemp("docs-server")
    # The pages' WebDAV and CalDAV servers listen on 127.0.0.1: allowlisted explicitly, since
    # the outbound policy refuses loopback upstreams by default.
    settings = Settings(
        data_dir=str(data_dir), host="127.0.0.1", port=0, threads=4, allow_upstream=["127.0.0.1"]
    )
    server = ServerThread(settings)
    creds = server.credentials
    assert creds is not None, "a fresh data directory must create an application"
    assert creds.developer_key is not None
    with server:
        yield DocServer(
            server.base_url,
            data_dir,
            creds.app_id,
            creds.api_key,
            server.app.store,
            creds.developer_key,
        )


@pytest.fixture(scope="session")
def webdav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    """:returns: a WsgiDAV server on 127.0.0.1 sharing a temporary folder at ``/dav/``."""
    root = tmp_path_factory.mktemp("docs-webdav")
    runner = ServerThread(webdav_app(root, DAV_USERNAME, DAV_PASSWORD))
    url = f"http://127.0.0.1:{runner.port}/dav/"
    runner.start(url, (DAV_USERNAME, DAV_PASSWORD))
    yield DavServer(url, DAV_USERNAME, DAV_PASSWORD, root)
    runner.stop()


@pytest.fixture(scope="session")
def caldav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    """:returns: a Radicale (CalDAV) server on 127.0.0.1 storing calendars in a temporary folder."""
    base = tmp_path_factory.mktemp("docs-radicale")
    runner = ServerThread(caldav_app(base, DAV_USERNAME, DAV_PASSWORD))
    url = f"http://127.0.0.1:{runner.port}/"
    runner.start(url, (DAV_USERNAME, DAV_PASSWORD))
    yield DavServer(url, DAV_USERNAME, DAV_PASSWORD, base)
    runner.stop()
