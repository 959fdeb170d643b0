"""Everything the HTTP stack answers by itself is the API's JSON error contract, and slow or
greedy clients meet deadlines and limits that answer too."""

from __future__ import annotations

import time

from .conftest import (
    Hostile,
    assert_json_error,
    connect,
    read_response,
    second_loopback_address,
    start_server,
)


def test_oversized_headers_get_json_431(hostile: Hostile) -> None:
    with connect(hostile.port) as sock:
        sock.sendall(b"GET /v1/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        filler = b"a" * 65536
        for _ in range(5):  # 320 KiB of header > waitress's 256 KiB limit
            try:
                sock.sendall(filler)
            except OSError:
                break
        status, headers, body = read_response(sock)
    data = assert_json_error(status, headers, body, 431)
    assert data["error_code"] == "request_too_large"


def test_bad_request_line_gets_json_400(hostile: Hostile) -> None:
    with connect(hostile.port) as sock:
        sock.sendall(b"NOT A REQUEST\r\nHost: 127.0.0.1\r\n\r\n")
        status, headers, body = read_response(sock)
    assert assert_json_error(status, headers, body, 400)["error_code"] == "bad_request"


def test_invalid_content_length_gets_json_400(hostile: Hostile) -> None:
    with connect(hostile.port) as sock:
        sock.sendall(b"POST /v1/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1x\r\n\r\n")
        status, headers, body = read_response(sock)
    assert_json_error(status, headers, body, 400)


def test_unsupported_transfer_encoding_gets_json_501(hostile: Hostile) -> None:
    with connect(hostile.port) as sock:
        sock.sendall(
            b"POST /v1/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n"
        )
        status, headers, body = read_response(sock)
    assert_json_error(status, headers, body, 501)


def test_headers_trickled_past_the_deadline_get_json_408(hostile: Hostile) -> None:
    # One byte every 0.25 s resets any idle timeout; the header deadline (2 s here) does not.
    with connect(hostile.port) as sock:
        sock.sendall(b"GET /v1/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answered = None
        for _ in range(80):  # at most 20 s
            try:
                sock.sendall(b"X")
            except OSError:
                break
            sock.settimeout(0.25)
            try:
                answered = sock.recv(1, 0x2)  # MSG_PEEK: has the server answered yet?
            except TimeoutError:
                continue
            if answered:
                break
        status, headers, body = read_response(sock)
    data = assert_json_error(status, headers, body, 408)
    assert data["error_code"] == "request_timeout"


def test_body_trickled_below_the_minimum_rate_gets_json_408(hostile: Hostile) -> None:
    with connect(hostile.port) as sock:
        sock.sendall(
            b"POST /v1/accounts/me/storage/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {hostile.creds.token}\r\n".encode()
            + b'X-Kloudless-Metadata: {"name": "slow.bin", "parent_id": "root"}\r\n'
            + b"Content-Length: 100000\r\n\r\n"
        )
        for _ in range(80):  # 10 bytes per 0.25 s, far below 1 KiB/s; at most 20 s
            try:
                sock.sendall(b"0123456789")
            except OSError:
                break
            sock.settimeout(0.25)
            try:
                if sock.recv(1, 0x2):
                    break
            except TimeoutError:
                continue
        status, headers, body = read_response(sock)
    assert assert_json_error(status, headers, body, 408)["error_code"] == "request_timeout"


def test_a_connection_that_never_sends_is_closed(hostile: Hostile) -> None:
    with connect(hostile.port) as sock:
        sock.settimeout(20)
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, without an answer
        print(f"silent connection closed after {time.monotonic() - started:.1f} s")


def test_connections_over_the_per_address_limit_get_json_429(tmp_path) -> None:
    source = second_loopback_address()
    server = start_server(str(tmp_path / "data"), connections_per_address=5)
    held = []
    try:
        for _ in range(5):
            held.append(connect(server.port, source))
        time.sleep(0.5)  # let the server accept them
        with connect(server.port, source) as extra:
            status, headers, body = read_response(extra)
        assert_json_error(status, headers, body, 429)
        assert headers.get("retry-after") == "1"
    finally:
        for sock in held:
            sock.close()
        server.stop()
