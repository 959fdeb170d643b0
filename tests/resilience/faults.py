"""A fault-injecting HTTP proxy on loopback, in front of a real server.

:class:`FaultProxy` listens on ``127.0.0.1`` (a free port) and handles one request per client
connection (every answer carries ``Connection: close``). For each request it picks a fault from a
:class:`FaultPlan` with a seeded ``random.Random``, so a sequential client sees the same faults on
every run:

``pass``
    forward the request, relay the whole response.
``429`` / ``503``
    answer ``429`` (``Retry-After`` from the plan) or ``503`` *without* forwarding: the server
    never sees the request.
``drop_before``
    read the request, then close the connection without forwarding (not processed).
``drop_request``
    read only the head and part of the body, then close (a connection killed mid-upload).
``drop_after``
    forward the request, read the server's whole response (so the server has finished), then
    close the client connection without a byte of it: the client cannot know it was processed.
``cut``
    forward, then relay the response head and only the first half of its body before closing.
    Applied only to requests the plan's ``cut_if`` accepts (by default file-content downloads).

Bounded: at most ``max_consecutive`` faults in a row (then a request passes), an optional total
``budget``, and socket timeouts everywhere. :attr:`FaultProxy.log` records every request
(method, target, fault) for assertions. ``override`` forces a fault for chosen requests.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

FAULTS = ("pass", "429", "503", "drop_before", "drop_request", "drop_after", "cut")
SOCKET_TIMEOUT = 30.0
MAX_HEAD = 64 * 1024


def is_download(method: str, target: str) -> bool:
    """Default ``cut_if``: ``GET .../contents`` of a file."""
    path = target.split("?", 1)[0]
    return method == "GET" and "/storage/files/" in path and path.rstrip("/").endswith("contents")


@dataclass
class FaultPlan:
    """Probabilities of each fault per request (the rest pass).

    :ivar seed: seed of the random choices.
    :ivar rates: fault name -> probability (``cut`` only where ``cut_if`` is true).
    :ivar retry_after: the ``Retry-After`` value of injected ``429``s.
    :ivar max_consecutive: at most this many faults in a row.
    :ivar budget: at most this many faults in total (``None``: unbounded).
    :ivar cut_if: ``(method, target) -> bool``: which responses may be cut.
    :ivar cut_align: a cut body keeps half its bytes rounded down to a multiple of this, so a
        client reading chunks of this size always receives the same whole chunks (TCP timing
        cannot change how far a download got, nor the requests that follow).
    """

    seed: int = 1234
    rates: dict[str, float] = field(default_factory=dict)
    retry_after: str = "0"
    max_consecutive: int = 2
    budget: int | None = None
    cut_if: Callable[[str, str], bool] = is_download
    cut_align: int = 4096


@dataclass(frozen=True)
class Seen:
    """One request as logged by the proxy."""

    method: str
    target: str
    fault: str
    headers: dict[str, str]  # lower-case names

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass
class Request:
    """One parsed client request."""

    method: str
    target: str
    head: bytes  # request line + headers, ending with a blank line
    headers: dict[str, str]
    body: bytes


class FaultProxy:
    """The proxy (see the module docstring). Use as a context manager.

    :param upstream: ``(host, port)`` of the real server.
    :param plan: the faults to inject (none by default).
    """

    def __init__(self, upstream: tuple[str, int], plan: FaultPlan | None = None) -> None:
        self.upstream = upstream
        self.plan = plan or FaultPlan()
        #: ``(method, target) -> fault name or None``: forces a fault (None: use the plan).
        self.override: Callable[[str, str], str | None] = lambda method, target: None
        #: Every request seen, in order of arrival.
        self.log: list[Seen] = []
        self._rng = random.Random(self.plan.seed)
        self._lock = threading.Lock()
        self._consecutive = 0
        self._injected = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._acceptor.join(timeout=10)
        for thread in list(self._threads):
            thread.join(timeout=SOCKET_TIMEOUT + 5)
        self._sock.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_plan(self, plan: FaultPlan) -> None:
        """Switch to another plan (and restart its random sequence)."""
        with self._lock:
            self.plan = plan
            self._rng = random.Random(plan.seed)
            self._consecutive = 0
            self._injected = 0

    def counts(self) -> Counter[str]:
        """:returns: how many requests met each fault."""
        with self._lock:
            return Counter(seen.fault for seen in self.log)

    # -- choosing ----------------------------------------------------------------------------
    def _choose(self, method: str, target: str, headers: dict[str, str]) -> str:
        with self._lock:
            forced = self.override(method, target)
            if forced is not None:
                fault = forced
            else:
                plan = self.plan
                draw = self._rng.random()  # always drawn: one draw per request keeps the sequence
                fault = "pass"
                limited = self._consecutive >= plan.max_consecutive or (
                    plan.budget is not None and self._injected >= plan.budget
                )
                if not limited:
                    edge = 0.0
                    for name in FAULTS[1:]:
                        rate = plan.rates.get(name, 0.0)
                        if name == "cut" and not plan.cut_if(method, target):
                            rate = 0.0
                        edge += rate
                        if draw < edge:
                            fault = name
                            break
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}")
            if fault == "pass":
                self._consecutive = 0
            else:
                self._consecutive += 1
                self._injected += 1
            self.log.append(Seen(method, target, fault, headers))
            return fault

    # -- serving -----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(SOCKET_TIMEOUT)
        with conn:
            try:
                head, rest = _read_head(conn)
                if head is None:
                    return
                method, target, headers = _parse_request_head(head)
                fault = self._choose(method, target, headers)
                if fault == "drop_request":
                    # Take a little of the body, then kill the connection mid-upload.
                    _shutdown(conn)
                    return
                body = _read_body(conn, headers, rest)
                request = Request(method, target, head, headers, body)
                if fault in ("429", "503"):
                    conn.sendall(_error_response(int(fault), self.plan.retry_after))
                    return
                if fault == "drop_before":
                    _shutdown(conn)
                    return
                response = self._forward(request)
                if fault == "drop_after":
                    _shutdown(conn)
                    return
                if fault == "cut":
                    conn.sendall(_cut(response, self.plan.cut_align))
                    _shutdown(conn)
                    return
                conn.sendall(response)
            except OSError:
                return  # the client went away; nothing to clean up beyond the socket

    def _forward(self, request: Request) -> bytes:
        head = _with_connection_close(request.head)
        with socket.create_connection(self.upstream, timeout=SOCKET_TIMEOUT) as upstream:
            upstream.sendall(head + request.body)
            chunks = []
            while True:
                block = upstream.recv(65536)
                if not block:
                    break
                chunks.append(block)
        response = b"".join(chunks)
        head_end = response.find(b"\r\n\r\n")
        if head_end < 0:
            raise OSError("the upstream server sent an incomplete response")
        return _with_connection_close(response[: head_end + 4]) + response[head_end + 4 :]


# -- HTTP bits (just what the tests need: Content-Length and chunked request bodies) -----------
def _read_head(conn: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise OSError("request head too large")
        block = conn.recv(65536)
        if not block:
            return None, b""
        data += block
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def _parse_request_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


def _read_exact(conn: socket.socket, buffered: bytes, size: int) -> tuple[bytes, bytes]:
    data = buffered
    while len(data) < size:
        block = conn.recv(min(65536, size - len(data)))
        if not block:
            raise OSError("the client closed the connection mid-body")
        data += block
    return data[:size], data[size:]


def _read_line(conn: socket.socket, buffered: bytes) -> tuple[bytes, bytes]:
    data = buffered
    while b"\r\n" not in data:
        block = conn.recv(65536)
        if not block:
            raise OSError("the client closed the connection mid-body")
        data += block
    end = data.index(b"\r\n") + 2
    return data[:end], data[end:]


def _read_body(conn: socket.socket, headers: dict[str, str], rest: bytes) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raw = []
        while True:
            line, rest = _read_line(conn, rest)
            raw.append(line)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    line, rest = _read_line(conn, rest)
                    raw.append(line)
                    if line == b"\r\n":
                        return b"".join(raw)
            data, rest = _read_exact(conn, rest, size + 2)
            raw.append(data)
    length = int(headers.get("content-length", "0") or "0")
    body, _ = _read_exact(conn, rest, length)
    return body


def _with_connection_close(head: bytes) -> bytes:
    lines = head[:-4].split(b"\r\n")
    kept = [
        line
        for line in lines
        if not line.lower().startswith((b"connection:", b"keep-alive:", b"proxy-connection:"))
    ]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"


def _error_response(status: int, retry_after: str) -> bytes:
    reason = {429: "Too Many Requests", 503: "Service Unavailable"}[status]
    code = {429: "too_many_requests", 503: "service_not_available"}[status]
    body = json.dumps(
        {
            "status_code": status,
            "error_code": code,
            "message": "Injected fault.",
            "id": "fault-proxy",
        }
    ).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "X-Request-Id: fault-proxy",
        "Connection: close",
    ]
    if status == 429:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _cut(response: bytes, align: int) -> bytes:
    end = response.index(b"\r\n\r\n") + 4
    body = response[end:]
    return response[:end] + body[: len(body) // 2 // align * align]


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
