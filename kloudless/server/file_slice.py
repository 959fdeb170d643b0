"""A window onto part of a seekable file, for ``Range`` answers served by ``wsgi.file_wrapper``.

werkzeug answers a ``Range`` request by wrapping the body in an iterator, which the WSGI server
can only drain from a worker thread; a client that stops reading then pins that worker. A
:class:`FileSlice` instead looks like a whole file that holds just the requested bytes, so the
server's file wrapper streams it from its I/O thread (waitress) like any full download.
"""

from __future__ import annotations

import io
import os
from typing import IO, Callable


class PositionedReader(io.RawIOBase):
    """A seekable, read-only raw stream of ``length`` bytes that keeps its position in
    ``_pos``; subclasses implement ``readinto`` (and react to :meth:`_move`)."""

    _pos = 0
    _length = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        position = max(0, min(self._length, base + offset))
        self._move(position)
        self._pos = position
        return position

    def _move(self, position: int) -> None:
        """Called by :meth:`seek` before the position becomes ``position``."""


class FileSlice(PositionedReader):
    """Bytes ``[start, start + length)`` of ``file``, positioned at 0; closing it closes
    ``file`` (and calls ``on_close``, once)."""

    def __init__(
        self, file: IO[bytes], start: int, length: int, on_close: Callable[[], None] | None = None
    ) -> None:
        super().__init__()
        self._file = file
        self._start = start
        self._length = length
        self._pos = 0
        self._on_close = on_close
        file.seek(start)

    def _move(self, position: int) -> None:
        self._file.seek(self._start + position)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._length - self._pos)
        if want <= 0:
            return 0
        data = self._file.read(want)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._file.close()
        finally:
            super().close()
            if self._on_close is not None:
                callback, self._on_close = self._on_close, None
                callback()
