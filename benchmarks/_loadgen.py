"""A cheap HTTP/1.1 load generator (what ``wrk`` does, which this machine cannot install).

Why not ``requests``: building, sending and parsing one request with ``requests`` costs the
client 300-500 µs of CPU, about as much as the server spends on a 4 KiB download. On a 2-core
machine the clients then take most of a core, and a second server worker has no core left to
run on. This client sends pre-built request bytes over keep-alive connections and parses only
the status line and ``Content-Length`` (tens of µs per request), so the cores go to the server.

One :func:`run` call is one client process: ``connections`` sockets driven by one
:mod:`selectors` loop (one request in flight per connection, no pipelining). Every response's
status is checked; the bodies of the first responses and of every :data:`CHECK_EVERY`-th one
are handed to the workload's ``check`` (e.g. "the 4 KiB we uploaded", "a page of 1000
objects"), so a fast wrong answer is an error, not a good figure.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["CHECK_EVERY", "LoadError", "Result", "Workload", "build_request", "cycle", "run"]

#: Besides the first :data:`CHECK_FIRST` responses of each connection, every this many
#: responses have their body checked.
CHECK_EVERY = 50
CHECK_FIRST = 1
_RECV = 1 << 16
_SMALL_SEND = 1 << 16


class LoadError(RuntimeError):
    """A response was not what the workload expects (status, framing or body)."""


def build_request(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """:returns: the bytes of one HTTP/1.1 keep-alive request for ``url`` (path and query
    taken from it; ``Host`` and ``Content-Length`` added)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Workload:
    """What one client process sends.

    :ivar url: any URL of the server (its host and port are connected to).
    :ivar request: ``request(n) -> bytes``: the ``n``-th request of this client (cycle
        through pre-built ones; build only what must differ, such as a new file name).
    :ivar check: ``check(body)`` raises :class:`LoadError` for a wrong body (sampled).
    :ivar status: the status every response must have.
    """

    url: str
    request: Callable[[int], bytes]
    check: Callable[[bytes], None] | None = None
    status: int = 200


@dataclass
class Result:
    """:ivar count: responses. :ivar elapsed: seconds from the first request to the last
    response. :ivar latencies: seconds per request. :ivar checked: bodies checked.
    :ivar answered: responses per connection, by the connection's local port (to find which
        server process served them, see ``before_close`` of :func:`run`).
    :ivar extra: what a ``before_close`` callback adds."""

    count: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    checked: int = 0
    cpu: float = 0.0
    answered: dict[int, int] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)


class _Connection:
    __slots__ = (
        "sock", "buf", "view", "filled", "started", "header_end", "length", "answered", "close",
    )  # fmt: skip

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        # Answers are received into one buffer per connection (recv_into: no new bytes object
        # per read), grown to the largest answer seen.
        self.buf = bytearray(_RECV)
        self.view = memoryview(self.buf)
        self.filled = 0
        self.started = 0.0
        self.header_end = -1
        self.length = 0
        self.answered = 0
        self.close = False

    def receive(self) -> int:
        """Read what the socket has into the buffer. :returns: the bytes read (0: closed)."""
        if self.filled == len(self.buf):
            self.grow(2 * len(self.buf))
        count = self.sock.recv_into(self.view[self.filled :])
        self.filled += count
        return count

    def grow(self, size: int) -> None:
        if size > len(self.buf):
            self.view.release()
            self.buf.extend(bytes(size - len(self.buf)))
            self.view = memoryview(self.buf)


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Blocking: the selector says when to read (a socket timeout would add a poll() per call);
    # sends of small requests fit the socket buffer, larger ones get the timeout (_send).
    sock.settimeout(None)
    return sock


def _send(sock: socket.socket, data: bytes, timeout: float) -> None:
    if len(data) <= _SMALL_SEND:
        sock.sendall(data)
        return
    sock.settimeout(timeout)
    try:
        sock.sendall(data)
    finally:
        sock.settimeout(None)


def _parse_head(conn: _Connection, expected: int) -> bool:
    """Find the end of the head in ``conn.buf``; check the status, read the framing.
    :returns: False while the head is incomplete."""
    end = conn.buf.find(b"\r\n\r\n", 0, conn.filled)
    if end < 0:
        if conn.filled > 65536:
            raise LoadError("no end of the response head in 64 KiB")
        return False
    head = bytes(conn.buf[:end]).lower()
    if not head.startswith(b"http/1.1 "):
        raise LoadError(f"not an HTTP/1.1 response: {head[:40]!r}")
    status = int(head[9:12])
    if status != expected:
        text = bytes(conn.buf[: min(end + 300, conn.filled)]).decode("latin-1", "replace")
        raise LoadError(f"status {status}, expected {expected}: {text}")
    marker = head.find(b"\r\ncontent-length:")
    if marker < 0:
        raise LoadError("a response without Content-Length (chunked answers are not read)")
    stop = head.find(b"\r\n", marker + 2)
    conn.length = int(head[marker + 17 : stop if stop >= 0 else len(head)])
    conn.close = b"\r\nconnection: close" in head
    conn.header_end = end + 4
    conn.grow(conn.header_end + conn.length)
    return True


def run(
    workload: Workload,
    connections: int,
    seconds: float,
    max_requests: int,
    timeout: float = 120.0,
    before_close: Callable[[Result], None] | None = None,
) -> Result:
    """Send ``workload`` over ``connections`` keep-alive connections until ``seconds`` passed
    or ``max_requests`` were sent, then wait for the answers in flight.

    :param timeout: the longest wait for any one answer (seconds).
    :param before_close: called with the result while the connections are still open.
    :raises LoadError: a wrong answer, or none within ``timeout``.
    :raises OSError: a connection failed.
    """
    parts = urlsplit(workload.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    result = Result()
    selector = selectors.DefaultSelector()
    sent = 0
    perf = time.perf_counter
    check = workload.check
    expected = workload.status
    latencies = result.latencies
    open_conns: list[_Connection] = []

    def send(conn: _Connection) -> None:
        nonlocal sent
        conn.started = perf()
        _send(conn.sock, workload.request(sent), timeout)
        sent += 1

    try:
        for _ in range(connections):
            conn = _Connection(_connect(host, port, timeout))
            open_conns.append(conn)
            selector.register(conn.sock, selectors.EVENT_READ, conn)
        cpu = time.process_time()
        started = perf()
        deadline = started + seconds
        last = started
        for conn in open_conns:
            if sent < max_requests:
                send(conn)
        in_flight = min(connections, sent)
        while in_flight:
            events = selector.select(timeout)
            if not events:
                raise LoadError(f"no answer within {timeout:g} s")
            for key, _ in events:
                conn = key.data
                if not conn.receive():
                    raise LoadError("the server closed a connection mid-answer")
                if conn.header_end < 0 and not _parse_head(conn, expected):
                    continue
                end = conn.header_end + conn.length
                if conn.filled < end:
                    continue
                if conn.filled > end:
                    raise LoadError("bytes after the answer (none were asked for)")
                now = perf()
                latencies.append(now - conn.started)
                last = now
                if check is not None and (
                    conn.answered < CHECK_FIRST or len(latencies) % CHECK_EVERY == 0
                ):
                    check(bytes(conn.view[conn.header_end : end]))
                    result.checked += 1
                conn.answered += 1
                conn.filled = 0
                conn.header_end = -1
                if conn.close:
                    selector.unregister(conn.sock)
                    conn.sock.close()
                    conn.sock = _connect(host, port, timeout)
                    selector.register(conn.sock, selectors.EVENT_READ, conn)
                    conn.close = False
                if now < deadline and sent < max_requests:
                    send(conn)
                else:
                    in_flight -= 1
        result.count = len(latencies)
        result.elapsed = last - started
        result.cpu = time.process_time() - cpu
        for conn in open_conns:
            port = conn.sock.getsockname()[1]
            result.answered[port] = result.answered.get(port, 0) + conn.answered
        if before_close is not None:
            before_close(result)
        return result
    finally:
        selector.close()
        for conn in open_conns:
            conn.sock.close()


def cycle(requests: Sequence[bytes]) -> Callable[[int], bytes]:
    """:returns: a ``request(n)`` that cycles through pre-built ``requests``."""
    count = len(requests)
    return lambda n: requests[n % count]
