"""Upload from a URL (the Kloudless "Saver"): the server fetches a file and stores it.

``POST accounts/{id}/storage/files`` with a JSON body ``{"url", "name", "parent_id"}`` makes the
server download ``url`` itself. The URL is untrusted input, so every connection goes through the
outbound policy (:mod:`kloudless.server.outbound`): no loopback, link-local, private or cloud
metadata addresses unless the operator allows them (``--allow-upstream``); each redirect (at
most :data:`MAX_REDIRECTS`) is checked again, and the connection is made to the address that was
checked, so DNS rebinding cannot bypass it. The body is streamed into the storage backend (never
held in memory), limited to the server's ``max_upload_bytes``, with a connect and a read timeout
and an overall deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import requests

from .errors import ApiError, invalid_parameters, too_large
from .outbound import OutboundError, OutboundPolicy, OutboundRefused

__all__ = ["MAX_REDIRECTS", "fetch", "name_from_url"]

#: Redirects followed (each one checked by the outbound policy).
MAX_REDIRECTS = 5
#: Seconds to connect, and to wait for each piece of the body.
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 30.0
#: Seconds a whole fetch may take.
DEADLINE = 15 * 60.0
_CHUNK = 256 * 1024


class _Body:
    """The fetched body as a read-only stream, bounded in bytes and in time."""

    def __init__(self, raw: Any, max_bytes: int, deadline: float) -> None:
        self.raw = raw
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        if time.monotonic() > self.deadline:
            raise ApiError(504, "gateway_timeout", "Fetching the URL took too long.")
        try:
            data: bytes = self.raw.read(_CHUNK if n is None or n < 0 else min(n, _CHUNK))
        except requests.exceptions.RequestException as exc:
            raise _upstream_error(exc) from None
        except OSError:
            raise ApiError(502, "bad_gateway", "The connection to the URL broke off.") from None
        self.read_bytes += len(data)
        if self.read_bytes > self.max_bytes:
            raise too_large(f"The file at the URL exceeds the limit of {self.max_bytes} bytes.")
        return data


def _upstream_error(exc: Exception) -> ApiError:
    if isinstance(exc, OutboundRefused):
        return invalid_parameters(f"'url' cannot be fetched: {exc.host} is {exc.reason}.")
    if isinstance(exc, OutboundError):
        return invalid_parameters("'url' cannot be fetched: its host does not resolve.")
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return invalid_parameters(f"'url' redirects more than {MAX_REDIRECTS} times.")
    if isinstance(exc, requests.exceptions.InvalidURL):
        return invalid_parameters("'url' must be an http:// or https:// URL with a host.")
    if isinstance(exc, requests.exceptions.Timeout):
        return ApiError(504, "gateway_timeout", "The URL did not answer in time.")
    return ApiError(502, "bad_gateway", "The URL could not be fetched.")


def name_from_url(url: str) -> str:
    """:returns: the file name a URL suggests (its last path segment), or ``download``."""
    segment = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])
    return segment.strip() or "download"


@contextmanager
def fetch(url: str, policy: OutboundPolicy, max_bytes: int) -> Iterator[IO[bytes]]:
    """Open ``url`` for reading through the outbound policy.

    :returns: (as a context manager) the body stream; the connection closes on exit.
    :raises ApiError: 400 ``invalid_parameters`` for a URL that is malformed, refused by the
        policy, redirects too often or answers with an error status; 413 when its size exceeds
        ``max_bytes``; 502/504 when it cannot be reached in time.
    """
    split = urlsplit(url)
    if split.scheme not in ("http", "https") or not split.hostname:
        raise invalid_parameters("'url' must be an http:// or https:// URL with a host.")
    with policy.session(max_redirects=MAX_REDIRECTS) as session:
        try:
            response = session.get(
                url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=True
            )
        except requests.exceptions.RequestException as exc:
            raise _upstream_error(exc) from None
        with response:
            if not 200 <= response.status_code < 300:
                raise invalid_parameters(f"'url' answered HTTP {response.status_code}, not a file.")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise too_large(f"The file at the URL exceeds the limit of {max_bytes} bytes.")
            response.raw.decode_content = True
            yield _Body(response.raw, max_bytes, time.monotonic() + DEADLINE)  # type: ignore[misc]
