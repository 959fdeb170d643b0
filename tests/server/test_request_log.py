"""The request log: lines written straight to the handler ``kloudless serve`` set up are the
lines the logging module would write; anything that could see or change a record sends the
line through logging instead."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kloudless.server import request_log
from kloudless.server.request_log import LOG_FORMAT, RequestLogFormatter, configure_logging

NOW = 1_780_000_123.4567


@pytest.fixture
def served_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Logging as ``kloudless serve`` sets it up, into a file; restored afterwards."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(request_log, "_direct", None)
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))
    path = tmp_path / "server.log"
    configure_logging(str(path))
    try:
        yield path
    finally:
        for handler in root.handlers:
            handler.close()


def _only_ours(monkeypatch: pytest.MonkeyPatch) -> logging.Handler:
    """Take pytest's capturing handlers (added to the root logger for each test's call) off:
    the root logger holds the handler :func:`configure_logging` added, as in ``kloudless
    serve``. :returns: that handler."""
    handler = request_log._direct
    assert handler is not None
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    return handler


def _expected(message: str, created: float = NOW) -> str:
    """:returns: the line the logging module writes for ``message`` made at ``created``."""
    record = logging.LogRecord("kloudless.server", logging.INFO, "", 0, message, (), None)
    record.created = created
    record.msecs = int((created - int(created)) * 1000)
    return logging.Formatter(LOG_FORMAT).format(record) + "\n"


def test_a_direct_line_is_the_line_logging_writes(
    served_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = _only_ours(monkeypatch)
    monkeypatch.setattr(request_log.time, "time", lambda: NOW)
    assert request_log._delivered_as_is(handler)
    request_log.write("GET", "/v1/accounts/1/storage/files/f/contents", 200, 1.25, "rid-1")
    request_log.write("PUT", "/v1/x", 404, 0.04, "rid-2")
    assert served_log.read_text() == _expected(
        "GET /v1/accounts/1/storage/files/f/contents 200 1.2ms request_id=rid-1"
    ) + _expected("PUT /v1/x 404 0.0ms request_id=rid-2")


def test_direct_lines_keep_their_place_among_other_records(
    served_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_ours(monkeypatch)
    log = logging.getLogger("kloudless.server")
    request_log.write("GET", "/a", 200, 1.0, "one")
    log.warning("a warning in between")
    request_log.write("GET", "/b", 200, 1.0, "two")
    lines = served_log.read_text().splitlines()
    assert [line.split(" ", 3)[3] for line in lines] == [
        "GET /a 200 1.0ms request_id=one",
        "a warning in between",
        "GET /b 200 1.0ms request_id=two",
    ]


def test_credentials_in_paths_are_redacted_both_ways(
    served_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_ours(monkeypatch)
    secret = "tok_" + "A" * 30
    request_log.write("GET", f"/v1/x/{secret}", 200, 1.0, "direct")
    logging.getLogger("kloudless.server").addFilter(lambda record: True)
    try:
        assert request_log._direct is not None
        assert not request_log._delivered_as_is(request_log._direct)
        request_log.write("GET", f"/l/link123/{secret}", 200, 1.0, "through-logging")
    finally:
        logging.getLogger("kloudless.server").filters.clear()
    text = served_log.read_text()
    assert secret not in text and "link123" not in text
    assert "/v1/x/tok_[REDACTED] 200" in text and "/l/[REDACTED]/" in text


def _filter_drop(record: logging.LogRecord) -> bool:
    return "drop-me" not in record.getMessage()


@pytest.mark.parametrize(
    "change",
    ["logger filter", "logger handler", "parent handler", "level", "disabled", "second handler",
     "other formatter", "handler filter", "handler level"],
)  # fmt: skip
def test_whatever_could_see_the_record_gets_one(
    served_log: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Each change makes the line go through logging, which then honours it."""
    log = logging.getLogger("kloudless.server")
    root = logging.getLogger()
    handler = _only_ours(monkeypatch)
    assert request_log._delivered_as_is(handler)
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    if change == "logger filter":
        monkeypatch.setattr(log, "filters", [_filter_drop])
    elif change == "logger handler":
        monkeypatch.setattr(log, "handlers", [Collect()])
    elif change == "parent handler":
        monkeypatch.setattr(logging.getLogger("kloudless"), "handlers", [Collect()])
    elif change == "level":
        log.setLevel(logging.WARNING)  # back to NOTSET below
    elif change == "disabled":
        logging.disable(logging.INFO)
    elif change == "second handler":
        monkeypatch.setattr(root, "handlers", [handler, Collect()])
    elif change == "other formatter":
        monkeypatch.setattr(handler, "formatter", logging.Formatter("%(levelname)s %(message)s"))
    elif change == "handler filter":
        monkeypatch.setattr(handler, "filters", [_filter_drop])
    elif change == "handler level":
        monkeypatch.setattr(handler, "level", logging.WARNING)
    try:
        assert not request_log._delivered_as_is(handler)
        request_log.write("GET", "/drop-me", 200, 1.0, "r1")
        request_log.write("GET", "/kept", 200, 1.0, "r2")
    finally:
        logging.disable(logging.NOTSET)
        log.setLevel(logging.NOTSET)
    handler.flush()
    text = served_log.read_text()
    if change in ("level", "disabled", "handler level"):
        assert text == "" and not seen
    elif change in ("logger filter", "handler filter"):
        assert "/drop-me" not in text and "GET /kept 200 1.0ms request_id=r2" in text
    elif change == "other formatter":
        assert text.splitlines() == [
            "INFO GET /drop-me 200 1.0ms request_id=r1",
            "INFO GET /kept 200 1.0ms request_id=r2",
        ]
    else:
        assert [r.getMessage() for r in seen] == [
            "GET /drop-me 200 1.0ms request_id=r1",
            "GET /kept 200 1.0ms request_id=r2",
        ]


def test_a_failed_write_is_the_handlers_error_not_the_requests(
    served_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = _only_ours(monkeypatch)
    assert isinstance(handler, logging.FileHandler)
    errors: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", errors.append)

    class FullDisk(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    assert handler.stream is not None
    handler.stream.close()
    monkeypatch.setattr(handler, "stream", FullDisk())
    request_log.write("GET", "/on-a-full-disk", 200, 1.0, "rid")
    (record,) = errors
    assert record.getMessage() == "GET /on-a-full-disk 200 1.0ms request_id=rid"
    # The handler's lock was let go: another thread takes it.
    taken: list[bool] = []

    def take() -> None:
        lock = handler.lock
        assert lock is not None
        taken.append(lock.acquire(timeout=5))
        if taken[-1]:
            lock.release()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(10)
    assert taken == [True]


def test_a_closed_handler_writes_as_its_emit_does(
    served_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed FileHandler (at exit) is left to logging, which opens the file again."""
    handler = _only_ours(monkeypatch)
    handler.close()
    request_log.write("GET", "/after-close", 200, 1.0, "rid")
    handler.flush()
    assert served_log.read_text().endswith(
        " kloudless.server GET /after-close 200 1.0ms request_id=rid\n"
    )


def test_the_stamp_is_asctime(served_log: Path) -> None:
    formatter = RequestLogFormatter(LOG_FORMAT)
    for created in (NOW, NOW + 0.9999, NOW + 61.0001):
        msecs = int((created - int(created)) * 1000)
        record = logging.LogRecord("x", logging.INFO, "", 0, "m", (), None)
        record.created, record.msecs = created, msecs
        assert formatter.stamp(created, msecs) == logging.Formatter().formatTime(record)
