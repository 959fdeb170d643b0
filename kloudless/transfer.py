"""Moving file contents: streaming downloads and (multipart, resumable) uploads.

Both directions work in constant memory, report progress, and never leave a half-transferred file
behind as if it were complete:

* :func:`download_resource` (``resource.download(...)``) and :func:`download` stream a file's
  contents to a path or a binary file object. A path is written through a temporary file in the
  same folder and renamed into place only once every byte has arrived and been counted. A dropped
  connection is resumed with an HTTP ``Range`` request when the server supports it.
* :func:`upload_file` (``account.upload(...)``) sends a file in one streamed ``POST`` below
  :data:`DEFAULT_MULTIPART_THRESHOLD`, and as a multipart upload above it: parts of the server's
  ``part_size``, in parallel when the server allows it, each retried on its own. An interrupted
  multipart upload raises :class:`UploadInterrupted`, whose ``session_id`` resumes it later.
  Ctrl-C during a multipart upload stays a :class:`KeyboardInterrupt`, with the session id in
  its ``kloudless_session_id`` attribute (and logged at WARNING) so that it can be resumed too.

Progress callbacks are called as ``progress(done, total)`` with byte counts; ``total`` is ``None``
when the size is unknown. They are called from one thread at a time, and an exception raised by a
callback aborts the transfer (a way to cancel it).
"""

from __future__ import annotations

import contextlib
import email.message
import io
import json
import logging
import math
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import IO, Any, Callable, Optional, Union, cast
from urllib.parse import quote, urlsplit

import requests
from urllib3.exceptions import ProtocolError

from .exceptions import KloudlessException
from .filenames import safe_join
from .retry import retry_record_fields

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MULTIPART_THRESHOLD",
    "DEFAULT_PART_SIZE",
    "PARTIAL_SUFFIX",
    "SizeMismatchError",
    "TransferError",
    "UploadInterrupted",
    "abort_upload",
    "download",
    "download_resource",
    "partial_path",
    "save_body",
    "upload_file",
]

logger = logging.getLogger("kloudless")

#: Bytes read from the network per write during a download.
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: Files of this size or larger are uploaded with the multipart API.
DEFAULT_MULTIPART_THRESHOLD = 8 * 1024 * 1024
#: Part size used only when the server's multipart session does not state one.
DEFAULT_PART_SIZE = 8 * 1024 * 1024
#: Suffix of a download's kept bytes (``keep_partial=True``), beside the destination; a note
#: with the same name plus ``.json`` records what they are the start of (ETag and size).
PARTIAL_SUFFIX = ".kloudless-part"
#: How many times a download continues after a dropped connection or short body.
MAX_RESUME_ATTEMPTS = 5
#: How many times one part is sent when its connection keeps dropping.
PART_ATTEMPTS = 3
#: First pause (seconds) between two attempts at one part; it doubles, up to 8 s.
PART_RETRY_DELAY = 0.5

ProgressCallback = Callable[[int, Optional[int]], None]
#: What the helpers accept as a binary file object.
BinaryFile = Union[IO[bytes], io.RawIOBase, io.BufferedIOBase]
PathOrFile = Union[str, "os.PathLike[str]", BinaryFile]

# Failures of the connection itself (as opposed to an HTTP error status): worth trying again.
# requests turns urllib3's errors while streaming into ChunkedEncodingError / ConnectionError.
_DROPPED: tuple[type[BaseException], ...] = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ProtocolError,
)
_COPY_BLOCK = 1024 * 1024

# Patched by the tests so that retries do not sleep.
_sleep = time.sleep


class TransferError(KloudlessException):
    """A download or upload could not be completed."""

    default_message = "The transfer could not be completed."


class SizeMismatchError(TransferError):
    """The number of bytes transferred differs from the size announced or expected.

    :ivar expected: the size announced (``Content-Length``, the file's ``size`` or the local size).
    :ivar actual: the size actually received or reported by the server.
    """

    default_message = "The transferred size does not match the expected size."

    def __init__(self, message: str = "", *, expected: int | None, actual: int | None):
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class UploadInterrupted(TransferError):
    """A multipart upload stopped before completion; it can be resumed.

    The original error is chained as ``__cause__``. Resume with
    ``upload_file(account, same_source, session_id=err.session_id)``, which sends only the parts
    the server does not have yet; or cancel it with :func:`abort_upload`.

    :ivar session_id: the multipart session id.
    :ivar done: bytes the server had received when the upload stopped.
    :ivar total: the file size.
    """

    default_message = "The multipart upload was interrupted."

    def __init__(self, message: str = "", *, session_id: str, done: int, total: int):
        super().__init__(message)
        self.session_id = session_id
        self.done = done
        self.total = total


class _Progress:
    """Thread-safe byte counter that forwards every change to the user's callback."""

    def __init__(self, callback: ProgressCallback | None, total: int | None) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self.total = total
        self.done = 0

    def set(self, done: int) -> None:
        with self._lock:
            self.done = done
            if self._callback is not None:
                self._callback(done, self.total)

    def add(self, count: int) -> None:
        with self._lock:
            self.done += count
            if self._callback is not None:
                self._callback(self.done, self.total)


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


def _response_data(obj: Any) -> dict[str, Any]:
    """The JSON object of an SDK response wrapper, or ``{}`` when it carries none."""
    data = getattr(obj, "data", None)
    return data if isinstance(data, dict) else {}


def _as_size(value: Any) -> int | None:
    """Read a ``size`` field (an int, or a numeric string in older payloads); ``None`` if absent."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _bool_param(value: bool) -> str:
    return "true" if value else "false"


def _path_of(url: str) -> str:
    """URL without query string, for log messages."""
    return urlsplit(url).path


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """Parse ``bytes start-end/total``; returns ``(start, total)`` with ``None`` for unknowns."""
    if not value or not value.lower().startswith("bytes "):
        return None, None
    span, _, total = value[6:].strip().partition("/")
    first = span.split("-", 1)[0]
    start = int(first) if first.isdigit() else None
    return start, (int(total) if total.isdigit() else None)


class _Download:
    """One download into a writable binary stream, resuming after dropped connections."""

    def __init__(
        self,
        client: Any,
        url: str,
        out: IO[bytes],
        restart: Callable[[], None],
        *,
        expected_size: int | None,
        chunk_size: int,
        progress: ProgressCallback | None,
        resume: bool,
        max_attempts: int,
        headers: dict[str, str] | None,
    ) -> None:
        self.client = client
        self.url = url
        self.out = out
        self.restart = restart
        self.expected_size = expected_size
        self.chunk_size = chunk_size
        self.resume = resume
        self.max_attempts = max_attempts
        self.headers = dict(headers or {})
        self.progress = _Progress(progress, expected_size)
        self.done = 0
        self.ranges = False
        self.etag: str | None = None

    def _reset(self) -> None:
        """Throw away what was written so far, before a full download starts again."""
        if self.done:
            self.restart()
            self.done = 0
            self.progress.set(0)

    def _request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        # Byte counts and ranges must refer to the file itself, not to a compressed encoding.
        headers["Accept-Encoding"] = "identity"
        if self.done:
            headers["Range"] = f"bytes={self.done}-"
            if self.etag and not self.etag.startswith("W/"):
                # If the file changed meanwhile the server answers 200 with the new version.
                headers["If-Range"] = self.etag
        return headers

    def _start(self, response: requests.Response, ranged: bool) -> bool:
        """Check a response before reading it; returns ``False`` if it cannot be used."""
        headers = response.headers
        encoded = headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if ranged and response.status_code == 206:
            start, total = _content_range(headers.get("Content-Range"))
            known = self.progress.total
            if start != self.done or (total is not None and known is not None and total != known):
                logger.info(
                    "Download of %s: unexpected Content-Range, restarting", _path_of(self.url)
                )
                return False
            return True
        if ranged:
            logger.info("Download of %s: server ignored Range, restarting", _path_of(self.url))
        self._reset()
        length = _as_size(headers.get("Content-Length"))
        if length is not None and not encoded:
            self.progress.total = length
        self.ranges = headers.get("Accept-Ranges", "").lower() == "bytes" and not encoded
        self.etag = headers.get("ETag")
        return True

    def _attempt(self) -> tuple[bool, BaseException | None]:
        """One request: stream the (rest of the) body into ``out``.

        Errors of the request itself propagate: the client's retry policy already handled them.

        :returns: ``(usable, error)``: ``usable`` is ``False`` if the answer could not be used
            and a full restart is needed; ``error`` is the failure that broke the body, if any.
        """
        ranged = self.done > 0
        response = self.client.get(
            self.url, get_raw_response=True, stream=True, headers=self._request_headers()
        )
        with contextlib.closing(response):
            if not self._start(response, ranged):
                self.ranges = False
                self._reset()
                return False, None
            try:
                for chunk in response.iter_content(self.chunk_size):
                    self.out.write(chunk)
                    self.done += len(chunk)
                    self.progress.set(self.done)
            except _DROPPED as exc:
                return True, exc
        return True, None

    def run(self) -> int:
        self.progress.set(self.done)
        failures = 0
        while True:
            usable, error = self._attempt()
            total = self.progress.total
            if usable and error is None and (total is None or self.done == total):
                return self.done
            if total is not None and self.done > total:
                raise SizeMismatchError(
                    f"received {self.done} bytes, more than the {total} announced",
                    expected=total,
                    actual=self.done,
                )
            failures += 1
            if not self.resume or failures > self.max_attempts:
                if error is not None:
                    raise error
                raise SizeMismatchError(
                    f"the download stopped after {self.done} bytes"
                    + (f" of {total}" if total is not None else ""),
                    expected=total,
                    actual=self.done,
                )
            # urllib3's Retry cannot help here: the request succeeded and the body broke while
            # it was being read, so only a new (ranged) request can continue.
            cause = type(error).__name__ if error is not None else "short or unusable answer"
            logger.info(
                "Download of %s interrupted after %d bytes (%s); attempt %d of %d to continue",
                _path_of(self.url),
                self.done,
                cause,
                failures,
                self.max_attempts,
                extra=retry_record_fields(0.0, failures, self.max_attempts, cause),
            )
            if not self.ranges:
                self._reset()


def _temp_path(final: str) -> str:
    """A fresh hidden name next to ``final``, short enough for any file system."""
    folder, base = os.path.split(final)
    stem = base.encode("utf-8")[:80].decode("utf-8", errors="ignore")
    return os.path.join(folder, f".{stem}.{uuid.uuid4().hex[:12]}.part")


def download(
    client: Any,
    url: str,
    dest: PathOrFile,
    *,
    name: str | None = None,
    expected_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
    resume: bool = True,
    max_resume_attempts: int = MAX_RESUME_ATTEMPTS,
    headers: dict[str, str] | None = None,
    keep_partial: bool = False,
    continue_partial: bool = False,
) -> str | int:
    """Stream the body of ``GET url`` to a path or a binary file object.

    The body is read ``chunk_size`` bytes at a time and never held in memory as a whole.

    * **Path**: the bytes go to a temporary file in the destination's folder, which is renamed
      onto the final name (replacing an existing file) only after the download completed and its
      size was checked. On any failure the temporary file is removed and nothing appears under
      the final name. If ``dest`` is an existing folder, the file is saved in it under ``name``
      made safe by :func:`kloudless.filenames.safe_join` (``"download"`` without a name).
    * **File object**: the bytes are written at its current position; on failure what was
      written stays there (the caller owns the object).

    The byte count is checked against ``Content-Length`` (or ``expected_size`` when the server
    sends none). After a dropped connection or a short body, the download continues with
    ``Range: bytes=<done>-`` (and ``If-Range`` with the ETag) if the server announced
    ``Accept-Ranges: bytes``; the answer must be a ``206`` starting at the right byte. Otherwise,
    or if the server ignores the range, the download starts again from the beginning (into a file
    object only if it is seekable). At most ``max_resume_attempts`` such restarts happen. A
    request that fails outright (server unreachable, error status) is not repeated here: the
    client's retry policy has already dealt with it, and its exception propagates.

    :param client: a :class:`kloudless.Client` (or :class:`kloudless.Account`).
    :param url: absolute URL (on the client's API host) or path relative to the client's URL.
    :param dest: a path (``str`` or path-like), an existing folder, or a binary file object.
    :param name: file name to use when ``dest`` is a folder (untrusted names are fine).
    :param expected_size: the size the body must have when there is no ``Content-Length``.
    :param chunk_size: bytes per read.
    :param progress: ``progress(done, total)`` after every chunk.
    :param resume: set to ``False`` to fail at the first dropped connection.
    :param max_resume_attempts: bound on the number of continuations.
    :param headers: extra request headers.
    :param keep_partial: for a path: when the download fails or is interrupted (Ctrl-C), keep
        the bytes received in ``<path>.kloudless-part`` (:data:`PARTIAL_SUFFIX`) instead of
        removing them, with a note of the file's ETag and size, so that a later call with
        ``continue_partial=True`` goes on from there. Kept only when the server sent a strong
        ETag (without one a changed file could not be told apart).
    :param continue_partial: for a path: start from the bytes a failed ``keep_partial``
        download left, if their note matches (same size as ``expected_size``), with ``Range``
        and ``If-Range``: if the file changed upstream the server sends it whole and the
        download starts over. Otherwise the download starts from the beginning.
    :returns: the final path (``str``) for a path destination; the number of bytes written for a
        file object.
    :raises SizeMismatchError: if the byte count does not match.
    :raises TransferError: if a restart is needed but the file object cannot be rewound.
    :raises requests.RequestException: the last network error when the attempts ran out (the
        SDK's own connection/timeout exceptions subclass it), or an API exception for an HTTP
        error status.
    """
    _check_positive("chunk_size", chunk_size)
    options: dict[str, Any] = {
        "expected_size": expected_size,
        "chunk_size": chunk_size,
        "progress": progress,
        "resume": resume,
        "max_attempts": max_resume_attempts,
        "headers": headers,
    }
    if not isinstance(dest, (str, os.PathLike)):
        return _download_to_file_object(client, url, dest, options)
    path = os.fspath(dest)
    if os.path.isdir(path):
        path = safe_join(path, name)
    if keep_partial or continue_partial:
        return _download_keeping_partial(client, url, path, options, continue_partial)

    def write(fh: IO[bytes]) -> None:
        def restart() -> None:
            fh.seek(0)
            fh.truncate()

        _Download(client, url, fh, restart, **options).run()

    return _write_to_path(path, write)


def _write_to_path(path: str, write: Callable[[IO[bytes]], Any]) -> str:
    """Write a file through a temporary file beside it, renamed into place once complete.

    :param path: the final path (an existing file there is replaced).
    :param write: writes the contents to the open temporary file.
    :returns: ``path``. On any failure the temporary file is removed and ``path`` is untouched.
    """
    tmp = _temp_path(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        # 0o666 lets the umask decide the final permissions, as for any newly created file.
        fd = os.open(tmp, flags, 0o666)
    except OSError as exc:
        raise _about_destination(exc, tmp, path) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise _about_destination(exc, tmp, path) from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def partial_path(path: str) -> str:
    """:returns: where ``download(..., keep_partial=True)`` keeps the bytes of ``path``."""
    return path + PARTIAL_SUFFIX


def _partial_start(part: str, expected_size: int | None) -> tuple[int, str] | None:
    """:returns: ``(bytes kept, ETag)`` of a usable partial download at ``part``, else None."""
    try:
        with open(part + ".json", encoding="utf-8") as handle:
            note = json.load(handle)
        kept = os.path.getsize(part)
    except (OSError, ValueError):
        return None
    etag = note.get("etag") if isinstance(note, dict) else None
    size = note.get("size") if isinstance(note, dict) else None
    if not isinstance(etag, str) or etag.startswith("W/") or not isinstance(size, int):
        return None
    if expected_size is not None and size != expected_size:
        return None  # the file's size changed upstream: these bytes belong to another version
    return (kept, etag) if 0 < kept <= size else None


def _download_keeping_partial(
    client: Any, url: str, path: str, options: dict[str, Any], continue_partial: bool
) -> str:
    part = partial_path(os.path.abspath(path))
    start = _partial_start(part, options["expected_size"]) if continue_partial else None
    try:
        fh = open(part, "r+b" if start else "wb")  # noqa: SIM115 - closed below on every path
    except OSError as exc:
        raise _about_destination(exc, part, path) from exc

    def restart() -> None:
        fh.seek(0)
        fh.truncate()

    job = _Download(client, url, fh, restart, **options)
    if start is not None:
        job.done, job.etag = start
        job.ranges = True
        fh.seek(job.done)
        logger.info("Download of %s: continuing after %d kept bytes", _path_of(url), job.done)
    try:
        try:
            job.run()
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fh.close()
        try:
            os.replace(part, path)
        except OSError as exc:
            raise _about_destination(exc, part, path) from exc
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part + ".json")
    except BaseException:
        _keep_or_drop(part, job)
        raise
    return path


def _keep_or_drop(part: str, job: _Download) -> None:
    """After a failure: keep the bytes and their note when they can be continued, else remove."""
    total = job.progress.total
    if job.done > 0 and job.etag and not job.etag.startswith("W/") and total is not None:
        with contextlib.suppress(OSError):
            with open(part + ".json", "w", encoding="utf-8") as handle:
                json.dump({"etag": job.etag, "size": total}, handle)
            return
    for leftover in (part, part + ".json"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)


def _about_destination(exc: OSError, tmp: str, path: str) -> OSError:
    """:returns: ``exc`` as the same kind of error about ``path``, the name the caller gave,
    instead of the hidden temporary file ``tmp`` the caller never heard of."""
    if exc.filename != tmp or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror, path)  # the errno picks the subclass


def _download_to_file_object(
    client: Any, url: str, dest: BinaryFile, options: dict[str, Any]
) -> int:
    out = cast(IO[bytes], dest)
    if not hasattr(out, "write"):
        raise TypeError(f"dest must be a path or a binary file object, not {type(out).__name__}")
    if isinstance(out, io.TextIOBase):
        raise TypeError("dest must be opened in binary mode ('wb'), not text mode")
    try:
        start: int | None = out.tell() if out.seekable() else None
    except (AttributeError, OSError):
        start = None

    def restart() -> None:
        if start is None:
            raise TransferError(
                "the download must start again but the destination file object cannot be rewound"
            )
        out.seek(start)
        out.truncate()

    return _Download(client, url, out, restart, **options).run()


def download_resource(
    resource: Any,
    dest: PathOrFile,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
    resume: bool = True,
    keep_partial: bool = False,
    continue_partial: bool = False,
) -> str | int:
    """Download a file resource's contents (``GET <file>/contents``); see :func:`download`.

    This is what ``resource.download(dest, ...)`` calls. When ``dest`` is a folder, the file is
    saved under the resource's ``name`` made safe (:func:`kloudless.filenames.safe_filename`), so
    a hostile name such as ``../../.bashrc`` cannot leave the folder. The resource's ``size``
    is the expected byte count when the server sends no ``Content-Length``.

    :param resource: a file :class:`~kloudless.resources.Resource` (``type == "file"``).
    :param dest: a path, an existing folder, or a binary file object.
    :param chunk_size: bytes per read.
    :param progress: ``progress(done, total)`` after every chunk.
    :param resume: continue after a dropped connection (with ``Range`` when possible).
    :param keep_partial: keep the bytes of a failed download to continue later (see
        :func:`download`).
    :param continue_partial: continue from such kept bytes if they are still valid.
    :returns: the final path (``str``), or the number of bytes written for a file object.
    :raises TransferError: if the resource is not a file.
    :raises SizeMismatchError: if the byte count does not match.
    """
    if "data" not in vars(resource) and getattr(resource, "response", None) is not None:
        # Not a file object but an answer with a body, e.g. ``file.get("contents")``: its body
        # has arrived already, so that is what is saved.
        return save_body(resource, dest, chunk_size=chunk_size, progress=progress)
    data = _response_data(resource)
    if data.get("type", "file") != "file":
        raise TransferError(f"only files can be downloaded, not a {data.get('type')}")
    url = str(resource.url).rstrip("/") + "/contents"
    return download(
        resource.client,
        url,
        dest,
        name=data.get("name"),
        expected_size=_as_size(data.get("size")),
        chunk_size=chunk_size,
        progress=progress,
        resume=resume,
        keep_partial=keep_partial,
        continue_partial=continue_partial,
    )


def save_body(
    answer: Any,
    dest: PathOrFile,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
) -> str | int:
    """Save the body of an answer the caller already has, such as ``file.get("contents")``.

    This is what ``download()`` does on such an answer. The body is streamed in chunks (unless
    it was read already); a path is written as :func:`download` writes it (a temporary file
    renamed into place once the byte count matches ``Content-Length``), and a folder gets the
    name from the answer's ``Content-Disposition``, else ``download``. Unlike ``download()`` on
    the file resource, a dropped connection cannot be continued: this answer is all there is.

    :param answer: a :class:`~kloudless.resources.Response` (any SDK answer with a body).
    :param dest: a path, an existing folder, or a binary file object.
    :param chunk_size: bytes per read.
    :param progress: ``progress(done, total)`` after every chunk.
    :returns: the final path (``str``), or the number of bytes written for a file object.
    :raises SizeMismatchError: if the body is shorter or longer than its ``Content-Length``.
    """
    _check_positive("chunk_size", chunk_size)
    response = answer.response
    headers = response.headers
    identity = headers.get("Content-Encoding", "identity").lower() in ("", "identity")
    length = _as_size(headers.get("Content-Length")) if identity else None
    tracker = _Progress(progress, length)

    def write(out: IO[bytes]) -> int:
        done = 0
        for chunk in response.iter_content(chunk_size):
            out.write(chunk)
            done += len(chunk)
            tracker.set(done)
        if length is not None and done != length:
            raise SizeMismatchError(
                f"received {done} bytes, but {length} were announced",
                expected=length,
                actual=done,
            )
        return done

    if not isinstance(dest, (str, os.PathLike)):
        out = cast(IO[bytes], dest)
        if isinstance(out, io.TextIOBase):
            raise TypeError("dest must be opened in binary mode ('wb'), not text mode")
        return write(out)
    path = os.fspath(dest)
    if os.path.isdir(path):
        path = safe_join(path, _disposition_name(headers.get("Content-Disposition")))
    return _write_to_path(path, write)


def _disposition_name(value: str | None) -> str | None:
    """:returns: the file name of a ``Content-Disposition`` header (untrusted), or None."""
    if not value:
        return None
    message = email.message.Message()
    message["Content-Disposition"] = value
    return message.get_filename()


# --------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------


class _Source:
    """A seekable binary source: ``size`` bytes starting at ``start`` in ``file``."""

    def __init__(self, file: IO[bytes], start: int, size: int, name: str) -> None:
        self.file = file
        self.start = start
        self.size = size
        self.name = name
        self._lock = threading.Lock()

    def read_at(self, offset: int, length: int) -> bytes:
        """Read exactly ``length`` bytes at ``offset`` (thread-safe)."""
        parts = []
        remaining = length
        with self._lock:
            self.file.seek(self.start + offset)
            while remaining:
                chunk = self.file.read(remaining)
                if not chunk:
                    raise TransferError(
                        f"the source ended at byte {offset + length - remaining} while "
                        f"{self.size} bytes were expected; was it changed during the upload?"
                    )
                parts.append(chunk)
                remaining -= len(chunk)
        return b"".join(parts)


class _ProgressReader:
    """Seekable read-only view of a :class:`_Source` that reports how far it has been read.

    requests streams it as the request body (``__len__`` + ``tell`` give the Content-Length) and
    urllib3 seeks it back when it retries, so progress follows what is really sent.
    """

    def __init__(self, source: _Source, progress: _Progress) -> None:
        self._source = source
        self._progress = progress
        self._pos = 0

    def __len__(self) -> int:
        return self._source.size

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._source.size}[whence]
        self._pos = min(max(0, base + offset), self._source.size)
        self._progress.set(self._pos)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        remaining = self._source.size - self._pos
        if size is None or size < 0 or size > remaining:
            size = remaining
        if not size:
            return b""
        data = self._source.read_at(self._pos, size)
        self._pos += len(data)
        self._progress.set(self._pos)
        return data


def _seekable_start(file: IO[bytes]) -> int | None:
    """The current position of ``file`` if it can be rewound, else ``None``."""
    try:
        if not file.seekable():
            return None
        return file.tell()
    except (AttributeError, OSError, ValueError):
        return None


@contextlib.contextmanager
def _open_source(source: PathOrFile, name: str | None) -> Iterator[_Source]:
    """Yield a seekable :class:`_Source` for a path or a binary file object.

    A non-seekable stream (a pipe, a socket, a generator-backed reader) is first copied to an
    anonymous temporary file, block by block: the multipart API needs the size up front, and a
    part that failed must be sendable again.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        with open(path, "rb") as fh:
            yield _Source(fh, 0, os.fstat(fh.fileno()).st_size, name or os.path.basename(path))
        return
    file = cast(IO[bytes], source)
    if not hasattr(file, "read"):
        raise TypeError(f"source must be a path or a binary file object, not {type(file).__name__}")
    if isinstance(file, io.TextIOBase):
        raise TypeError("source must be opened in binary mode ('rb'), not text mode")
    if not name:
        file_name = getattr(file, "name", None)
        if not isinstance(file_name, str) or not os.path.basename(file_name):
            raise ValueError("name= is required when uploading a file object without a name")
        name = os.path.basename(file_name)
    start = _seekable_start(file)
    if start is not None:
        size = file.seek(0, io.SEEK_END) - start
        file.seek(start)
        yield _Source(file, start, size, name)
        return
    with tempfile.TemporaryFile() as spool:
        for block in iter(lambda: file.read(_COPY_BLOCK), b""):
            spool.write(block)
        size = spool.tell()
        yield _Source(spool, 0, size, name)


def _check_uploaded_size(result: Any, expected: int) -> None:
    size = _as_size(_response_data(result).get("size"))
    if size is None:
        logger.debug("Upload answer carries no size; size check skipped")
        return
    if size != expected:
        raise SizeMismatchError(
            f"the server stored {size} bytes but {expected} were sent",
            expected=expected,
            actual=size,
        )


def _idempotency_headers() -> dict[str, str]:
    # Set explicitly (the client would add one too) so that all retries of the call share it.
    return {"Idempotency-Key": str(uuid.uuid4())}


def upload_file(
    account: Any,
    source: PathOrFile,
    *,
    parent_id: str = "root",
    name: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    part_size: int | None = None,
    max_workers: int = 4,
    session_id: str | int | Any | None = None,
) -> Any:
    """Upload a file, streaming it, with the multipart API for large files.

    This is what ``account.upload(source, ...)`` calls.

    * Files smaller than ``multipart_threshold`` go in one ``POST storage/files`` whose body is
      streamed from the file (never loaded into memory), with ``X-Kloudless-Metadata``
      ``{"name", "parent_id"}``.
    * Larger files (and any resumed upload) use ``storage/multipart``: a session is created with
      the size, the parts (of the server's ``part_size``) are read from the file by offset and
      ``PUT`` one by one, or by up to ``max_workers`` threads when the session says
      ``parallel_uploads``, and the session is completed. Memory use stays near
      ``part_size * max_workers`` (two parts when they are sent one by one: the next one is
      read while one is sent). A part whose connection drops is sent again (the client's
      retry policy also applies to each ``PUT``). Creating and completing the session carry an
      ``Idempotency-Key``.
    * If a multipart upload fails after its session exists, :class:`UploadInterrupted` is raised
      (with the cause chained); pass its ``session_id`` back here with the same source to send
      only the missing parts. The session is not aborted automatically; see :func:`abort_upload`.
    * Ctrl-C (:class:`KeyboardInterrupt`) during a multipart upload is re-raised as is, with the
      session id set as its ``kloudless_session_id`` attribute (and logged at WARNING), e.g.
      ``except KeyboardInterrupt as exc: resume_id = getattr(exc, "kloudless_session_id", None)``.

    A file object is uploaded from its current position to its end. A non-seekable stream is
    first copied to a temporary file so that its size is known and parts can be re-sent.
    The size the server reports for the new file must equal the local size.

    :param account: a :class:`kloudless.Account`.
    :param source: a path or a binary file object.
    :param parent_id: id of the destination folder.
    :param name: name of the new file; defaults to the source's file name (required for a file
        object without a ``name``).
    :param overwrite: replace a file of the same name instead of letting the server pick a new
        name.
    :param progress: ``progress(done, total)``; thread-safe, called from one thread at a time.
    :param multipart_threshold: size in bytes from which the multipart API is used.
    :param part_size: part size to use if the server's session does not give one (the server's
        ``part_size`` always wins, since it rejects other sizes).
    :param max_workers: parallel part uploads when the server allows them (1 = serial).
    :param session_id: id (or session resource) of an interrupted multipart upload to resume.
    :returns: the new file's :class:`~kloudless.resources.Resource`.
    :raises UploadInterrupted: a multipart upload stopped; resume it with ``session_id``.
    :raises SizeMismatchError: the server's file size differs from the local size.
    :raises TransferError: a resumed session does not match the source.
    :raises ValueError: bad arguments (no name for an anonymous stream, ``max_workers < 1``...).
    :raises TypeError: a text-mode file object was given.
    """
    _check_positive("max_workers", max_workers)
    if part_size is not None:
        _check_positive("part_size", part_size)
    if not isinstance(multipart_threshold, int) or multipart_threshold < 0:
        raise ValueError(f"multipart_threshold must be >= 0, not {multipart_threshold!r}")
    with _open_source(source, name) as src:
        tracker = _Progress(progress, src.size)
        if session_id is None and src.size < multipart_threshold:
            return _upload_single(account, src, parent_id, overwrite, tracker)
        upload = _MultipartUpload(
            account, src, tracker, part_size or DEFAULT_PART_SIZE, max_workers
        )
        return upload.run(parent_id, overwrite, session_id)


def _upload_single(
    account: Any, src: _Source, parent_id: str, overwrite: bool, tracker: _Progress
) -> Any:
    metadata = json.dumps({"name": src.name, "parent_id": parent_id})
    headers = {
        "X-Kloudless-Metadata": metadata,
        "Content-Type": "application/octet-stream",
        **_idempotency_headers(),
    }
    tracker.set(0)
    # requests sends a zero-length stream chunked; plain b"" gets "Content-Length: 0".
    body = _ProgressReader(src, tracker) if src.size else b""
    result = account.post(
        "storage/files",
        data=body,
        params={"overwrite": _bool_param(overwrite)},
        headers=headers,
    )
    _check_uploaded_size(result, src.size)
    return result


class _MultipartUpload:
    """State of one multipart upload (new or resumed)."""

    def __init__(
        self, account: Any, src: _Source, tracker: _Progress, part_size: int, max_workers: int
    ) -> None:
        self.account = account
        self.src = src
        self.tracker = tracker
        self.part_size = part_size
        self.max_workers = max_workers

    def _session_path(self, session_id: str, suffix: str = "") -> str:
        return f"storage/multipart/{quote(session_id, safe='')}{suffix}"

    def _open_session(
        self, parent_id: str, overwrite: bool, session_id: str | int | Any | None
    ) -> dict[str, Any]:
        if session_id is None:
            session = _response_data(
                self.account.post(
                    "storage/multipart",
                    json={"parent_id": parent_id, "name": self.src.name, "size": self.src.size},
                    params={"overwrite": _bool_param(overwrite)},
                    headers=_idempotency_headers(),
                )
            )
        else:
            if not isinstance(session_id, (str, int)):
                session_id = _response_data(session_id).get("id")
            session = _response_data(self.account.get(self._session_path(str(session_id))))
            size = _as_size(session.get("size"))
            if size is not None and size != self.src.size:
                raise TransferError(
                    f"multipart session {session_id} is for {size} bytes but the source has "
                    f"{self.src.size}; resume it with the same file"
                )
        if session.get("id") in (None, ""):
            raise TransferError("the server's multipart session has no id")
        return session

    def _part_length(self, number: int) -> int:
        offset = (number - 1) * self.part_size
        return min(self.part_size, self.src.size - offset)

    def _put_part(self, session_id: str, number: int, data: bytes) -> Any:
        # Each PUT already goes through the client's urllib3 Retry; this outer loop covers a
        # connection that dropped after those retries ran out or while the answer was read. A
        # part PUT is idempotent and its bytes are in memory, so sending it again is always safe.
        attempt = 1
        while True:
            try:
                return self.account.put(
                    self._session_path(session_id),
                    data=data,
                    params={"part_number": number},
                    headers={"Content-Type": "application/octet-stream"},
                )
            except _DROPPED as exc:
                if attempt >= PART_ATTEMPTS:
                    raise
                delay = min(PART_RETRY_DELAY * 2 ** (attempt - 1), 8.0)
                logger.info(
                    "Part %d of multipart upload %s: %s; attempt %d of %d in %.1f s",
                    number,
                    session_id,
                    type(exc).__name__,
                    attempt + 1,
                    PART_ATTEMPTS,
                    delay,
                    extra=retry_record_fields(
                        delay, attempt, PART_ATTEMPTS - 1, type(exc).__name__
                    ),
                )
                _sleep(delay)
                attempt += 1

    def _read_part(self, number: int) -> bytes:
        return self.src.read_at((number - 1) * self.part_size, self._part_length(number))

    def _send_part(self, session_id: str, number: int, data: bytes | None = None) -> None:
        if data is None:
            data = self._read_part(number)
        answer = self._put_part(session_id, number, data)
        stored = _as_size(_response_data(answer).get("size"))
        if stored is not None and stored != len(data):
            raise SizeMismatchError(
                f"part {number}: the server stored {stored} of {len(data)} bytes",
                expected=len(data),
                actual=stored,
            )
        self.tracker.add(len(data))

    def _send_serial(self, session_id: str, parts: list[int]) -> None:
        """Send the parts one at a time, each read from the source while the one before is
        sent and stored (a serial client would otherwise read it after each answer)."""
        with ThreadPoolExecutor(1, thread_name_prefix="kloudless-read") as reader:
            ahead = reader.submit(self._read_part, parts[0])
            for index, number in enumerate(parts):
                data = ahead.result()
                if index + 1 < len(parts):
                    ahead = reader.submit(self._read_part, parts[index + 1])
                self._send_part(session_id, number, data)

    def _send_parallel(self, session_id: str, parts: list[int]) -> None:
        pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="kloudless-upload")
        try:
            futures: list[Future[None]] = [
                pool.submit(self._send_part, session_id, n) for n in parts
            ]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                if future in done and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
        finally:
            # Parts not started yet are dropped; running ones finish (they cannot be killed).
            pool.shutdown(wait=True, cancel_futures=True)

    def run(self, parent_id: str, overwrite: bool, session_id: str | int | Any | None) -> Any:
        session = self._open_session(parent_id, overwrite, session_id)
        sid = str(session["id"])
        self.part_size = _as_size(session.get("part_size")) or self.part_size
        count = max(1, math.ceil(self.src.size / self.part_size))
        received = {
            _as_size(p.get("part_number")): _as_size(p.get("size"))
            for p in session.get("parts") or []
            if isinstance(p, dict)
        }
        missing = [n for n in range(1, count + 1) if received.get(n) != self._part_length(n)]
        self.tracker.set(self.src.size - sum(self._part_length(n) for n in missing))
        if len(missing) < count:
            logger.info(
                "Resuming multipart upload %s: %d of %d parts to send", sid, len(missing), count
            )
        try:
            if session.get("parallel_uploads") and self.max_workers > 1 and len(missing) > 1:
                self._send_parallel(sid, missing)
            elif len(missing) > 1:
                self._send_serial(sid, missing)
            else:
                for number in missing:
                    self._send_part(sid, number)
            result = self.account.post(
                self._session_path(sid, "/complete"), headers=_idempotency_headers()
            )
        except KeyboardInterrupt as exc:
            # Ctrl-C stays a KeyboardInterrupt (callers expect that) but keeps the resume point.
            exc.kloudless_session_id = sid  # type: ignore[attr-defined]
            logger.warning(
                "Multipart upload %s interrupted after %d of %d bytes; resume it with "
                "session_id=%r",
                sid,
                self.tracker.done,
                self.src.size,
                sid,
            )
            raise
        except Exception as exc:
            raise UploadInterrupted(
                f"multipart upload {sid} stopped after {self.tracker.done} of {self.src.size} "
                f"bytes ({type(exc).__name__}: {exc}); resume it with session_id={sid!r}",
                session_id=sid,
                done=self.tracker.done,
                total=self.src.size,
            ) from exc
        _check_uploaded_size(result, self.src.size)
        return result


def abort_upload(account: Any, session_id: str | int) -> None:
    """Cancel an interrupted multipart upload and let the server drop its parts.

    :param account: the :class:`kloudless.Account` the upload belongs to.
    :param session_id: the multipart session id (:attr:`UploadInterrupted.session_id`).
    """
    account.delete(f"storage/multipart/{quote(str(session_id), safe='')}")
