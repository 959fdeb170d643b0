"""Helpers to run real DAV servers in threads for the DAV connector tests."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import get_input_stream

from kloudless.server.outbound import OutboundPolicy

#: The DAV test servers listen on 127.0.0.1, which the server's outbound policy refuses unless
#: allowlisted: every API server these tests connect to them allows it explicitly.
ALLOW_LOOPBACK = ["127.0.0.1"]
#: The outbound policy with that allowlist, for tests that build clients directly.
LOOPBACK_POLICY = OutboundPolicy.from_entries(ALLOW_LOOPBACK)
USERNAME = "dav-user"
PASSWORD = "dav-secret-pw"
READY_TIMEOUT = 10.0


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every request to stderr."""

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002
        return None


def _bounded_input(app: Callable[..., Any]) -> Callable[..., Any]:
    """Give the app a request body that ends at Content-Length.

    werkzeug's development server hands out the raw socket; WsgiDAV reads a PUT body until
    EOF, as production servers (cheroot, waitress) allow. Chunked bodies are already
    de-chunked and terminated by werkzeug.
    """

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["wsgi.input"] = get_input_stream(environ, safe_fallback=True)
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return wrapped


@dataclass
class DavServer:
    """A running DAV server: where it listens, its credentials and its data folder."""

    url: str
    username: str
    password: str
    data_dir: Path


class ServerThread:
    """Serve a WSGI app on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, _bounded_input(app), threaded=True, request_handler=_QuietHandler
        )
        self.port = self.server.server_port
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self, probe_url: str, auth: tuple[str, str]) -> None:
        self.thread.start()
        deadline = time.monotonic() + READY_TIMEOUT
        for _ in range(200):  # bounded in count and in time
            try:
                requests.request("OPTIONS", probe_url, auth=auth, timeout=1)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"DAV test server on port {self.port} did not become ready")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def webdav_app(root: Path, username: str = USERNAME, password: str = PASSWORD) -> Any:
    """:returns: a WsgiDAV app sharing ``root`` at ``/dav/`` with basic auth for one user."""
    import logging

    from wsgidav.wsgidav_app import WsgiDAVApp

    logging.getLogger("wsgidav").setLevel(logging.ERROR)
    return WsgiDAVApp(
        {
            "provider_mapping": {"/dav": str(root)},
            "simple_dc": {"user_mapping": {"*": {username: {"password": password}}}},
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


def caldav_app(base: Path, username: str = USERNAME, password: str = PASSWORD) -> Any:
    """:returns: a Radicale app storing calendars under ``base``, htpasswd (plain) auth."""
    import logging

    import radicale
    from radicale import config as radicale_config

    users = base / "users"
    users.write_text(f"{username}:{password}\n", encoding="utf-8")
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
        "kloudless tests",
        privileged=True,
    )
    logging.getLogger("radicale").setLevel(logging.ERROR)
    return radicale.Application(configuration)


def closed_port() -> int:
    """:returns: a loopback port on which nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_addressbook(server: DavServer, name: str, display_name: str = "Contacts") -> str:
    """Create an address book on a Radicale server with a plain extended MKCOL (RFC 5689).

    :returns: the address book's URL (ending in ``/``).
    """
    home = f"{server.url.rstrip('/')}/{server.username}/"
    auth = (server.username, server.password)
    # Radicale creates the principal collection on the first authenticated PROPFIND.
    requests.request("PROPFIND", home, auth=auth, headers={"Depth": "0"}, timeout=10).close()
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<d:mkcol xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav"><d:set><d:prop>'
        "<d:resourcetype><d:collection/><c:addressbook/></d:resourcetype>"
        f"<d:displayname>{display_name}</d:displayname></d:prop></d:set></d:mkcol>"
    )
    url = f"{home}{name}/"
    response = requests.request("MKCOL", url, data=body.encode(), auth=auth, timeout=10)
    assert response.status_code == 201, response.text
    return url
