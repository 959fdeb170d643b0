"""A client of rclone's remote-control API (``rclone rcd``), over loopback HTTP.

Three kinds of call:

* :meth:`RcClient.call`: ``POST /<command>`` with a JSON body, e.g. ``operations/list``;
* :meth:`RcClient.open_file`: ``GET /[<remote>:]/<path>`` (rcd's ``--rc-serve``), streamed,
  with a ``Range`` header when reading from an offset;
* :meth:`RcClient.upload_file`: ``operations/uploadfile``, a ``multipart/form-data`` body
  streamed from a file object (rclone streams each part into the backend with ``Rcat``), so the
  gateway never holds an upload in memory.

Failures raise :class:`RcError` carrying rclone's HTTP status and its ``error`` text; rclone's
error bodies also echo the call's input (which may hold credentials), so only ``error`` is
kept, and it is redacted. ``rclone_errors.py`` maps them to API errors.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote, urlencode

import urllib3

from kloudless.server.connectors.rclone_process import Endpoint, RcloneDaemon, RcloneUnavailable

#: Seconds for one rc call to answer (uploads and downloads are bounded per read instead).
CALL_TIMEOUT = 300.0
CONNECT_TIMEOUT = 10.0
_CHUNK = 64 * 1024
#: Calls that change nothing and may be sent again after the rcd restarted.
READ_ONLY = frozenset(
    {
        "operations/list",
        "operations/stat",
        "operations/about",
        "operations/fsinfo",
        "operations/hashsumfile",
        "config/get",
        "config/listremotes",
        "core/version",
        "rc/noop",
    }
)


class RcError(Exception):
    """An rc call failed.

    :param status: rclone's HTTP status (0 when the rcd could not be reached).
    :param message: rclone's ``error`` text, redacted of known secrets.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RcClient:
    """Calls to one :class:`RcloneDaemon` (started on first use, restarted if it died).

    Thread-safe: a pool of loopback connections per rcd generation.
    """

    def __init__(self, daemon: RcloneDaemon) -> None:
        self.daemon = daemon
        self._lock = threading.Lock()
        self._pool: urllib3.HTTPConnectionPool | None = None
        self._pool_generation = -1
        self._headers: dict[str, str] = {}

    def _connect(self) -> tuple[urllib3.HTTPConnectionPool, dict[str, str]]:
        endpoint: Endpoint = self.daemon.ensure()
        with self._lock:
            if self._pool is None or self._pool_generation != endpoint.generation:
                if self._pool is not None:
                    self._pool.close()
                self._pool = urllib3.HTTPConnectionPool(
                    "127.0.0.1", endpoint.port, maxsize=16, block=False, retries=False
                )
                token = base64.b64encode(f"{endpoint.user}:{endpoint.password}".encode()).decode()
                self._headers = {"Authorization": f"Basic {token}"}
                self._pool_generation = endpoint.generation
            return self._pool, dict(self._headers)

    def close(self) -> None:
        """Close the pooled connections."""
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    # -- calls -----------------------------------------------------------------------------------

    def call(
        self, command: str, params: dict[str, Any] | None = None, timeout: float = CALL_TIMEOUT
    ) -> dict[str, Any]:
        """Run an rc command. :returns: its JSON answer. :raises RcError: on failure."""
        body = json.dumps(params or {}).encode()
        attempts = 2 if command in READ_ONLY else 1
        for attempt in range(attempts):
            pool, headers = self._connect()
            headers["Content-Type"] = "application/json"
            try:
                response = pool.urlopen(
                    "POST",
                    "/" + command,
                    body=body,
                    headers=headers,
                    timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=timeout),
                    preload_content=True,
                )
            except urllib3.exceptions.HTTPError as exc:
                if attempt + 1 < attempts:
                    # A read may be sent again; if the rcd died, _connect() restarts it.
                    time.sleep(0.2)
                    continue
                raise self._transport_error(exc) from None
            return self._answer(response.status, response.data)
        raise RcError(0, "rclone did not answer.")  # pragma: no cover - loop always returns

    def _transport_error(self, exc: Exception) -> RcError:
        timeout = isinstance(exc, urllib3.exceptions.TimeoutError)
        # A killed rcd closes its sockets a moment before it can be reaped: wait for that.
        if not self.daemon.alive() or (not timeout and self.daemon.exited(within=2.0)):
            return RcError(0, "rclone stopped during the operation; it is being restarted.")
        if timeout:
            return RcError(504, "rclone did not answer in time.")
        return RcError(0, f"rclone could not be reached: {type(exc).__name__}.")

    def _answer(self, status: int, data: bytes) -> dict[str, Any]:
        try:
            answer = json.loads(data.decode("utf-8") or "{}")
        except ValueError:
            answer = None
        if status >= 400 or not isinstance(answer, dict):
            message = answer.get("error") if isinstance(answer, dict) else None
            if not isinstance(message, str):
                message = f"rclone answered HTTP {status}."
            raise RcError(status if status >= 400 else 502, self.daemon.redact(message))
        return answer

    # -- file contents ---------------------------------------------------------------------------

    def open_file(self, remote: str, path: str, start: int = 0) -> urllib3.BaseHTTPResponse:
        """Start streaming a file from byte ``start``.

        :param remote: the rcd's remote name (without ``:``).
        :param path: the file's path in the remote (no leading ``/``).
        :returns: the response (status 200, or 206 from ``start``); read and close it.
        :raises RcError: 404 when the file does not exist, other rclone failures.
        """
        pool, headers = self._connect()
        if start:
            headers["Range"] = f"bytes={start}-"
        url = "/" + quote(f"[{remote}:]", safe="") + "/" + quote(path, safe="/")
        try:
            response = pool.urlopen(
                "GET",
                url,
                headers=headers,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=CALL_TIMEOUT),
                preload_content=False,
                decode_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status >= 400:
            data = response.read()
            response.release_conn()
            if response.status == 500 and b"object not found" in data:
                raise RcError(404, "object not found")
            self._answer(response.status, data)
        return response

    def upload_file(self, remote: str, folder: str, name: str, stream: IO[bytes]) -> None:
        """Stream ``stream`` into ``<folder>/<name>`` (replacing a file of that name).

        :param name: a plain ASCII name without quotes or slashes (a temporary name: the
            storage backend renames it afterwards): Go's multipart parser keeps only a
            file name's base and cannot unescape quotes.

        :param folder: the folder's path in the remote (``""`` for its root).
        :raises RcError: when rclone fails (or the stream raises: its exception propagates).
        """
        if not name.isascii() or any(c in name for c in '"/\\\r\n'):
            raise ValueError("upload names must be plain ASCII without quotes or slashes")
        pool, headers = self._connect()
        boundary = "kloudless-" + secrets.token_hex(16)
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        query = urlencode({"fs": f"{remote}:", "remote": folder})
        body = _multipart(boundary, name, stream)
        try:
            response = pool.urlopen(
                "POST",
                f"/operations/uploadfile?{query}",
                body=body,
                headers=headers,
                chunked=True,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=CALL_TIMEOUT),
                preload_content=True,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise self._transport_error(exc) from None
        self._answer(response.status, response.data)


def _multipart(boundary: str, name: str, stream: IO[bytes]) -> Iterator[bytes]:
    """Yield a one-part ``multipart/form-data`` body whose file part is read from ``stream``."""
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    yield head.encode("utf-8")
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


__all__ = ["READ_ONLY", "RcClient", "RcError", "RcloneUnavailable"]
