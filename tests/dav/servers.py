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


def closed_port() -> int:
    """:returns: a loopback port on which nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
