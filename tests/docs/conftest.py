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

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import get_input_stream

DAV_USERNAME = "docs-user"
DAV_PASSWORD = "docs-dav-password"
READY_TIMEOUT = 10.0


@dataclass
class Credentials:
    """What a documentation page may use: one fresh account and its application."""

    base_url: str
    app_id: str
    api_key: str
    account_id: int
    token: str
    app_token: str


@dataclass
class DocServer:
    """The running server and a way to make accounts on it."""

    base_url: str
    data_dir: Path
    app_id: str
    api_key: str
    store: Any

    def new_account(self) -> Credentials:
        """:returns: credentials for a new ``local`` account of the server's application."""
        account_id = self.store.create_account(self.app_id, service="local", name="docs")
        token = self.store.create_token(self.app_id, account_id)
        app_token = self.store.create_token(self.app_id, None)
        return Credentials(self.base_url, self.app_id, self.api_key, account_id, token, app_token)


@pytest.fixture(scope="session")
def doc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocServer]:
    """:returns: a local API server on 127.0.0.1 for the whole session."""
    from kloudless.server.runner import ServerThread
    from kloudless.server.settings import Settings

    data_dir = tmp_path_factory.mktemp("docs-server")
    server = ServerThread(Settings(data_dir=str(data_dir), host="127.0.0.1", port=0, threads=4))
    creds = server.credentials
    assert creds is not None, "a fresh data directory must create an application"
    with server:
        yield DocServer(server.base_url, data_dir, creds.app_id, creds.api_key, server.app.store)


@dataclass
class DavServer:
    """A running WebDAV or CalDAV server and its credentials."""

    url: str
    username: str
    password: str


class _QuietHandler(WSGIRequestHandler):
    """Do not print one line per request into the test output."""

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002
        return None


def _bounded_input(app: Any) -> Any:
    """Give the app a request body that ends at Content-Length (WsgiDAV reads PUT bodies to EOF)."""

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.input"] = get_input_stream(environ, safe_fallback=True)
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return wrapped


def _serve(app: Any, path: str) -> Iterator[DavServer]:
    """Serve a WSGI app on 127.0.0.1 and a free port in a thread until the generator is closed."""
    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, _bounded_input(app), threaded=True, request_handler=_QuietHandler
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}{path}"
    try:
        _wait_ready(url)
        yield DavServer(url, DAV_USERNAME, DAV_PASSWORD)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def webdav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    """:returns: a WsgiDAV server on 127.0.0.1 sharing a temporary folder at ``/dav/``."""
    from wsgidav.wsgidav_app import WsgiDAVApp

    root = tmp_path_factory.mktemp("docs-webdav")
    logging.getLogger("wsgidav").setLevel(logging.ERROR)
    app = WsgiDAVApp(
        {
            "provider_mapping": {"/dav": str(root)},
            "simple_dc": {"user_mapping": {"*": {DAV_USERNAME: {"password": DAV_PASSWORD}}}},
            "http_authenticator": {
                "domain_controller": None,
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "dir_browser": {"enable": False},
            "verbose": 0,
            "logging": {"enable": False},
            "lock_storage": True,
            "property_manager": True,
        }
    )
    yield from _serve(app, "/dav/")


@pytest.fixture(scope="session")
def caldav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    """:returns: a Radicale (CalDAV) server on 127.0.0.1 storing calendars in a temporary folder."""
    import radicale
    from radicale import config as radicale_config

    base = tmp_path_factory.mktemp("docs-radicale")
    users = base / "users"
    users.write_text(f"{DAV_USERNAME}:{DAV_PASSWORD}\n", encoding="utf-8")
    configuration = radicale_config.load()
    configuration.update(
        {
            "auth": {
                "type": "htpasswd",
                "htpasswd_filename": str(users),
                "htpasswd_encryption": "plain",
                "delay": "0",
            },
            "storage": {"filesystem_folder": str(base / "collections")},
            "rights": {"type": "owner_only"},
            "logging": {"level": "warning", "mask_passwords": "True"},
        },
        "kloudless docs tests",
        privileged=True,
    )
    logging.getLogger("radicale").setLevel(logging.ERROR)
    yield from _serve(radicale.Application(configuration), "/")


def _wait_ready(url: str) -> None:
    """Poll until the server answers; bounded in count and in time."""
    deadline = time.monotonic() + READY_TIMEOUT
    for _ in range(200):
        try:
            requests.request("OPTIONS", url, auth=(DAV_USERNAME, DAV_PASSWORD), timeout=1).close()
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    raise RuntimeError(f"DAV test server at {url} did not become ready")
