"""Pass-through (``POST accounts/{id}/raw``, spec §2.8) to a WebDAV or CalDAV upstream.

The request is forwarded with the account's stored credentials by
:meth:`~kloudless.server.connectors.webdav_client.WebDAVClient.forward`, which keeps the
credentials on the account's host and root, and the upstream response is streamed back unchanged
(status, headers except hop-by-hop ones, body bytes undecoded).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

from kloudless.server.connectors.base import PassthroughRequest
from kloudless.server.connectors.webdav_client import (
    HOP_BY_HOP,
    WebDAVClient,
    forwardable_headers,
    iter_raw,
)
from kloudless.server.errors import invalid_parameters, too_large

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

_CHUNK = 64 * 1024


def raw_headers(text: str) -> dict[str, str]:
    """:returns: the ``X-Kloudless-Raw-Headers`` JSON object. :raises ApiError: 400 if invalid."""
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise invalid_parameters("X-Kloudless-Raw-Headers must be a JSON object.") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise invalid_parameters("X-Kloudless-Raw-Headers must map header names to strings.")
    if any("\n" in k + v or "\r" in k + v for k, v in value.items()):
        raise invalid_parameters("X-Kloudless-Raw-Headers may not contain line breaks.")
    return value


class _SizedStream:
    """A request body of known length, read in blocks (requests then sends Content-Length)."""

    def __init__(self, stream: IO[bytes], length: int) -> None:
        self.stream = stream
        self.length = length

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)


def _chunks(stream: IO[bytes]) -> Iterable[bytes]:
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return
        yield chunk


#: Request headers that belong to the API call itself, never forwarded upstream.
_API_HEADERS = frozenset(
    {"authorization", "cookie", "host", "content-length", "idempotency-key", "x-request-id"}
)


def api_header(name: str) -> bool:
    """:returns: whether a request header belongs to the API call itself (never forwarded)."""
    low = name.lower()
    return (
        low in _API_HEADERS or low in HOP_BY_HOP or low.startswith(("x-kloudless-", "x-forwarded-"))
    )


def forward_request(request: PassthroughRequest, client: WebDAVClient, max_bytes: int) -> Response:
    """Forward ``POST accounts/{id}/raw`` to a DAV upstream and relay its answer unchanged.

    Method from ``X-Kloudless-Raw-Method``; URI from ``X-Kloudless-Raw-URI`` (relative to the
    account's root, or an absolute URL on the same host); headers: the request's own headers
    (``Depth``, ``Content-Type``, ``Range``, ...) except the API's (``Authorization``,
    ``X-Kloudless-*``, ``Idempotency-Key``, cookies, hop-by-hop ones), overridden by
    ``X-Kloudless-Raw-Headers`` (JSON); the request's query parameters and body. The upstream's
    status, headers (minus hop-by-hop ones) and body bytes are streamed back.

    :param max_bytes: the largest body passed through (413 above).
    :raises ApiError: 400 for bad raw headers or a URI off the account's host/root; upstream
        transport failures as 502/503/504.
    """
    from werkzeug.wrappers import Response

    headers = {k: v for k, v in request.headers if not api_header(k)}
    explicit = raw_headers(request.raw_headers)
    for name in explicit:  # X-Kloudless-Raw-Headers win, whatever their case
        for key in [k for k in headers if k.lower() == name.lower()]:
            del headers[key]
    headers.update(explicit)
    body: Any = None
    if request.content_length and request.content_length > max_bytes:
        raise too_large(f"The pass-through body exceeds {max_bytes} bytes.")
    if request.content_length:
        body = _SizedStream(request.body, request.content_length)
    elif request.chunked:
        body = _chunks(request.body)
    try:
        upstream = client.forward(request.method, request.uri, headers, request.query, body)
    except ValueError as exc:
        raise invalid_parameters(f"Cannot pass the request through: {exc}.") from None
    return Response(
        iter_raw(upstream),
        status=upstream.status_code,
        headers=forwardable_headers(upstream),
        direct_passthrough=True,
    )
