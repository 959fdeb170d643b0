"""Spooling a request body to a file in the data dir: the one place uploads and multipart parts
are written before they are renamed into place.

The HTTP server (:mod:`kloudless.server.serving`) already writes each large request body into
``<data dir>/tmp/body-*`` (a :class:`SpooledBody`) while it receives it, on the filesystem where
the file will end up, starting its write-out a few MiB behind (:class:`WriteOut`) and, for an
upload, hashing it (:data:`HASH_BODY`). :func:`spool_to_temp` then *adopts* that file (a rename,
no copy) instead of copying it, with the digest taken on arrival (nothing read back), so an
upload needs its size on disk once, plus a bounded overhead (the in-memory part of waitress's
buffer), and its data sync waits for the last few MiB only. Bodies that arrive any other way
(the test client, a body a wrapper has already consumed) are copied.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import io
import mmap
import os
import secrets
import sys
import tempfile
from typing import IO, Any, Callable

from .diskspace import insufficient_storage, is_disk_full
from .errors import ApiError

CHUNK = 256 * 1024
_HASH_BLOCK = 64 * 1024

#: Folder of the data dir where the HTTP server spools request bodies.
SPOOL_DIR = "tmp"
#: File name prefix of spooled request bodies (the sweeper removes stale ones).
SPOOL_PREFIX = "body-"


def datasync(fd: int) -> None:
    """Make a file's data durable: ``fdatasync`` where there is one (the data and what reading
    it needs, such as the size; not the timestamps), else ``fsync``."""
    getattr(os, "fdatasync", os.fsync)(fd)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def fsync_dir(path: str) -> None:
    """Make the entries of directory ``path`` durable (a created or renamed file survives a
    power cut only once its directory is synced). No-op where directories cannot be opened
    (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - filesystems that cannot sync directories
        pass
    finally:
        os.close(fd)


#: ``(device, inode, path)`` of the files whose folder entry :func:`sync_entry_once` synced in
#: this process (cleared when it reaches :data:`_ENTRIES_KEPT`: the next parts sync again).
_ENTRIES_SYNCED: set[tuple[int, int, str]] = set()
_ENTRIES_KEPT = 4096


def sync_entry_once(fd: int, path: str) -> None:
    """Make the folder entry of the file ``path`` (open as ``fd``) durable, once per file in
    this process: a multipart session's file, whose parts would otherwise sync an unchanged
    folder each (which still costs the disk a cache flush).

    The entry was synced while it named this very file (same device and inode, found through
    ``fd``), so it is durable from then on; a session's path is never used again once the
    session is gone (ids are not reused), and a file made anew there has another inode. A new
    process syncs once more (a part that failed before its sync may have made the file).
    """
    info = os.fstat(fd)
    key = (info.st_dev, info.st_ino, path)
    if key in _ENTRIES_SYNCED:
        return
    fsync_dir(os.path.dirname(path))
    if len(_ENTRIES_SYNCED) >= _ENTRIES_KEPT:
        _ENTRIES_SYNCED.clear()
    _ENTRIES_SYNCED.add(key)


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """:returns: Linux's ``sync_file_range(fd, offset, nbytes, flags)`` (not in :mod:`os`), or
    None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - a libc without it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()
#: ``SYNC_FILE_RANGE_WRITE``: start the write-out of the range's dirty pages, wait for nothing.
_SYNC_FILE_RANGE_WRITE = 2

#: A spooled body's write-out is started every :data:`WRITE_OUT_STEP` bytes, for what lies more
#: than :data:`WRITE_OUT_LAG` bytes behind the writer (pages that will not be written again),
#: so that the ``fdatasync`` before the upload's answer finds little left to write.
WRITE_OUT_STEP = 8 * 1024 * 1024
WRITE_OUT_LAG = 4 * 1024 * 1024
#: A multipart part's write-out is started every :data:`PART_WRITE_OUT_STEP` bytes (about every
#: read of its body), up to the page being written: a part is short (8 MiB by default) and its
#: answer waits for its data sync, so that sync should find at most one step left to write.
PART_WRITE_OUT_STEP = 1024 * 1024
#: Write-outs end on a page boundary: the page still being filled is not written twice.
_PAGE = mmap.PAGESIZE


class WriteOut:
    """Starts the write-out of a range of a file written front to back while it is written
    (Linux: ``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which queues the pages and returns;
    elsewhere nothing), so that its final data sync only waits for the last few MiB.

    :param fd: the file, open for writing.
    :param start: offset where the writer starts (a multipart part's offset in its file).
    :param step: the least bytes to start at once.
    :param lag: bytes left behind the writer (the end is also rounded down to a page).
    """

    def __init__(
        self, fd: int, start: int = 0, step: int = WRITE_OUT_STEP, lag: int = WRITE_OUT_LAG
    ) -> None:
        self.fd = fd
        #: Offset up to which the write-out was started.
        self.started = start
        self.step = step
        self.lag = lag
        self.enabled = _sync_file_range is not None

    def advance(self, written: int) -> None:
        """The writer has reached offset ``written``: start the write-out of what is far
        enough behind."""
        end = (written - self.lag) // _PAGE * _PAGE
        if not self.enabled or end - self.started < self.step:
            return
        assert _sync_file_range is not None
        if _sync_file_range(self.fd, self.started, end - self.started, _SYNC_FILE_RANGE_WRITE):
            self.enabled = False  # e.g. a filesystem that refuses it: the final sync does it all
            return
        self.started = end


def part_write_out(fd: int, offset: int) -> WriteOut:
    """:returns: the :class:`WriteOut` of a multipart part written from ``offset`` of ``fd``
    (every :data:`PART_WRITE_OUT_STEP`, up to the page being written)."""
    return WriteOut(fd, offset, PART_WRITE_OUT_STEP, 0)


class SpooledBody(io.BufferedRandom):
    """A request body being written to (or read from) a named file in the data dir.

    The HTTP server writes it with :meth:`append` as it arrives (its write-out started a few MiB
    behind, :class:`WriteOut`) and, for an upload, hashes it on the way (:meth:`digest`), so
    that the handler neither reads it back nor waits for a gigabyte of dirty pages.
    Closing it removes the file unless :meth:`adopt` moved it to its next place first.
    """

    path: str
    adopted: bool
    #: Bytes :meth:`append` wrote.
    written: int
    #: SHA-256 of what :meth:`append` wrote (bodies created ``hashed``), else None.
    sha256: Any
    _write_out: WriteOut

    @classmethod
    def create(cls, directory: str, hashed: bool = False) -> SpooledBody:
        """:returns: a new empty body file in ``directory`` (created private).

        :param hashed: hash what :meth:`append` writes (see :meth:`digest`).
        :raises OSError: the file cannot be created (``ENOSPC`` when the disk is full).
        """
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, path = tempfile.mkstemp(dir=directory, prefix=SPOOL_PREFIX)
        body = cls(io.FileIO(fd, "r+"))
        body.path = path
        body.adopted = False
        body.written = 0
        body.sha256 = hashlib.sha256() if hashed else None
        body._write_out = WriteOut(fd)
        return body

    def append(self, data: Any) -> None:
        """Write the next bytes of the body at its end (the read position stays where it is):
        hashed when the body is, the write-out started behind the writer.

        :param data: bytes or any buffer.
        :raises OSError: the write failed (``ENOSPC`` when the disk is full).
        """
        view = memoryview(data).cast("B")
        if self.sha256 is not None:
            self.sha256.update(view)
        offset = self.written
        pwrite = getattr(os, "pwrite", None)
        if pwrite is None:  # pragma: no cover - Windows: through the buffer, then rewound
            position = self.tell()
            self.seek(offset)
            self.write(view)
            self.flush()
            self.seek(position)
            offset += len(view)
        else:
            fd = self.raw.fileno()
            while view:
                count = pwrite(fd, view, offset)
                offset += count
                view = view[count:]
        self.written = offset
        self._write_out.advance(offset)

    def digest(self) -> Any:
        """:returns: the SHA-256 (a :mod:`hashlib` object) of the whole file when every byte of
        it went through :meth:`append` of a ``hashed`` body, else None."""
        if self.sha256 is None or self.closed:
            return None
        self.flush()
        if os.fstat(self.fileno()).st_size != self.written:
            return None
        return self.sha256

    def adopt(self, path: str) -> None:
        """Move the file to ``path`` (a new name on the same filesystem: a rename), the file's
        data and the new folder entry synced; it is the caller's from now on.

        :raises OSError: the rename failed (e.g. another filesystem); the file stays here.
        """
        self.flush()
        datasync(self.fileno())
        os.rename(self.path, path)
        self.adopted = True
        fsync_dir(os.path.dirname(path))

    def close(self) -> None:
        """Close the file, and remove it unless it was adopted."""
        if self.closed:
            return
        super().close()
        if not self.adopted:
            remove_quietly(self.path)


class HashingStream(io.RawIOBase):
    """A read-only stream that hashes (SHA-256) and counts what is read through it (the
    idempotency layer's wrapper around a keyed request's body).

    :func:`spool_to_temp` reading a body through one takes its digest instead of hashing the
    same bytes a second time.

    :param inner: the request body stream.
    """

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self._inner = inner
        #: What this stream reads from (lets ``spool`` find a body it can adopt).
        self.wrapped = inner
        self._sha = hashlib.sha256()
        #: Bytes read so far.
        self.size = 0
        #: True once a read hit the end of the body.
        self.eof = False

    def readable(self) -> bool:
        return True

    def take_digest(self, sha256: Any, size: int) -> None:
        """Count the whole body as read and hashed, without reading it: ``sha256`` (copied)
        and ``size`` are those of the bytes under this stream (a :class:`SpooledBody` hashed
        as it arrived)."""
        self._sha = sha256.copy()
        self.size = size
        self.eof = True

    def _take(self, data: bytes, asked: int | None) -> bytes:
        if data:
            self._sha.update(data)
            self.size += len(data)
        elif asked is None or asked != 0:
            self.eof = True
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Read and hash up to ``size`` bytes (all when negative)."""
        if size is None or size < 0:
            chunks: list[bytes] = []
            while True:
                block = self._take(self._inner.read(_HASH_BLOCK), _HASH_BLOCK)
                if not block:
                    return b"".join(chunks)
                chunks.append(block)
        return self._take(self._inner.read(size), size)

    def readinto(self, buffer: Any) -> int:
        """Read into a writable buffer (for ``io`` helpers)."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        """Read and hash one line."""
        limit = -1 if size is None else size
        return self._take(self._inner.readline(limit), limit)

    def drain(self, limit: int) -> bool:
        """Read (and hash) the rest of the body, up to ``limit`` bytes.

        :returns: True when the end of the body was reached.
        """
        left = limit
        while not self.eof:
            if left < 0:
                return False
            left -= len(self.read(_HASH_BLOCK))
        return True

    def hexdigest(self) -> str:
        """:returns: the SHA-256 of the bytes read so far."""
        return self._sha.hexdigest()


def spooled_body(stream: IO[bytes]) -> SpooledBody | None:
    """:returns: the :class:`SpooledBody` under ``stream`` (through wrappers that name what
    they wrap in a ``wrapped`` attribute, like the idempotency layer's hashing stream), or
    None."""
    for _ in range(4):  # wrappers do not nest deeper
        if isinstance(stream, SpooledBody):
            return stream
        inner = getattr(stream, "wrapped", None)
        if inner is None:
            return None
        stream = inner
    return None


def spool_to_temp(
    stream: IO[bytes],
    directory: str,
    prefix: str,
    limit: int,
    too_big: Callable[[], ApiError],
) -> tuple[str, int, str]:
    """Put ``stream`` into a new temp file in ``directory`` (see :func:`spool_to_path`).

    :param prefix: temp file name prefix (the sweeper removes stale ``up-`` files).
    :returns: ``(path, size, sha256 hex digest)``; the caller renames or unlinks the file.
    """
    path = os.path.join(directory, prefix + secrets.token_hex(8))
    size, digest = spool_to_path(stream, path, limit, too_big)
    return path, size, digest


def spool_to_path(
    stream: IO[bytes],
    path: str,
    limit: int,
    too_big: Callable[[], ApiError],
) -> tuple[int, str]:
    """Put ``stream`` into the new file ``path``, its data and its folder entry synced (what an
    acknowledged upload needs: one data sync, one folder sync): adopt the :class:`SpooledBody`
    under it when there is one (read through ``stream`` once, to hash and count it, then
    renamed), else copy it.

    :param limit: most bytes accepted; one more raises ``too_big()``.
    :param too_big: builds the error for an over-long stream.
    :returns: ``(size, sha256 hex digest)``.
    :raises ApiError: ``too_big()``; 507 ``insufficient_storage`` when the disk is full; the
        file is removed on any failure.
    """
    body = spooled_body(stream)
    if body is not None and not body.closed and body.tell() == 0:
        size, digest = _hashed_on_arrival(stream, body, limit, too_big) or drain(
            stream, limit, too_big
        )
        if body.tell() == size:  # every byte went through unchanged: the file is the body
            try:
                body.adopt(path)
                return size, digest
            except OSError as exc:
                if is_disk_full(exc):
                    raise insufficient_storage() from None
                if exc.errno != errno.EXDEV:
                    raise
        body.seek(0)  # another filesystem: copy the file itself below
        stream = body
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if is_disk_full(exc):
            raise insufficient_storage() from None
        raise
    try:
        with os.fdopen(fd, "wb") as out:
            size, digest = drain(stream, limit, too_big, out)
            out.flush()
            datasync(out.fileno())
        fsync_dir(os.path.dirname(path))
    except OSError as exc:
        remove_quietly(path)
        if is_disk_full(exc):
            raise insufficient_storage() from None
        raise
    except BaseException:
        remove_quietly(path)
        raise
    return size, digest


def _hashed_on_arrival(
    stream: IO[bytes], body: SpooledBody, limit: int, too_big: Callable[[], ApiError]
) -> tuple[int, str] | None:
    """``(size, sha256 hex)`` of a body the HTTP server hashed as it wrote it, read through
    ``stream`` (the body itself, or a :class:`HashingStream` directly around it that has read
    nothing: it takes the digest too), without reading it again; None otherwise.

    The file is left at its end, as a read to the end would leave it.
    """
    sha256 = body.digest()
    if sha256 is None:
        return None
    if stream is not body and not (
        isinstance(stream, HashingStream) and stream.wrapped is body and stream.size == 0
    ):
        return None
    size = body.written
    if size > limit:
        raise too_big()
    if isinstance(stream, HashingStream):
        stream.take_digest(sha256, size)
    body.seek(size)
    return size, sha256.hexdigest()


def drain(
    stream: IO[bytes],
    limit: int,
    too_big: Callable[[], ApiError],
    out: IO[bytes] | None = None,
    hashed: bool = True,
) -> tuple[int, str]:
    """Read ``stream`` to its end, hashing and counting it (and writing it to ``out``).

    A :class:`HashingStream` that has read nothing yet hashes every byte on its way here: its
    digest is the stream's, so the body is hashed once (not once for the idempotency record and
    once more for the blob); so does one under a :class:`Prefixed` whose head it read.

    :param hashed: False: count only (the digest returned is ``""``).
    :returns: ``(size, sha256 hex digest)``. :raises ApiError: ``too_big()`` past ``limit``.
    """
    hashing: HashingStream | None = None
    if isinstance(stream, HashingStream) and stream.size == 0:
        hashing = stream
    elif isinstance(stream, Prefixed):
        hashing = stream.hashing  # hashed its head already, and hashes the rest on its way here
    digest = None if hashing is not None or not hashed else hashlib.sha256()
    size = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise too_big()
        if digest is not None:
            digest.update(chunk)
        if out is not None:
            out.write(chunk)
    if hashing is not None:
        return size, hashing.hexdigest()
    return size, "" if digest is None else digest.hexdigest()


def read_digest(stream: IO[bytes], data: bytes) -> str:
    """:returns: the SHA-256 hex digest of ``data``, all that was read of ``stream`` (to its
    end): that of a :class:`HashingStream` that read exactly ``data``, else computed (the body
    is hashed once, as by :func:`drain`)."""
    if isinstance(stream, HashingStream) and stream.eof and stream.size == len(data):
        return stream.hexdigest()
    return hashlib.sha256(data).hexdigest()


def read_at_most(stream: IO[bytes], count: int) -> bytes:
    """:returns: the next ``count`` bytes of ``stream``: fewer only when it ends first."""
    parts: list[bytes] = []
    left = count
    while left > 0:
        chunk = stream.read(min(left, CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


class Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read: ``head``, then the rest of ``rest``.

    :param head: the bytes read from ``rest`` so far. :param rest: the stream they came from.
    """

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head = head
        self._rest = rest
        #: What this stream reads from (lets ``spool`` find what is under it).
        self.wrapped = rest
        self._untouched = True

    @property
    def hashing(self) -> HashingStream | None:
        """The :class:`HashingStream` ``rest`` when it hashed ``head`` and nothing before, and
        this stream was not read yet: its digest will be this whole stream's (:func:`drain`
        takes it instead of hashing the body a second time). None otherwise."""
        rest = self._rest
        if self._untouched and isinstance(rest, HashingStream) and rest.size == len(self._head):
            return rest
        return None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self._untouched = False
        head = self._head
        if not head:
            return self._rest.read(-1 if size is None else size)
        if size is None or size < 0:
            self._head = b""
            return head + self._rest.read()
        self._head = head[size:]
        return head[:size]

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def remove_quietly(*paths: str) -> None:
    """Remove temp files, ignoring those already gone (cleanup after a failure)."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


#: The environ key under which an upload's preflight asks the HTTP server to hash the body as
#: it spools it (:meth:`SpooledBody.digest`): the handler then neither reads it back nor hashes
#: it after the last byte (:func:`spool_to_path`).
HASH_BODY = "kloudless.hash_body"

#: The environ key under which the HTTP server hands a request its :class:`InPlaceBody`.
BODY_IN_PLACE = "kloudless.body_in_place"


class InPlaceBody:
    """A request body written into ``length`` bytes of the file ``path`` at ``offset`` as it
    arrives (a multipart part, received by the HTTP server straight into its session's file:
    no spooled copy to write, read back and write again); :meth:`finish` makes it durable.

    The write-out of the part's range is started as it arrives, every
    :data:`PART_WRITE_OUT_STEP` (:class:`WriteOut`), so that the data sync before the part's
    answer waits for about the last MiB, not the whole part, and does not find the dirty
    pages of the parts arriving beside it in the same file.

    :raises OSError: from the constructor when the file cannot be opened.
    """

    def __init__(self, path: str, offset: int, length: int) -> None:
        self.path = path
        self.offset = offset
        self.length = length
        #: Bytes written so far.
        self.received = 0
        #: The error that stopped the writes (the body is then dropped), or None.
        self.error: OSError | None = None
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
        self._write_out = part_write_out(self._fd, offset)

    def write(self, data: bytes) -> None:
        """Write the next bytes of the body (past ``length``: dropped, the caller refuses)."""
        if self._fd is None or self.error is not None:
            return
        view = memoryview(data)[: self.length - self.received]
        try:
            while view:
                written = os.pwrite(self._fd, view, self.offset + self.received)
                self.received += written
                view = view[written:]
            self._write_out.advance(self.offset + self.received)
        except OSError as exc:
            self.error = exc
            self.close()

    @property
    def complete(self) -> bool:
        """True when every byte was written."""
        return self.error is None and self.received == self.length

    def finish(self) -> None:
        """Make the written bytes durable, and the file's folder entry (the file may be new,
        or made by a request that failed before its sync; :func:`sync_entry_once`).

        :raises OSError: the sync failed.
        """
        fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW)
        try:
            datasync(fd)
            sync_entry_once(fd, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the file (the bytes stay where they were written)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
