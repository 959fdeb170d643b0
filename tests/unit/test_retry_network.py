"""Retries over a real loopback socket: dropped connections, refused connections, timeouts.

``responses`` replaces the transport, so these cases need a real server: a tiny scripted HTTP
server on 127.0.0.1 that, for each request it receives, follows the next step of its script.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from kloudless import Account, Client, exceptions
from tests.unit.threaded import serving

OK_BODY = b'{"id": "ok"}'


class ScriptedServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.script: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def next_step(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else "ok"


class ScriptedHandler(socketserver.StreamRequestHandler):
    server: ScriptedServer

    def handle(self) -> None:
        line = self.rfile.readline(65536).decode("latin-1").strip()
        if not line:
            return
        method, path, _ = line.split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            header = self.rfile.readline(65536).decode("latin-1").strip()
            if not header:
                break
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.rfile.read(int(headers.get("content-length", "0") or 0))
        step = self.server.next_step()
        with self.server.lock:
            self.server.requests.append(
                {"method": method, "path": path, "headers": headers, "body": body, "step": step}
            )
        if step == "drop":
            return  # close without answering: the request was received, maybe processed
        if step == "slow":
            time.sleep(0.2)
            return
        if step == "cut":  # the whole head, then half of the announced body, then close
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(OK_BODY)}\r\nConnection: close\r\n\r\n".encode()
                + OK_BODY[: len(OK_BODY) // 2]
            )
            return
        status = {"ok": "200 OK", "503": "503 Service Unavailable"}[step]
        payload = OK_BODY if step == "ok" else b'{"error_code": "unavailable"}'
        try:
            self.wfile.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nRetry-After: 0.01\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
        except OSError:  # pragma: no cover - the client gave up
            pass


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with serving(ScriptedServer()) as srv:
        yield srv


def received(srv: ScriptedServer, count: int, timeout: float = 10.0) -> int:
    """:returns: how many requests ``srv`` recorded, once it has ``count`` (or after
    ``timeout`` seconds): a client that timed out may be done before the server's thread has
    even read its request, on a loaded machine."""
    deadline = time.monotonic() + timeout
    while len(srv.requests) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(srv.requests)


def base_of(srv: ScriptedServer) -> str:
    host, port = srv.server_address[:2]
    return f"http://{host}:{port}"


def test_get_retried_after_dropped_connection(server: ScriptedServer) -> None:
    server.script = ["drop", "drop", "ok"]
    with Account(token="T", base_url=base_of(server)) as account:
        assert account.get("x").data == {"id": "ok"}
    assert [r["step"] for r in server.requests] == ["drop", "drop", "ok"]


def test_keyed_post_retried_after_drop_with_same_key_and_body(server: ScriptedServer) -> None:
    server.script = ["drop", "503", "ok"]
    with Account(token="T", base_url=base_of(server)) as account:
        account.post("storage/folders", json={"name": "n"})
    keys = {r["headers"]["idempotency-key"] for r in server.requests}
    assert len(server.requests) == 3 and len(keys) == 1
    assert {r["body"] for r in server.requests} == {b'{"name": "n"}'}


def test_unkeyed_post_not_retried_after_drop(server: ScriptedServer) -> None:
    server.script = ["drop", "ok"]
    with Account(token="T", base_url=base_of(server)) as account:
        with pytest.raises(exceptions.ConnectionException) as info:
            account.post("storage/folders", json={}, idempotency_key=False)
    assert isinstance(info.value, requests.ConnectionError)
    assert len(server.requests) == 1


def test_raw_unsafe_not_retried_after_drop(server: ScriptedServer) -> None:
    server.script = ["drop", "ok"]
    with Account(token="T", base_url=base_of(server)) as account:
        with pytest.raises(exceptions.ConnectionException):
            account.raw("POST", "/upstream")
    assert len(server.requests) == 1


def test_file_body_rewound_on_retry(server: ScriptedServer, tmp_path: Any) -> None:
    server.script = ["drop", "ok"]
    path = tmp_path / "up.bin"
    path.write_bytes(b"0123456789" * 100)
    with Account(token="T", base_url=base_of(server)) as account, open(path, "rb") as handle:
        account.post("storage/files", data=handle)
    assert [r["body"] for r in server.requests] == [path.read_bytes()] * 2


def test_exhausted_drops_raise_connection_exception(server: ScriptedServer) -> None:
    server.script = ["drop"] * 3
    with Account(token="T", base_url=base_of(server), max_retries=2) as account:
        with pytest.raises(exceptions.ConnectionException) as info:
            account.get("x")
    assert len(server.requests) == 3
    assert "T" not in str(info.value).replace("Kloudless", "").replace("API", "")


def test_exhausted_503_with_retry_after_gives_server_exception(server: ScriptedServer) -> None:
    server.script = ["503", "503"]
    with Account(token="T", base_url=base_of(server), max_retries=1) as account:
        with pytest.raises(exceptions.ServerException) as info:
            account.get("x")
    assert info.value.error_code == "unavailable"
    assert len(server.requests) == 2


def test_read_timeout_retried_then_timeout_exception(server: ScriptedServer) -> None:
    server.script = ["slow", "slow"]
    with Account(token="T", base_url=base_of(server), max_retries=1) as account:
        with pytest.raises(exceptions.TimeoutException) as info:
            account.get("x", timeout=(2, 0.05))
    assert isinstance(info.value, requests.Timeout)
    assert received(server, 2) == 2


def test_read_timeout_then_success(server: ScriptedServer) -> None:
    server.script = ["slow", "ok"]
    with Client(token="T", base_url=base_of(server), timeout=(2, 0.05)) as client:
        assert client.get("x").data == {"id": "ok"}


def test_unkeyed_post_read_timeout_not_retried(server: ScriptedServer) -> None:
    server.script = ["slow", "ok"]
    with Client(token="T", base_url=base_of(server)) as client:
        with pytest.raises(exceptions.TimeoutException):
            client.post("x", timeout=(2, 0.05), idempotency_key=False)
    assert received(server, 1) == 1


def test_connection_refused_retried_then_connection_exception() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now: every attempt is refused at once.
    with Client(token="T", base_url=f"http://127.0.0.1:{port}", max_retries=2) as client:
        with pytest.raises(exceptions.ConnectionException) as info:
            client.post("x", idempotency_key=False)
    assert not isinstance(info.value, exceptions.TimeoutException)
    assert "NewConnectionError" in str(info.value)


def test_file_body_rewound_after_cut_response(server: ScriptedServer, tmp_path: Any) -> None:
    server.script = ["cut", "cut", "ok"]
    path = tmp_path / "up.bin"
    path.write_bytes(b"0123456789" * 100)
    with Account(token="T", base_url=base_of(server)) as account, open(path, "rb") as handle:
        handle.read(10)  # the body starts where the file is when the call is made
        assert account.post("storage/files", data=handle).data == {"id": "ok"}
    assert [r["body"] for r in server.requests] == [path.read_bytes()[10:]] * 3
    assert len({r["headers"]["idempotency-key"] for r in server.requests}) == 1


def test_cut_responses_and_statuses_share_one_retry_budget(server: ScriptedServer) -> None:
    server.script = ["503", "cut", "503", "cut", "ok"]
    with Account(token="T", base_url=base_of(server), max_retries=3) as account:
        with pytest.raises(exceptions.ConnectionException):
            account.get("x")
    assert [r["step"] for r in server.requests] == ["503", "cut", "503", "cut"]


def test_unkeyed_post_cut_response_not_retried(server: ScriptedServer) -> None:
    server.script = ["cut", "ok"]
    with Account(token="T", base_url=base_of(server)) as account:
        with pytest.raises(exceptions.ConnectionException):
            account.post("storage/folders", json={}, idempotency_key=False)
    assert len(server.requests) == 1
