"""The HTTP server under the app: waitress, extended so that a few slow, broken or hostile
clients cannot take it away from everyone else.

waitress fits this job because its workers never touch a socket: one I/O thread reads every
request in full before a worker runs it, and writes every response; a file response
(``wsgi.file_wrapper``) is streamed by that I/O thread after the worker has returned. So a slow
sender or a stalled reader costs a socket and a buffer, never a worker. This module adds what
waitress lacks (``HACKING.md`` explains the choice and the measurements):

* **Deadlines**: the request line and headers must arrive within
  :attr:`~kloudless.server.settings.Settings.header_timeout` seconds of the first byte (or of the
  connection, for its first request), and a body must keep an average of
  :attr:`~kloudless.server.settings.Settings.min_body_rate` bytes per second; late requests get
  a JSON ``408``. waitress's own idle timeout (``channel_timeout``) is the send timeout for
  stalled readers.
* **Connection limits that protect new clients**: at
  :attr:`~kloudless.server.settings.Settings.connection_limit` open connections, each new one
  evicts the connection that has been idle longest without a request in progress; one client
  address holds at most
  :attr:`~kloudless.server.settings.Settings.connections_per_address` connections (more get a
  JSON ``429``).
* **A look at the headers before the body**: the app's ``preflight(environ)`` (host, route,
  authentication, quota) runs as soon as the headers are in; a refusal is answered before any
  of the body is stored. A body of at most :attr:`Limits.small_body` bytes is received first
  (it costs no more than its headers) and the app checks everything as it runs it. Accepted
  bodies over waitress's in-memory buffer go to ``<data dir>/tmp/body-*``
  (:class:`~kloudless.server.spool.SpooledBody`), where the app adopts them without a copy; a
  full disk there is a JSON ``507``.
* **The JSON error contract** for everything waitress answers by itself (bad request lines,
  oversized headers, 408, 413, 500), followed by a lingering close that reads and drops a bounded
  amount of the unread body, so that the client sees the answer rather than a reset.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import select
import shutil
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional

from waitress.buffers import OverflowableBuffer, ReadOnlyFileBasedBuffer
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.receiver import ChunkedReceiver, FixedStreamReceiver
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.utilities import Error, RequestEntityTooLarge
from waitress.wasyncore import _DISCONNECTED

from .balance import NAP, Slot
from .diskspace import is_disk_full
from .routing import AFTER_RESPONSE, PREFLIGHTED
from .spool import BODY_IN_PLACE, HASH_BODY, SPOOL_DIR, InPlaceBody, SpooledBody
from .transfer_limits import SLOT_HELD

log = logging.getLogger("kloudless.server")

#: ``(status line, headers, body)`` of an answer sent as is.
Answer = tuple[str, list[tuple[str, str]], bytes]
#: The app's look at a request's headers: ``preflight(environ) -> (answer, body limit)``; with
#: an answer (not None) it is sent instead, and the body is never read; else the body may have
#: at most ``body limit`` bytes.
Preflight = Callable[[dict[str, Any]], tuple[Optional[Answer], int]]

#: Most bytes read from a socket at once while a request body of known length arrives
#: (waitress reads 8 KiB at a time, which costs a turn of its loop, a parser call and a write
#: per 8 KiB: most of the server's CPU time on a large upload); into one reused buffer.
BODY_RECV_BYTES = 1024 * 1024

#: A whole body of at most this many bytes, in one chunk (a small download, a JSON answer), is
#: sent with its head in one send (see :meth:`Task.write`).
ONE_SEND_BYTES = 64 * 1024

#: After an early answer, read and drop at most this much of the unread body ...
LINGER_BYTES = 4 * 1024 * 1024
#: ... for at most this many seconds, before closing (so the client reads the answer).
LINGER_SECONDS = 2.0

#: ``error_code`` of the statuses waitress answers by itself.
ERROR_CODES = {
    400: "bad_request",
    408: "request_timeout",
    413: "request_too_large",
    429: "too_many_requests",
    431: "request_too_large",
    500: "internal_error",
    501: "not_implemented",
    507: "insufficient_storage",
}


class RequestTimeout(Error):
    code = 408
    reason = "Request Timeout"


class InsufficientStorage(Error):
    code = 507
    reason = "Insufficient Storage"


class AppAnswer(Error):
    """An answer the app's preflight gave: ``(status line, headers, body)``."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("")
        self.answer = answer
        self.code = int(answer[0].split(" ", 1)[0])


def json_error(status: int, reason: str, message: str) -> Answer:
    """:returns: ``(status line, headers, body)`` of a JSON error in the API's contract."""
    request_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "status_code": status,
            "error_code": ERROR_CODES.get(status, "internal_error"),
            "message": message,
            "id": request_id,
        },
        separators=(",", ":"),
    ).encode("utf-8")
    headers = [("Content-Type", "application/json"), ("X-Request-Id", request_id)]
    return f"{status} {reason}", headers, body


class JsonErrorTask(ErrorTask):
    """waitress's own error answers in the JSON contract, then a lingering close."""

    def execute(self) -> None:
        error = self.request.error
        if isinstance(error, AppAnswer):
            status, headers, body = error.answer
        else:
            message = f"{error.reason}: {error.body}" if error.body else error.reason
            status, headers, body = json_error(error.code, error.reason, message)
            log.info(
                "%s %s %s (answered by the HTTP server) request_id=%s",
                getattr(self.request, "command", "-") or "-",
                "-",
                error.code,
                headers[1][1],
            )
        self.status = status
        self.response_headers.extend(headers)
        self.set_close_on_finish()
        self.content_length = len(body)
        self.channel.linger = True
        self.write(body)


class SpoolBuffer:
    """waitress's file buffer for a request body spooled into the data dir: each chunk goes to
    :meth:`SpooledBody.append <kloudless.server.spool.SpooledBody.append>` (written at the end,
    hashed for uploads, its write-out started behind the writer); the app reads the file.

    :param from_buffer: the in-memory buffer whose bytes come first.
    """

    def __init__(self, body: SpooledBody, from_buffer: Any = None) -> None:
        self.body = body
        if from_buffer is not None:
            source = from_buffer.getfile()
            source.seek(0)
            while chunk := source.read(BODY_RECV_BYTES):
                body.append(chunk)

    def __len__(self) -> int:
        return self.body.written

    def __bool__(self) -> bool:
        return True

    def append(self, s: bytes) -> None:
        self.body.append(s)

    def getfile(self) -> SpooledBody:
        return self.body

    def close(self) -> None:
        self.body.close()


class DataDirBuffer(OverflowableBuffer):
    """waitress's request body buffer, overflowing into a :class:`SpooledBody` in the data dir
    instead of the system temp dir (hashed as it arrives when :attr:`hashed`: an upload's
    preflight asks for it); a full disk switches it to dropping the rest (the parser then
    answers 507)."""

    buf: Any

    def __init__(self, overflow: int, directory: str) -> None:
        super().__init__(overflow)
        self.directory = directory
        self.failed = False
        self.hashed = False

    def _set_large_buffer(self) -> None:
        old: Any = getattr(self, "buf", None)
        body = None
        try:
            body = SpooledBody.create(self.directory, hashed=self.hashed)
            self.buf = SpoolBuffer(body, old)
        except OSError as exc:
            if body is not None:
                body.close()  # removes the file
            self._fail(exc)
            return
        if hasattr(old, "close"):
            old.close()
        self.overflowed = True

    def append(self, s: bytes) -> None:
        if self.failed:
            return
        try:
            super().append(s)
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if not is_disk_full(exc):
            log.error("cannot spool a request body: %s", exc)
        self.failed = True
        self.no_space = is_disk_full(exc)
        if self.buf is not None:
            self.buf.close()
        self.buf = None
        self.strbuf = b""
        self.overflowed = True  # keep append() from trying to overflow again


class InPlaceBuffer:
    """waitress's request body buffer for a body the app's preflight placed
    (:class:`~kloudless.server.spool.InPlaceBody`, a multipart part written straight into its
    session's file): the bytes go there as they arrive, the app reads none."""

    def __init__(self, body: InPlaceBody) -> None:
        self.body = body
        self.overflowed = True
        self.no_space = False

    @property
    def failed(self) -> bool:
        """True once a write failed (the parser then answers, 507 for a full disk)."""
        if self.body.error is None:
            return False
        self.no_space = is_disk_full(self.body.error)
        return True

    def __len__(self) -> int:
        return self.body.received

    def append(self, s: bytes) -> None:
        self.body.write(s)

    def getfile(self) -> io.BytesIO:
        return io.BytesIO()  # the body is in place: nothing to read

    def close(self) -> None:
        self.body.close()


class Parser(HTTPRequestParser):
    """waitress's parser with a preflight of the app once the headers are in, bodies spooled
    into the data dir, and the times the deadlines need."""

    channel: Channel
    body_rcv: Any

    def __init__(self, adj: Any, channel: Channel | None = None) -> None:
        super().__init__(adj)
        if channel is not None:
            self.channel = channel
        self.started = time.time()
        self.headers_done_at = 0.0
        self.buffer: DataDirBuffer | InPlaceBuffer | None = None
        #: The body's place when the app's preflight gave one (written there as it arrives).
        self.in_place: InPlaceBody | None = None
        #: Most body bytes accepted (the app's preflight sets it for the route).
        self.body_limit: int | None = None
        #: Releases the transfer slot the app's preflight took for this request (upload
        #: concurrency limits), once the request ends; see :meth:`close`.
        self.release: Callable[[], None] | None = None
        #: The app's preflight asked for the body's SHA-256 as it arrives (an upload).
        self.hash_body = False
        #: What the app's preflight found for this request, handed to its dispatch as is
        #: (``environ[PREFLIGHTED]``).
        self.preflighted: object = None

    def body_left(self) -> int:
        """:returns: how many bytes of a body of known length are still to come (0 when none
        is arriving: headers, a chunked body, or the request is complete)."""
        receiver = self.body_rcv
        if self.completed or self.chunked or not isinstance(receiver, FixedStreamReceiver):
            return 0
        return int(receiver.remain)

    def close(self) -> None:
        # The request is over (answered, or its connection closed): its slot is free again.
        release, self.release = self.release, None
        try:
            super().close()
        finally:
            if release is not None:
                release()

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        self.headers_done_at = time.time()
        if self.body_rcv is None or not hasattr(self, "channel"):
            return
        server = self.channel.server
        self.buffer = DataDirBuffer(self.adj.inbuf_overflow, server.spool_dir)
        if self.chunked:
            self.body_rcv = ChunkedReceiver(self.buffer)
        else:
            self.body_rcv = FixedStreamReceiver(self.content_length, self.buffer)
        if not self.chunked and self.content_length <= server.limits.small_body:
            return  # received in full first: the app checks the request as it runs it
        answer = server.preflight_request(self.channel, self)
        if answer is not None:
            self.error = answer
            self.completed = True
        if self.in_place is not None and (answer is not None or self.chunked):
            self.in_place.close()
            self.in_place = None
        if self.in_place is not None:
            self.buffer.close()  # nothing was spooled yet
            self.buffer = InPlaceBuffer(self.in_place)
            self.body_rcv = FixedStreamReceiver(self.content_length, self.buffer)
        elif self.hash_body:
            self.buffer.hashed = True

    def received(self, data: bytes) -> int:
        consumed: int = super().received(data)
        buffer = self.buffer
        limit = self.body_limit
        if limit is not None and self.body_bytes_received > limit and not self.completed:
            self.error = RequestEntityTooLarge(f"The request body exceeds {limit} bytes.")
            self.completed = True
        elif buffer is not None and buffer.failed and not self.completed:
            self.error = (
                InsufficientStorage("The server's disk is full.")
                if getattr(buffer, "no_space", False)
                else Error("The request body could not be stored.")
            )
            self.completed = True
        return consumed


class Task(WSGITask):
    """waitress's WSGI task; hands the app what its preflight left for the request: the
    transfer slot it holds (so that it does not take a second one), the body's place, the
    route and credentials it found; and runs the app's after-response work
    (:data:`~kloudless.server.routing.AFTER_RESPONSE`) once the answer is sent.

    A worker sends what the app's body yields as it writes it (waitress's ``write_soon``); a
    body of one chunk of at most :data:`ONE_SEND_BYTES` goes out with its head in one send
    (:meth:`write`). Once the task is done, whatever is still buffered is sent from this thread
    (not a file wrapper's bytes, which the I/O thread streams), then the app's after-response
    work runs while the client reads its answer. The connection's next request is read after
    that work, as it was read after the app before.
    """

    wrote_header: bool
    content_length: int | None

    def __init__(self, channel: Any, request: Any) -> None:
        super().__init__(channel, request)
        #: What the app left to run once the answer is sent (``environ[AFTER_RESPONSE]``).
        self.after_response: list[Callable[[], None]] = []

    def service(self) -> None:
        try:
            super().service()
        finally:
            if self.after_response:
                self._send_now()
                self._run_after_response()

    def write(self, data: bytes) -> None:
        if self.wrote_header or not self.complete or not data or len(data) > ONE_SEND_BYTES:
            super().write(data)  # waitress's own (it refuses a body before start_response)
            return
        # The first chunk: waitress would send the head, then the chunk, in two sends (two
        # segments for the client to wait for). A body that is this one chunk goes out with
        # its head in one.
        head = self.build_response_header()
        self.wrote_header = True
        if self.has_body and not self.chunked_response and self.content_length == len(data):
            self.content_bytes_written = len(data)
            self.channel.write_soon(head + data)
            return
        self.channel.write_soon(head)
        super().write(data)

    def _send_now(self) -> None:
        """Send what the answer left in the connection's buffers from this worker (waitress's
        own flush under its lock; a socket error marks the connection to close, as there)."""
        channel = self.channel
        if not channel.total_outbufs_len or not channel.connected:
            return
        if any(isinstance(buffer, ReadOnlyFileBasedBuffer) for buffer in channel.outbufs):
            return  # a file wrapper's bytes: streamed by the I/O thread, as always
        with channel.outbuf_lock:
            channel._flush_exception(channel._flush_some, do_close=False)

    def _run_after_response(self) -> None:
        callbacks, self.after_response = self.after_response, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("after-response work failed")

    def get_environment(self) -> Any:
        environ = super().get_environment()
        environ[AFTER_RESPONSE] = self.after_response
        if getattr(self.request, "release", None) is not None:
            environ[SLOT_HELD] = self.request.release
        if getattr(self.request, "in_place", None) is not None:
            environ[BODY_IN_PLACE] = self.request.in_place
        if getattr(self.request, "preflighted", None) is not None:
            environ[PREFLIGHTED] = self.request.preflighted
        return environ


class Channel(HTTPChannel):
    """One client connection: our parser, JSON errors, deadlines and a lingering close."""

    parser_class = Parser
    task_class = Task
    error_task_class = JsonErrorTask
    server: Server

    def __init__(self, server: Server, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        self.linger = False
        self.draining_until = 0.0
        self.drained = 0
        self.served = False
        self.address = addr[0] if isinstance(addr, tuple) and addr else str(addr)
        super().__init__(server, sock, addr, adj, map=map)
        # The parser needs its channel (for the preflight and the spool dir).
        self.parser_class = functools.partial(Parser, channel=self)  # type: ignore[assignment]

    def add_channel(self, map: Any = None) -> None:
        super().add_channel(map)
        self.server.per_address[self.address] += 1
        self.server.publish_connections()

    def del_channel(self, map: Any = None) -> None:
        if self._fileno in self.server.active_channels:
            counts = self.server.per_address
            counts[self.address] -= 1
            if counts[self.address] <= 0:
                del counts[self.address]
        super().del_channel(map)
        self.server.publish_connections()

    def received(self, data: bytes) -> bool:
        served_before = len(self.requests)
        result: bool = super().received(data)
        if len(self.requests) > served_before:
            self.served = True
        return result

    def _read_body(self, left: int) -> None:
        """Receive the next bytes of a body of known length, up to :data:`BODY_RECV_BYTES`
        (never past the body's end) into the server's reused buffer; the parser and the body
        buffer consume them before the next read (what waitress's ``handle_read`` does, in
        larger reads and without a new bytes object each time)."""
        view = self.server.body_view
        try:
            count = self.socket.recv_into(view[: min(left, len(view))])
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in _DISCONNECTED and self.adj.log_socket_errors:
                self.logger.exception("Socket error")
            self.handle_close()
            return
        if not count:  # the client closed the connection
            self.handle_close()
            self.connected = False
            return
        self.last_activity = time.time()
        self.received(view[:count])  # type: ignore[arg-type]

    # -- lingering close -------------------------------------------------------------------
    def handle_close(self) -> None:
        if self.linger and self.connected and not self.draining_until:
            self.linger = False
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            else:
                self.draining_until = time.monotonic() + LINGER_SECONDS
                return
        self.draining_until = 0.0
        partial: Any = getattr(self, "request", None)  # still arriving when the connection ended
        if partial is not None:
            self.request = None
            partial.close()  # its spooled body and its transfer slot
        super().handle_close()

    def readable(self) -> bool:
        if self.draining_until:
            return True
        return bool(super().readable())

    def writable(self) -> bool:
        if self.draining_until:
            return time.monotonic() > self.draining_until  # then handle_write closes
        return bool(super().writable())

    def handle_write(self) -> None:
        if self.draining_until:
            self.handle_close()
            return
        super().handle_write()

    def handle_read(self) -> None:
        if not self.draining_until:
            request = self.request
            left = request.body_left() if isinstance(request, Parser) else 0
            if left:
                self._read_body(left)
            else:
                super().handle_read()
            return
        try:
            data = self.socket.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.drained += len(data)
        if not data or self.drained > LINGER_BYTES or time.monotonic() > self.draining_until:
            self.handle_close()


class Server(TcpWSGIServer):
    """waitress's TCP server with eviction at the connection limit, a per-address limit and
    the deadlines of :mod:`kloudless.server.serving` (checked once a second)."""

    channel_class = Channel

    def __init__(
        self,
        *args: Any,
        limits: Limits,
        preflight: Preflight | None,
        balance: Slot | None = None,
        **kw: Any,
    ):
        self.limits = limits
        self.preflight = preflight
        #: This worker's place among the ``--workers`` processes (see :mod:`.balance`).
        self.balance = balance
        self.spool_dir = limits.spool_dir
        self.per_address: Counter[str] = Counter()
        #: The buffer bodies are received into (by the I/O thread only; see Channel._read_body).
        self.body_view = memoryview(bytearray(BODY_RECV_BYTES))
        super().__init__(*args, **kw)

    def close_channels(self) -> None:
        """Close every connection with its buffers (open download files included); for a
        server that stops."""
        for channel in list(self.active_channels.values()):
            channel.linger = False
            channel.handle_close()

    # -- connections -----------------------------------------------------------------------
    def publish_connections(self) -> None:
        """Tell the other worker processes how many connections this one holds."""
        if self.balance is not None:
            self.balance.set(len(self.active_channels))

    def readable(self) -> bool:
        if self.balance is not None:  # called on every turn of the I/O loop
            self.balance.beat()
        return bool(super().readable())

    def handle_accept(self) -> None:
        if self.balance is not None and self.balance.defer():
            # A busier worker leaves the connection to a less loaded one for a moment; its
            # loop goes on serving its own connections between naps.
            time.sleep(NAP)
            return
        try:
            accepted = self.accept()
        except OSError:
            return
        if accepted is None:
            return
        conn, addr = accepted
        try:
            self.set_socket_options(conn)
        except OSError:  # the client is already gone
            conn.close()
            return
        addr = self.fix_addr(addr)
        address = addr[0] if isinstance(addr, tuple) and addr else str(addr)
        limit = self.limits.connections_per_address
        if limit and self.per_address[address] >= limit:
            _refuse(conn, 429, "Too Many Requests", "Too many connections from this address.")
            return
        if len(self.active_channels) >= self.limits.connection_limit and not self._evict_one():
            _refuse(conn, 503, "Service Unavailable", "Too many connections; try again soon.")
            return
        self.channel_class(self, conn, addr, self.adj, map=self._map)

    def _evict_one(self) -> bool:
        """Close the connection idle longest with no request being run or answered.

        :returns: whether one was closed.
        """
        candidates = [
            c
            for c in self.active_channels.values()
            if not c.requests and not c.total_outbufs_len and not _receiving_body(c)
        ]
        if not candidates:
            return False
        victim = min(candidates, key=lambda c: c.last_activity)
        victim.handle_close()
        return True

    # -- the app's look at the headers -----------------------------------------------------
    def preflight_request(self, channel: Channel, request: Parser) -> Error | None:
        """Run the app's preflight on ``request``'s headers (and set its body limit), then check
        that a body of known length fits on the disk.

        :returns: the error to answer instead of reading the body, or None.
        """
        if self.preflight is not None:
            environ = WSGITask(channel, request).get_environment()
            environ["wsgi.input"] = io.BytesIO()  # no body yet
            try:
                answer, request.body_limit = self.preflight(environ)
                request.release = environ.get(SLOT_HELD)
                request.preflighted = environ.get(PREFLIGHTED)
                placed = environ.get(BODY_IN_PLACE)
                request.in_place = placed if isinstance(placed, InPlaceBody) else None
                request.hash_body = bool(environ.get(HASH_BODY))
            except Exception:
                log.exception("preflight failed")
                answer = json_error(500, "Internal Server Error", "The request failed.")
            if answer is not None:
                return AppAnswer(answer)
        if request.content_length and not request.chunked:
            try:
                free = shutil.disk_usage(self.spool_dir).free
            except OSError:
                return None
            if free - request.content_length < self.limits.min_free_bytes:
                return InsufficientStorage("The server's disk is full.")
        return None

    # -- deadlines -------------------------------------------------------------------------
    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        limits = self.limits
        for channel in list(self.active_channels.values()):
            if channel.will_close and not channel.requests and channel.total_outbufs_len:
                # A reader that stopped reading: waitress marks it to close after the idle
                # timeout but closes only once the socket is writable again, which a stalled
                # socket never is. Close it now (the send timeout); closing its answer's body
                # frees the download's transfer slot too.
                channel.linger = False
                channel.handle_close()
                continue
            if channel.requests or channel.will_close:
                continue
            request = channel.request
            if request is None:
                if not channel.served and now - channel.creation_time > limits.header_timeout:
                    channel.will_close = True  # never sent a request
                continue
            if not request.headers_finished:
                if now - request.started > limits.header_timeout:
                    _expire(channel, "The request headers took too long to arrive.")
            elif request.body_rcv is not None and not request.completed:
                elapsed = now - request.headers_done_at
                if elapsed > limits.header_timeout and (
                    request.body_bytes_received < limits.min_body_rate * elapsed
                ):
                    _expire(channel, "The request body arrived too slowly.")


def _receiving_body(channel: Channel) -> bool:
    request = channel.request
    return request is not None and request.headers_finished and not request.completed


def _expire(channel: Channel, message: str) -> None:
    """Answer ``channel``'s half-received request with a JSON 408 (from the I/O thread)."""
    with channel.requests_lock:
        request = channel.request
        if request is None or channel.requests or request.completed:
            return
        if not request.headers_finished:
            request.parse_header(b"GET / HTTP/1.0\r\n")
        request.error = RequestTimeout(message)
        request.completed = True
        channel.request = None
        channel.requests.append(request)
    channel.server.add_task(channel)


def _refuse(conn: socket.socket, status: int, reason: str, message: str) -> None:
    """Answer a connection that is not accepted with a JSON error, then close it."""
    line, headers, body = json_error(status, reason, message)
    head = f"HTTP/1.1 {line}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    if status in (429, 503):
        head += "Retry-After: 1\r\n"
    try:
        conn.setblocking(False)
        conn.send(head.encode("latin-1") + b"\r\n" + body)
    except OSError:
        pass
    conn.close()


class NewestFirst(threading.Condition):
    """A condition whose :meth:`notify` wakes the threads that began waiting last.

    :class:`threading.Condition` wakes the longest waiting thread, so waitress's idle workers
    take turns: with fewer requests at once than workers, every request runs on a thread (and
    its SQLite connection) that has been idle the longest, which cost a 4 KiB ``GET`` about a
    quarter more server CPU than the same requests on one thread. Woken newest first, the
    threads that just finished take the next requests, and the others stay asleep until more
    requests arrive at once. ``notify`` is the standard library's, reading the waiters from the
    other end (``_waiters``, the deque of the waiters' locks).
    """

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():  # type: ignore[attr-defined]
            raise RuntimeError("cannot notify on un-acquired lock")
        waiters = self._waiters  # type: ignore[attr-defined]
        while waiters and n > 0:
            waiter = waiters[-1]
            try:
                waiter.release()
            except RuntimeError:  # released by an interrupted notify (see threading.py)
                pass
            else:
                n -= 1
            try:
                waiters.remove(waiter)
            except ValueError:
                pass


class Dispatcher(ThreadedTaskDispatcher):
    """waitress's worker threads, the idle one that finished last taking the next task (see
    :class:`NewestFirst`); tasks still run in the order they came."""

    def __init__(self) -> None:
        super().__init__()
        self.queue_cv = NewestFirst(self.lock)


@dataclass(frozen=True)
class Limits:
    """What :class:`Server` enforces (see :class:`~kloudless.server.settings.Settings`)."""

    spool_dir: str
    header_timeout: float
    min_body_rate: int
    connection_limit: int
    connections_per_address: int
    min_free_bytes: int
    #: Bodies of at most this many bytes (of known length) are received before the app's
    #: preflight, which they skip: the app runs its checks on the whole request.
    small_body: int = 0


def create_server(
    app: Any,
    *,
    host: str,
    port: int,
    threads: int,
    data_dir: str,
    header_timeout: float,
    idle_timeout: float,
    min_body_rate: int,
    connection_limit: int,
    connections_per_address: int,
    min_free_bytes: int,
    max_body_bytes: int,
    small_body_bytes: int = 0,
    sock: socket.socket | None = None,
    balance: Slot | None = None,
) -> Server:
    """Build the server (bound, not yet running) for ``app``.

    :param small_body_bytes: bodies up to this size skip the app's preflight (see
        :class:`Limits`).
    :param sock: an already bound listening socket to serve on (several processes can share
        one); else ``host:port`` is bound.
    :param balance: this worker's slot when several processes share ``sock``.
    """
    from waitress.adjustments import Adjustments

    spool_dir = os.path.join(data_dir, SPOOL_DIR)
    os.makedirs(spool_dir, mode=0o700, exist_ok=True)
    where: dict[str, Any] = {"sockets": [sock]} if sock else {"host": host, "port": port}
    adj = Adjustments(
        **where,
        threads=threads,
        ident="kloudless",
        clear_untrusted_proxy_headers=True,
        max_request_body_size=max_body_bytes,
        channel_timeout=max(1, int(idle_timeout)),
        cleanup_interval=1,
        # The eviction above happens below this hard cap; poll() has no FD_SETSIZE limit.
        connection_limit=connection_limit + 64,
        asyncore_use_poll=hasattr(select, "poll"),
    )
    limits = Limits(
        spool_dir,
        header_timeout,
        min_body_rate,
        connection_limit,
        connections_per_address,
        min_free_bytes,
        small_body_bytes,
    )
    dispatcher = Dispatcher()
    dispatcher.set_thread_count(threads)
    return Server(
        app,
        {},
        True,
        sock,
        dispatcher=dispatcher,
        adj=adj,
        bind_socket=sock is None,
        limits=limits,
        preflight=getattr(app, "preflight", None),
        balance=balance,
        **({"sockinfo": (sock.family, sock.type, sock.proto, sock.getsockname())} if sock else {}),
    )
