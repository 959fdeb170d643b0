"""Work after the answer is sent (``routing.AFTER_RESPONSE``, run by ``serving.Task``): the
request log line is written once the client has its answer, for every request (errors,
streamed files, uploads, a client gone before reading), and before a clean stop returns."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import requests
from werkzeug.test import Client

from kloudless.server import Settings, create_app
from kloudless.server.api.storage import SMALL_ANSWER
from kloudless.server.routing import AFTER_RESPONSE
from kloudless.server.runner import ServerThread

#: Longest wait for anything in these tests (a failure shows as this wait, never a hang).
WAIT = 10.0


class Lines(logging.Handler):
    """The request log's lines as they are written; :attr:`hold` (when set) runs in the
    writing thread before a line is kept, as a slow log handler would."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.hold: Callable[[str], None] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if self.hold is not None and "request_id=" in line:
            self.hold(line)
        with self.changed:
            self.lines.append(line)
            self.changed.notify_all()

    def wait_for(self, text: str) -> str:
        """:returns: the first line holding ``text``, waiting up to :data:`WAIT` seconds."""
        deadline = time.monotonic() + WAIT
        with self.changed:
            while True:
                found = [line for line in self.lines if text in line]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                assert left > 0, f"no log line with {text!r} in {self.lines!r}"
                self.changed.wait(left)


@pytest.fixture
def lines() -> Iterator[Lines]:
    logger = logging.getLogger("kloudless.server")
    handler = Lines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def served(make_settings: Callable[..., Settings]) -> Iterator[Any]:
    thread = ServerThread(make_settings(port=0)).start()
    try:
        yield thread
    finally:
        thread.stop()


def _auth(thread: ServerThread) -> dict[str, str]:
    assert thread.credentials is not None
    return {"Authorization": f"Bearer {thread.credentials.token}"}


def _upload(thread: ServerThread, name: str, data: bytes, lines: Lines | None = None) -> str:
    """:returns: the new file's id (once its log line is written, with ``lines``)."""
    headers = {
        **_auth(thread),
        "X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": "root"}),
    }
    answer = requests.post(
        f"{thread.base_url}/v1/accounts/me/storage/files", data=data, headers=headers, timeout=WAIT
    )
    assert answer.status_code == 201, answer.text
    if lines is not None:
        line = lines.wait_for(f"request_id={answer.headers['X-Request-Id']}")
        assert line.startswith("POST /v1/accounts/me/storage/files 201 ")
    return str(answer.json()["id"])


@pytest.mark.only_config("sqlite-files", reason="the HTTP server's order of work, not storage")
def test_the_client_has_its_answer_before_the_log_line_is_written(
    served: ServerThread, lines: Lines
) -> None:
    file_id = _upload(served, "a.bin", b"a" * 4096, lines)  # its line written before the hold
    url = f"{served.base_url}/v1/accounts/me/storage/files/{file_id}/contents"
    answered = threading.Event()
    held: list[tuple[str, bool]] = []

    def hold(line: str) -> None:
        # Written before the answer was sent, this line would keep the client waiting for
        # WAIT seconds, beyond its timeout.
        held.append((line, answered.wait(WAIT)))

    lines.hold = hold
    with requests.Session() as session:
        for _ in range(3):  # keep-alive: each next request is read after the line
            answer = session.get(url, headers=_auth(served), timeout=WAIT / 2)
            assert answer.status_code == 200 and answer.content == b"a" * 4096
            request_id = answer.headers["X-Request-Id"]
            answered.set()
            line = lines.wait_for(f"request_id={request_id}")
            answered.clear()
            assert line.startswith(f"GET /v1/accounts/me/storage/files/{file_id}/contents 200 ")
    assert len(held) == 3 and all(after for _, after in held)


@pytest.mark.only_config("sqlite-files", reason="the HTTP server's order of work, not storage")
def test_every_request_writes_its_line(served: ServerThread, lines: Lines) -> None:
    small = _upload(served, "small.bin", b"s" * 10, lines)  # uploads are logged too
    large = _upload(served, "large.bin", b"l" * (SMALL_ANSWER + 1), lines)  # the file wrapper's
    base = f"{served.base_url}/v1/accounts/me/storage/files"
    auth = _auth(served)
    calls: list[tuple[str, str, dict[str, str], int]] = [
        ("GET", f"{base}/{small}/contents", auth, 200),
        ("GET", f"{base}/{large}/contents", auth, 200),
        ("HEAD", f"{base}/{small}/contents", auth, 200),
        ("GET", f"{base}/{small}/contents", {**auth, "Range": "bytes=2-3"}, 206),
        ("GET", f"{base}/{small}/contents", {**auth, "Range": "bytes=99-"}, 416),
        ("GET", f"{base}/{small}/contents", {**auth, "If-None-Match": "*"}, 304),
        ("GET", f"{base}/{small}/contents", {}, 401),
        ("GET", f"{base}/nonesuch/contents", auth, 404),
        ("DELETE", f"{served.base_url}/v1/accounts/me", {}, 401),
        ("PATCH", f"{served.base_url}/v1/nowhere", auth, 404),
    ]
    with requests.Session() as session:
        for method, url, headers, status in calls:
            answer = session.request(method, url, headers=headers, timeout=WAIT)
            assert answer.status_code == status, (method, url, answer.text)
            path = url[len(served.base_url) :]
            line = lines.wait_for(f"request_id={answer.headers['X-Request-Id']}")
            assert line.startswith(f"{method} {path} {status} ") and "ms request_id=" in line


@pytest.mark.only_config("sqlite-files", reason="the HTTP server's order of work, not storage")
def test_a_client_gone_before_its_answer_is_logged(served: ServerThread, lines: Lines) -> None:
    gone = threading.Event()
    lines.hold = lambda line: gone.wait(WAIT) if "/gone-" in line else None
    path = f"/v1/gone-{uuid.uuid4().hex}"
    with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n\r\n".encode())
    gone.set()
    assert lines.wait_for(path).startswith(f"GET {path} 404 ")


@pytest.mark.only_config("sqlite-files", reason="the HTTP server's order of work, not storage")
def test_a_clean_stop_waits_for_the_lines_of_answered_requests(
    make_settings: Callable[..., Settings], lines: Lines
) -> None:
    thread = ServerThread(make_settings(port=0)).start()
    try:
        lines.hold = lambda line: time.sleep(0.5)  # a slow log handler
        answer = requests.get(f"{thread.base_url}/v1/nowhere", timeout=WAIT)
        assert answer.status_code == 404
        request_id = answer.headers["X-Request-Id"]
    finally:
        thread.stop()
    assert any(f"request_id={request_id}" in line for line in lines.lines)


@pytest.mark.only_config("sqlite-files", reason="the HTTP server's order of work, not storage")
def test_failing_after_response_work_is_logged_and_the_connection_goes_on(
    served: ServerThread, lines: Lines
) -> None:
    app = served.app
    original = app.dispatch
    calls = 0

    def dispatch(request: Any, request_id: str) -> Any:
        nonlocal calls
        calls += 1
        request.environ[AFTER_RESPONSE].append(lambda: 1 / 0)
        return original(request, request_id)

    app.dispatch = dispatch  # type: ignore[method-assign]
    with requests.Session() as session:
        for _ in range(2):
            answer = session.get(f"{served.base_url}/v1/nowhere", timeout=WAIT)
            assert answer.status_code == 404
            lines.wait_for(f"request_id={answer.headers['X-Request-Id']}")
    assert calls == 2
    assert lines.wait_for("after-response work failed")


def test_without_the_http_server_the_line_is_written_before_the_answer(
    make_settings: Callable[..., Settings], lines: Lines
) -> None:
    app = create_app(make_settings())
    try:
        answer = Client(app).get("/v1/nowhere")
        assert answer.status_code == 404
        request_id = answer.headers["X-Request-Id"]
        assert any(f"request_id={request_id}" in line for line in lines.lines)
    finally:
        app.close()


def _raw(port: int, request: bytes) -> bytes:
    """:returns: the bytes the server answers ``request`` with (it closes the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _without_per_request_headers(answer: bytes) -> bytes:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for line in lines:
        if line.startswith(b"X-Request-Id: "):
            body = body.replace(line.split(b" ", 1)[1], b"<id>")  # a JSON error's id
    kept = [line for line in lines if not line.startswith((b"Date:", b"X-Request-Id:"))]
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


@pytest.mark.only_config("sqlite-files", reason="the HTTP server's order of work, not storage")
def test_a_one_chunk_body_goes_out_with_its_head_in_one_send(
    served: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kloudless.server.serving as serving

    file_id = _upload(served, "a.bin", b"a" * 4096)
    token = _auth(served)["Authorization"]
    host = f"Host: 127.0.0.1:{served.port}\r\nConnection: close\r\n"
    path = f"/v1/accounts/me/storage/files/{file_id}/contents"
    requests_ = [
        f"GET {path} HTTP/1.1\r\n{host}Authorization: {token}\r\n\r\n",  # 200, 4 KiB
        f"HEAD {path} HTTP/1.1\r\n{host}Authorization: {token}\r\n\r\n",
        f"GET {path} HTTP/1.1\r\n{host}Authorization: {token}\r\nIf-None-Match: *\r\n\r\n",
        f"GET {path} HTTP/1.1\r\n{host}\r\n\r\n",  # 401, JSON
        f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{served.port}\r\nAuthorization: {token}\r\n\r\n",
    ]
    sends: list[int] = []
    original = serving.Channel.send

    def send(self: Any, data: Any, do_close: bool = True) -> int:
        sent: int = original(self, data, do_close)
        sends.append(sent)
        return sent

    monkeypatch.setattr(serving.Channel, "send", send)

    def answers() -> list[tuple[bytes, list[int]]]:
        out = []
        for request in requests_:
            sends.clear()
            raw = _raw(served.port, request.encode())
            out.append((_without_per_request_headers(raw), list(sends)))
        return out

    one_send = answers()
    monkeypatch.setattr(serving, "ONE_SEND_BYTES", -1)  # waitress's way: head, then body
    two_sends = answers()
    assert [answer for answer, _ in one_send] == [answer for answer, _ in two_sends]
    first, first_sends = one_send[0]
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"\r\n\r\n" + b"a" * 4096)
    assert len(first_sends) == 1 and first_sends[0] > 4096  # head and body at once
    assert len(two_sends[0][1]) == 2
    assert b"Content-Length: 4096" in one_send[1][0] and one_send[1][0].endswith(b"\r\n\r\n")
    assert one_send[2][0].startswith(b"HTTP/1.1 304 ")
    assert one_send[3][0].startswith(b"HTTP/1.1 401 ") and len(one_send[3][1]) == 1
    assert one_send[4][0].startswith(b"HTTP/1.0 200 OK\r\n")


@pytest.mark.only_config("sqlite-files", reason="the HTTP server's order of work, not storage")
def test_a_body_without_start_response_is_waitress_s_error(tmp_path: Any) -> None:
    """The one-send path is taken only once the app has called ``start_response``: a body
    before it is waitress's own error (500), as without the path."""
    from kloudless.server import serving

    def no_start(environ: Any, start_response: Callable[..., Any]) -> list[bytes]:
        return [b"a body with no status"]

    server = serving.create_server(
        no_start,
        host="127.0.0.1",
        port=0,
        threads=1,
        data_dir=str(tmp_path),
        header_timeout=5,
        idle_timeout=5,
        min_body_rate=1,
        connection_limit=8,
        connections_per_address=8,
        min_free_bytes=0,
        max_body_bytes=1024,
    )
    stopping = threading.Event()

    def loop() -> None:  # as ServerThread runs it: bounded polls until asked to stop
        from waitress import wasyncore

        try:
            while not stopping.is_set():
                wasyncore.loop(timeout=0.1, map=server._map, count=1, use_poll=True)
        finally:
            server.task_dispatcher.shutdown()
            server.close_channels()
            wasyncore.close_all(server._map)

    runner = threading.Thread(target=loop, daemon=True)
    runner.start()
    try:
        port = server.effective_port
        answer = _raw(port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    finally:
        stopping.set()
        runner.join(WAIT)
    assert not runner.is_alive()
    assert answer.startswith(b"HTTP/1.1 500 ") and b"a body with no status" not in answer
