"""A full disk: how to recognise it, the ``507`` it answers, and the room kept for deletes.

Writes that cannot fit answer ``507 insufficient_storage`` (checked before writing when the size
is known, and on ``ENOSPC`` / SQLite's "database or disk is full"); reads and deletes keep
working, and writes resume by themselves once space is freed. So that a delete can still commit
when something else filled the disk, the data dir holds a :class:`Reserve`: a file of
:data:`RESERVE_BYTES` that a delete releases when the disk is nearly full, and that is put back
once there is room again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import threading
import time

from .errors import ApiError

log = logging.getLogger("kloudless.server")

#: ``errno`` values meaning "no room left" (a full disk or an exceeded disk quota).
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
#: SQLite's result code for "database or disk is full".
SQLITE_FULL = 13

#: Name of the reserve file in the data dir.
RESERVE_FILE = "reserve.bin"
#: Size of the reserve: room for the database to commit deletes (and checkpoint its WAL).
RESERVE_BYTES = 8 * 1024 * 1024
#: Seconds between attempts to put the reserve back.
RESTORE_INTERVAL = 5.0


def is_disk_full(exc: BaseException) -> bool:
    """:returns: whether ``exc`` says the disk (or a disk quota) is full: an ``OSError`` with
    ``ENOSPC``/``EDQUOT``, or SQLite's ``SQLITE_FULL``."""
    if isinstance(exc, OSError):
        return exc.errno in NO_SPACE_ERRNOS
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return bool(code & 0xFF == SQLITE_FULL)
        return "database or disk is full" in str(exc)
    return False


def insufficient_storage(message: str = "The server's disk is full.") -> ApiError:
    """:returns: a 507 ``insufficient_storage`` error."""
    return ApiError(507, "insufficient_storage", message)


def free_bytes(path: str) -> int | None:
    """:returns: the bytes free for this process on ``path``'s filesystem, or None if unknown."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def check_room(path: str, size: int, keep_free: int) -> None:
    """Refuse a write of ``size`` bytes that would leave less than ``keep_free`` free.

    :raises ApiError: 507 ``insufficient_storage``.
    """
    free = free_bytes(path)
    if free is not None and free - size < keep_free:
        raise insufficient_storage(
            f"The server's disk is full: {size} bytes do not fit (keeping {keep_free} free)."
        )


class Reserve:
    """The data dir's reserve file (see the module docstring).

    :param data_dir: the data dir.
    :param keep_free: the free space writes must leave (``Settings.min_free_bytes``); the
        reserve is put back only when the disk has this much free beyond it.
    """

    def __init__(self, data_dir: str, keep_free: int, size: int = RESERVE_BYTES) -> None:
        self.path = os.path.join(data_dir, RESERVE_FILE)
        self.data_dir = data_dir
        self.keep_free = keep_free
        self.size = size
        self._lock = threading.Lock()
        self._next_restore = 0.0

    @property
    def held(self) -> bool:
        """Whether the reserve file exists (with its full size)."""
        try:
            return os.stat(self.path).st_size >= self.size
        except OSError:
            return False

    def release_if_low(self) -> None:
        """Give the reserve's room back to the disk when less than it is free (before a
        delete, so that its commit fits)."""
        free = free_bytes(self.data_dir)
        if free is not None and free < self.size and self.held:
            with self._lock, contextlib.suppress(OSError):
                os.unlink(self.path)
                log.warning("disk nearly full: released the %d-byte reserve", self.size)
        self._next_restore = time.monotonic() + RESTORE_INTERVAL

    def maybe_restore(self) -> None:
        """Put the reserve back when the disk has room for it and for ``keep_free`` (at most
        once per :data:`RESTORE_INTERVAL` seconds; cheap otherwise)."""
        now = time.monotonic()
        if now < self._next_restore:
            return
        self._next_restore = now + RESTORE_INTERVAL
        if self.held:
            return
        free = free_bytes(self.data_dir)
        if free is None or free < self.size + self.keep_free:
            return
        with self._lock:
            temp = self.path + ".new"
            try:
                with open(temp, "wb") as fh:
                    chunk = b"\0" * (1024 * 1024)
                    for _ in range(self.size // len(chunk)):
                        fh.write(chunk)  # written, not sparse: the blocks are really held
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(temp, self.path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                if not is_disk_full(exc):
                    log.warning("cannot create the disk reserve: %s", exc)
