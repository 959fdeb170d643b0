"""Streams for the WebDAV storage backend: lazy ranged downloads and size-limited spooling."""

from __future__ import annotations

import tempfile
from typing import IO, Any

from kloudless.server.connectors.webdav_client import WebDAVClient
from kloudless.server.errors import too_large
from kloudless.server.file_slice import PositionedReader

_CHUNK = 64 * 1024


class RemoteFile(PositionedReader):
    """A seekable read-only view of an upstream file that opens ``GET`` lazily.

    Seeking before the first read turns into a ``Range`` request, so a ranged download of the
    API (``Range: bytes=a-b``) fetches only the needed bytes upstream.
    """

    def __init__(self, client: WebDAVClient, path: str, size: int) -> None:
        super().__init__()
        self._client = client
        self._path = path
        self._size = self._length = size
        self._pos = 0
        self._response: Any = None
        self._body: Any = None

    def _move(self, position: int) -> None:
        if position != self._pos:
            self._drop()

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        if self._response is None:
            byte_range = (self._pos, None) if self._pos else None
            self._response = self._client.get(self._path, byte_range)
            if byte_range is not None and self._response.status_code != 206:
                # The server ignored Range: skip to the position ourselves, in blocks.
                skip = self._pos
                while skip > 0:
                    block = self._response.raw.read(min(skip, _CHUNK))
                    if not block:
                        break
                    skip -= len(block)
            self._body = self._response.raw
        data = self._body.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def _drop(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
            self._body = None

    def close(self) -> None:
        self._drop()
        super().close()


class Spooled:
    """Context manager: copy a stream into a temporary file (size-limited), rewound."""

    def __init__(self, stream: IO[bytes], max_bytes: int) -> None:
        self.stream = stream
        self.max_bytes = max_bytes
        self.file: Any = None

    def __enter__(self) -> tuple[IO[bytes], int]:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        size = 0
        while True:
            chunk = self.stream.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_bytes:
                self.file.close()
                raise too_large(f"The upload exceeds {self.max_bytes} bytes.")
            self.file.write(chunk)
        self.file.flush()
        self.file.seek(0)
        return self.file, size

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()
