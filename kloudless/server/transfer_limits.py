"""Concurrency limits for uploads and downloads, per credential and per client address.

A transfer holds a slot from when it starts until its bytes have moved: an upload from the
moment its headers are in (the HTTP server's preflight, before the body is received; or the
handler, under other WSGI servers) until its request ends; a download from when its answer is
built until the server closes the body (after the last byte, or when the client went away).
Uploads and downloads are counted apart, so a client busy uploading can still download.

Past a limit the answer is 429 ``too_many_requests`` with ``Retry-After`` (the SDK waits and
retries it). The counts live in the server process: with several processes each has its own.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from typing import IO, Any, Callable

from .errors import too_many_requests

__all__ = ["DOWNLOAD", "SLOT_HELD", "UPLOAD", "Releasing", "TransferLimits", "credential_key"]

UPLOAD = "upload"
DOWNLOAD = "download"
#: Seconds a refused transfer is told to wait.
RETRY_AFTER = 1
#: WSGI environ key: the HTTP server already holds this request's upload slot (its preflight
#: took it and releases it when the request ends); under it, the release function.
SLOT_HELD = "kloudless.transfer_slot"


def credential_key(authorization: str | None) -> str | None:
    """:returns: a key for the credential in an ``Authorization`` header (its hash: the
    credential itself is never kept), or None without one."""
    if not authorization or not authorization.strip():
        return None
    return hashlib.sha256(authorization.strip().encode("utf-8", "replace")).hexdigest()


class TransferLimits:
    """Slots for concurrent transfers.

    :param per_credential: most transfers of one kind at once with one credential (0: no
        limit).
    :param per_address: most transfers of one kind at once from one client address (0: no
        limit).
    """

    def __init__(self, per_credential: int, per_address: int) -> None:
        self.per_credential = per_credential
        self.per_address = per_address
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def acquire(self, kind: str, credential: str | None, address: str | None) -> Callable[[], None]:
        """Take a slot for a transfer of ``kind`` (:data:`UPLOAD` or :data:`DOWNLOAD`).

        :param credential: :func:`credential_key` of the caller's credential, or None.
        :param address: the client's address, or None.
        :returns: the release function (safe to call more than once).
        :raises ApiError: 429 ``too_many_requests`` (``Retry-After``) when a limit is reached.
        """
        keys = []
        if credential is not None and self.per_credential > 0:
            keys.append(((kind, "credential", credential), self.per_credential))
        if address and self.per_address > 0:
            keys.append(((kind, "address", address), self.per_address))
        with self._lock:
            for key, limit in keys:
                if self._counts[key] >= limit:
                    raise too_many_requests(f"concurrent {kind}s", RETRY_AFTER)
            for key, _ in keys:
                self._counts[key] += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                for key, _ in keys:
                    self._counts[key] -= 1
                    if self._counts[key] <= 0:
                        del self._counts[key]

        return release


class Releasing:
    """A file whose :meth:`close` also releases a transfer slot (a download's body: the HTTP
    server closes it after the last byte, or when the client went away). Everything else is
    the wrapped file's, so a server's ``wsgi.file_wrapper`` streams it as it would the file.

    :param file: the body. :param release: called once, when the body is closed.
    """

    def __init__(self, file: IO[bytes], release: Callable[[], None]) -> None:
        self._file = file
        self._release = release

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    # What a file wrapper calls for every answer, spelled out (cheaper than __getattr__).
    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return self._file.seekable()

    @property
    def remote(self) -> bool:
        """Whether reads wait on the network (a remote blob): asked of every answer, and not
        worth a failed lookup through :meth:`__getattr__`."""
        return bool(getattr(self._file, "remote", False))

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._release()
