"""Streams between the API and the rcd: lazy ranged downloads and size-limited uploads."""

from __future__ import annotations

import io
from typing import IO, Any

from kloudless.server.connectors.rclone_errors import upstream_error
from kloudless.server.connectors.rclone_rc import RcClient, RcError


class RcloneFile(io.RawIOBase):
    """A seekable read-only view of a file served by the rcd (``--rc-serve``).

    Nothing is requested until the first read; a seek before it becomes the ``Range`` of
    that request, so a ranged download of the API fetches only the bytes it sends.
    """

    def __init__(self, rc: RcClient, remote: str, path: str, size: int) -> None:
        super().__init__()
        self._rc, self._remote, self._path, self._size = rc, remote, path, size
        self._pos = 0
        self._response: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        origin = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        target = max(0, origin + offset)
        if target != self._pos:
            self._release()
            self._pos = target
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        if self._response is None:
            try:
                self._response = self._rc.open_file(self._remote, self._path, self._pos)
            except RcError as exc:
                raise upstream_error(exc) from None
            if self._pos and self._response.status != 206:
                self._release()
                raise OSError("rclone ignored the byte range")
        data = self._response.read(len(buffer))
        if not data:
            raise OSError("the file ended early (it changed upstream, or rclone stopped)")
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _release(self) -> None:
        if self._response is not None:
            self._response.release_conn()
            self._response.close()
            self._response = None

    def close(self) -> None:
        self._release()
        super().close()


class LimitedReader(io.RawIOBase):
    """Reads ``stream`` and stops with :attr:`exceeded` set past ``max_bytes``.

    Raising from inside the upload body would leave rclone with a half-sent request; the
    reader instead fails the read, the upload fails, and the backend answers 413.
    """

    def __init__(self, stream: IO[bytes], max_bytes: int) -> None:
        super().__init__()
        self._stream = stream
        self._left = max_bytes
        self.count = 0
        self.exceeded = False
        #: The stream itself failed (the client went away).
        self.failed = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = 64 * 1024 if size is None or size < 0 else size
        try:
            data = self._stream.read(want)
        except Exception:
            self.failed = True
            raise
        if data:
            self.count += len(data)
            self._left -= len(data)
            if self._left < 0:
                self.exceeded = True
                raise OSError("the upload exceeds the size limit")
        return data or b""
