"""The benchmarks' load generator (benchmarks/_loadgen.py) against a real waitress server on
loopback: it reads whole answers over keep-alive connections, counts them per connection,
checks every status and samples bodies, follows ``Connection: close`` by reconnecting, and
fails loudly on a wrong status, a wrong body or an answer it cannot frame."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _loadgen  # noqa: E402
from benchmarks._loadgen import LoadError, Workload, build_request, cycle, run  # noqa: E402

BODY = b"0123456789" * 5000  # 50,000 bytes: several reads per answer
SECONDS = 120.0  # the request cap ends every run below, never the clock


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path = environ["PATH_INFO"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    received = environ["wsgi.input"].read(length) if length else b""
    if path == "/missing":
        start_response("404 Not Found", [("Content-Length", "2")])
        return [b"no"]
    if path == "/chunked":  # no Content-Length: waitress sends it chunked
        start_response("200 OK", [])
        return [b"a", b"b"]
    headers = [("Content-Length", str(len(BODY) if not received else len(received)))]
    start_response("200 OK", headers)
    return [received or BODY]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from waitress import create_server

    httpd: Any = create_server(_app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=httpd.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.effective_port}"
    finally:
        httpd.close()
        thread.join(30)


def _same(expected: bytes) -> Any:
    def check(body: bytes) -> None:
        if body != expected:
            raise LoadError("wrong body")

    return check


def test_whole_answers_are_read_counted_and_sampled(server: str) -> None:
    request = build_request("GET", f"{server}/data?x=1", {"X-Test": "yes"})
    assert request.startswith(b"GET /data?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nX-Test: yes\r\n" in request and request.endswith(b"\r\n\r\n")
    seen: list[int] = []

    def check(body: bytes) -> None:
        seen.append(len(body))
        _same(BODY)(body)

    result = run(Workload(server, cycle([request]), check), 3, SECONDS, 200)
    assert result.count == 200 == len(result.latencies)
    assert sum(result.answered.values()) == 200 and len(result.answered) == 3
    # The first answers of each connection, then every CHECK_EVERY-th.
    assert result.checked == len(seen) >= 3 * _loadgen.CHECK_FIRST
    assert set(seen) == {len(BODY)}
    assert result.elapsed > 0 and result.cpu >= 0


def test_a_post_body_is_sent_and_each_request_can_differ(server: str) -> None:
    def request(n: int) -> bytes:
        return build_request("POST", f"{server}/echo", body=f"request {n % 2}".encode())

    bodies: list[bytes] = []
    result = run(Workload(server, request, bodies.append), 2, SECONDS, 20)
    assert result.count == 20
    assert set(bodies) <= {b"request 0", b"request 1"} and bodies


def test_connection_close_answers_are_followed_by_a_new_connection(server: str) -> None:
    # Asked to close, waitress answers "Connection: close" and closes after the answer.
    request = build_request("GET", f"{server}/data", {"Connection": "close"})
    result = run(Workload(server, cycle([request]), _same(BODY)), 2, SECONDS, 10)
    assert result.count == 10


def test_before_close_sees_the_open_connections(server: str) -> None:
    ports: list[int] = []

    def before_close(result: _loadgen.Result) -> None:
        ports.extend(result.answered)

    request = build_request("GET", f"{server}/data")
    run(Workload(server, cycle([request])), 2, SECONDS, 4, before_close=before_close)
    assert len(ports) == 2 and all(p > 0 for p in ports)


@pytest.mark.parametrize(
    ("path", "check", "message"),
    [
        ("/missing", None, "status 404, expected 200"),
        ("/data", _same(b"something else"), "wrong body"),
        ("/chunked", None, "without Content-Length"),
    ],
)
def test_wrong_answers_fail_the_run(server: str, path: str, check: Any, message: str) -> None:
    request = build_request("GET", f"{server}{path}")
    with pytest.raises(LoadError, match=message):
        run(Workload(server, cycle([request]), check), 2, SECONDS, 10)
