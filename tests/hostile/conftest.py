"""Hostile-network tests: a real server (waitress via ``ServerThread``) on 127.0.0.1 with short
deadlines, and raw-socket clients that misbehave on purpose.

Every loop here is bounded in count and in time, and every socket is closed by the test that
opened it. Figures (latencies under attack) are printed, not asserted: the assertions are that
every well-behaved request got an answer, and the right one.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from kloudless.server.bootstrap import Credentials
from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings

#: Deadlines short enough for a test, long enough for a loaded 2-core machine.
TEST_LIMITS: dict[str, Any] = {
    "header_timeout": 2.0,
    "idle_timeout": 4.0,
    "min_body_rate": 1024,
}


@dataclass
class Hostile:
    base_url: str
    port: int
    creds: Credentials
    thread: ServerThread

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds.token}"}

    def upload(self, name: str, data: bytes) -> dict[str, Any]:
        response = requests.post(
            f"{self.base_url}/v1/accounts/me/storage/files",
            headers={
                **self.auth,
                "X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": "root"}),
                "Content-Type": "application/octet-stream",
            },
            data=data,
            timeout=60,
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def public_link(self, file_id: str) -> str:
        response = requests.post(
            f"{self.base_url}/v1/accounts/me/storage/links",
            headers=self.auth,
            json={"file_id": file_id, "direct": True},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["url"])


def start_server(data_dir: str, **overrides: Any) -> ServerThread:
    settings = Settings(data_dir=data_dir, host="127.0.0.1", port=0, **{**TEST_LIMITS, **overrides})
    return ServerThread(settings).start()


@pytest.fixture
def hostile(tmp_path: Any) -> Iterator[Hostile]:
    server = start_server(str(tmp_path / "data"))
    assert server.credentials is not None
    try:
        yield Hostile(server.base_url, server.port, server.credentials, server)
    finally:
        server.stop()


def connect(port: int, source: str | None = None, timeout: float = 10.0) -> socket.socket:
    """:returns: a blocking TCP connection to the server (from ``source`` when given)."""
    sock = socket.create_connection(
        ("127.0.0.1", port),
        timeout=timeout,
        source_address=(source, 0) if source else None,
    )
    return sock


def read_response(sock: socket.socket, deadline: float = 15.0) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.x response with a ``Content-Length`` (or up to EOF) from ``sock``.

    :returns: ``(status, lower-cased headers, body)``.
    """
    sock.settimeout(deadline)
    data = b""
    end = time.monotonic() + deadline
    while b"\r\n\r\n" not in data and time.monotonic() < end:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "-1"))
    while (length < 0 or len(body) < length) and time.monotonic() < end:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body if length < 0 else body[:length]


def assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict:
    """Check the API's error contract; :returns: the parsed body."""
    assert status == expected, (status, body[:300])
    assert headers["content-type"].startswith("application/json"), headers
    data: dict[str, Any] = json.loads(body)
    assert data["status_code"] == expected
    assert isinstance(data["error_code"], str) and data["error_code"]
    assert isinstance(data["message"], str) and data["message"]
    assert data["id"] and headers.get("x-request-id") == data["id"]
    return data


def second_loopback_address() -> str | None:
    """:returns: a loopback address other than 127.0.0.1 that can be bound (Linux has all of
    127.0.0.0/8), else None (macOS has only 127.0.0.1 by default)."""
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
    except OSError:
        return None
    return "127.0.0.2"


def server_channel(hostile: Hostile, client: socket.socket) -> Any:
    """:returns: the server's channel of the connection ``client`` opened, or None once the
    server has closed it (the server runs in this process)."""
    port = client.getsockname()[1]
    for channel in list(hostile.thread.server.active_channels.values()):
        addr = getattr(channel, "addr", None)
        if isinstance(addr, tuple) and len(addr) > 1 and addr[1] == port:
            return channel
    return None


def wait_until(condition: Any, seconds: float, what: str) -> None:
    """Poll ``condition()`` every 0.1 s for at most ``seconds`` (a generous bound, not a
    measurement). :raises AssertionError: naming ``what`` when it never held."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)
