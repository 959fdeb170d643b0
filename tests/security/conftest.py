"""Shared fixtures of the security tests: a clean SDK configuration, log capture of every logger,
and small loopback HTTP servers that record what they receive."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from kloudless import config
from kloudless.util import logger as sdk_logger


@pytest.fixture(autouse=True)
def clean_configuration() -> Iterator[None]:
    """Every test starts from the SDK defaults, with zero backoff so retries are instant."""
    saved = dict(config.configuration)
    config.configuration.clear()
    config.configuration.update(config.DEFAULTS)
    config.configuration.update(
        base_url="http://localhost:8002", backoff_factor=0, backoff_jitter=0
    )
    yield
    config.configuration.clear()
    config.configuration.update(saved)


class RecordAll(logging.Handler):
    """Keeps every record that reaches the root logger, formatted with its exception text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def all_logs() -> Iterator[RecordAll]:
    """Capture every record of every logger at DEBUG (the SDK, urllib3, the server, ...)."""
    handler = RecordAll()
    root = logging.getLogger()
    touched = [root, sdk_logger, *(logging.getLogger(n) for n in ("urllib3", "kloudless.server"))]
    levels = [(lg, lg.level) for lg in touched]
    for lg in touched:
        lg.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for lg, level in levels:
            lg.setLevel(level)


@dataclass
class Seen:
    """One request received by a :class:`LoopbackServer`."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = Callable[["Seen"], "tuple[int, dict[str, str], bytes]"]


@dataclass
class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (free port) answering with ``reply``."""

    reply: Reply
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                item = Seen(self.command, self.path, dict(self.headers.items()), body)
                outer.seen.append(item)
                status, headers, payload = outer.reply(item)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any
            # WebDAV/CalDAV methods too, so that stand-in upstreams see (and record) them.
            do_OPTIONS = do_PROPFIND = do_REPORT = do_MKCOL = do_MKCALENDAR = _any

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def loopback() -> Iterator[Callable[[Reply], LoopbackServer]]:
    """Factory of :class:`LoopbackServer` instances, all stopped at the end of the test."""
    servers: list[LoopbackServer] = []

    def make(reply: Reply) -> LoopbackServer:
        server = LoopbackServer(reply)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def world(tmp_path: Any) -> Iterator[tuple[Any, Any, Any]]:
    """``(app, client, creds)``: a fresh server (default settings, so the outbound policy
    refuses loopback upstreams), a buffered test client and its first-start credentials."""
    from kloudless.server import Settings, create_app
    from kloudless.server.bootstrap import bootstrap
    from tests.server.conftest import BufferedClient

    app = create_app(Settings(data_dir=str(tmp_path / "data")))
    creds = bootstrap(app.store)
    assert creds is not None
    try:
        yield app, BufferedClient(app), creds
    finally:
        app.close()
