"""Streams between the API and the rcd: lazy ranged downloads and size-limited uploads."""

from __future__ import annotations

import io
from typing import IO, Any, cast

from kloudless.server.connectors.rclone_errors import upstream_error
from kloudless.server.connectors.rclone_rc import RcClient, RcError
from kloudless.server.connectors.webdav_streams import RemoteFile


class _Download:
    """One streamed GET of the rcd, shaped as :class:`RemoteFile` expects a response."""

    def __init__(self, response: Any) -> None:
        self.raw = response
        self.status_code = int(response.status)

    def close(self) -> None:
        self.raw.release_conn()
        self.raw.close()


class _RcdFiles:
    """The rcd's file serving, as the ``get(path, byte_range)`` client of :class:`RemoteFile`."""

    def __init__(self, rc: RcClient, remote: str) -> None:
        self.rc, self.remote = rc, remote

    def get(self, path: str, byte_range: tuple[int, int | None] | None) -> _Download:
        try:
            return _Download(
                self.rc.open_file(self.remote, path, byte_range[0] if byte_range else 0)
            )
        except RcError as exc:
            raise upstream_error(exc) from None


def rclone_file(rc: RcClient, remote: str, path: str, size: int) -> io.RawIOBase:
    """:returns: a seekable read-only view of a file served by the rcd (``--rc-serve``):
    nothing is requested until the first read, and a seek before it becomes the ``Range`` of
    that request (the WebDAV connector's :class:`RemoteFile` over the rcd)."""
    return RemoteFile(cast(Any, _RcdFiles(rc, remote)), path, size)


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
