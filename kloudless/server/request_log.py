"""The request log: one line per request (method, redacted path, status, duration, id) on the
``kloudless.server`` logger.

Where ``kloudless serve`` set up logging (:func:`configure_logging`: one handler on the root
logger, :data:`LOG_FORMAT`), a line goes straight to that handler's stream, under the handler's
lock, as the same text the logging module would write: making the record, filtering it and
formatting it cost 40-60 µs of server CPU on every request, more than the socket write
(measured beside a bare waitress, see docs/performance.rst). Anything else that could see or
change the record (a filter or handler on the way, another formatter, a level, logging
disabled) and the line goes through :meth:`logging.Logger.info` as any other record.
"""

from __future__ import annotations

import logging
import time

from ..util import FallbackHandler
from .hosts import log_path

__all__ = ["LOG_FORMAT", "RequestLogFormatter", "configure_logging", "write"]

log = logging.getLogger("kloudless.server")

#: The log's format (``kloudless serve``): time, logger name, message.
LOG_FORMAT = "%(asctime)s %(name)s %(message)s"
#: The request line's message, from method, path, status, milliseconds and request id.
MESSAGE = "%s %s %s %.1fms request_id=%s"


class RequestLogFormatter(logging.Formatter):
    """:class:`logging.Formatter` whose default ``%(asctime)s`` (no ``datefmt``) turns the
    date and time into text once per second instead of for every line; the lines are the
    same. The request log writes a line for every request."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt or not self.default_msec_format:
            return super().formatTime(record, datefmt)
        return self.stamp(record.created, record.msecs)

    def stamp(self, created: float, msecs: float) -> str:
        """:returns: the default ``%(asctime)s`` of a record made at ``created`` (seconds since
        the epoch) with ``msecs`` (its milliseconds, as :class:`logging.LogRecord` has them)."""
        second, text = self._second
        if second != int(created):  # the converter (localtime) drops the fraction
            second = int(created)
            text = time.strftime(self.default_time_format, self.converter(created))
            self._second = (second, text)
        return self.default_msec_format % (text, msecs)  # type: ignore[operator]


#: The handler :func:`configure_logging` installed, when its lines may be written directly.
_direct: logging.Handler | None = None


def configure_logging(filename: str | None = None) -> None:
    """Log ``INFO`` and up as ``kloudless serve`` does (:data:`LOG_FORMAT`, to standard error
    or to ``filename``), unless the root logger already has handlers (as
    :func:`logging.basicConfig`).

    The records then skip what :data:`LOG_FORMAT` never shows (the logging HOWTO's
    "Optimization": the caller's file and line, thread, process and process name), work the
    request log would do for every request; and request lines go straight to the handler
    (see the module docstring).
    """
    global _direct
    if logging.getLogger().handlers:
        return
    handler = logging.FileHandler(filename) if filename else logging.StreamHandler()
    handler.setFormatter(RequestLogFormatter(LOG_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging._srcfile = None  # no frame walk per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    _direct = handler


def write(method: str, path: str, status: int, ms: float, request_id: str) -> None:
    """Log the line of one request (``path`` redacted: :func:`~kloudless.server.hosts.log_path`)."""
    path = log_path(path)
    handler = _direct
    # No stream: a handler closed (at exit) or not yet opened, which its own emit() handles.
    if handler is None or getattr(handler, "stream", None) is None or not _delivered_as_is(handler):
        log.info(MESSAGE, method, path, status, ms, request_id)
        return
    created = time.time()
    formatter = handler.formatter
    assert isinstance(formatter, RequestLogFormatter)  # _delivered_as_is() checked it
    line = (
        f"{formatter.stamp(created, int((created - int(created)) * 1000))} {log.name} "
        f"{MESSAGE % (method, path, status, ms, request_id)}\n"
    )
    handler.acquire()
    try:
        stream = handler.stream  # type: ignore[attr-defined]
        stream.write(line)
        stream.flush()
    except Exception:
        record = log.makeRecord(log.name, logging.INFO, "", 0, MESSAGE, (), None)
        record.args = (method, path, status, ms, request_id)
        handler.handleError(record)  # what the handler's own emit() does on a failure
    finally:
        handler.release()


def _delivered_as_is(handler: logging.Handler) -> bool:
    """:returns: whether an ``INFO`` record of :data:`log` would reach ``handler``, and only it,
    unchanged, and be formatted by its :class:`RequestLogFormatter` with :data:`LOG_FORMAT`."""
    if not log.isEnabledFor(logging.INFO):  # levels and logging.disable(), cached by logging
        return False
    if log.filters:  # a parent's filters see only its own records, not propagated ones
        return False
    node = log
    while node.parent is not None:  # every logger up to the root
        # The SDK's fallback handler on ``kloudless`` writes nothing once the root logger has
        # a handler, which this function requires.
        if not node.propagate or any(
            type(h) is not FallbackHandler or h.filters for h in node.handlers
        ):
            return False
        node = node.parent
    root = logging.getLogger()
    formatter = handler.formatter
    return (
        root.handlers == [handler]
        and not root.filters
        and not handler.filters
        and handler.level <= logging.INFO
        and type(handler) in (logging.FileHandler, logging.StreamHandler)
        and type(formatter) is RequestLogFormatter  # a subclass may format otherwise
        and type(formatter._style) is logging.PercentStyle
        and formatter._fmt == LOG_FORMAT
        and bool(formatter.default_msec_format)
        and formatter.datefmt is None
        and getattr(handler, "terminator", None) == "\n"
    )
