"""Spooling a request body to a temp file: the one place uploads and multipart parts are
written before they are renamed into place."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from typing import IO, Callable

from .errors import ApiError

CHUNK = 256 * 1024


def spool_to_temp(
    stream: IO[bytes],
    directory: str,
    prefix: str,
    limit: int,
    too_big: Callable[[], ApiError],
) -> tuple[str, int, str]:
    """Copy ``stream`` into a new fsync'ed temp file in ``directory``.

    :param prefix: temp file name prefix (the sweeper removes stale ``up-`` files).
    :param limit: most bytes accepted; one more raises ``too_big()``.
    :param too_big: builds the error for an over-long stream.
    :returns: ``(path, size, sha256 hex digest)``; the caller renames or unlinks the file.
    :raises ApiError: ``too_big()``; the temp file is removed on any failure.
    """
    fd, path = tempfile.mkstemp(dir=directory, prefix=prefix)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise too_big()
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        remove_quietly(path)
        raise
    return path, size, digest.hexdigest()


def remove_quietly(*paths: str) -> None:
    """Remove temp files, ignoring those already gone (cleanup after a failure)."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
