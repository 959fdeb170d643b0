"""Pass-through (``POST accounts/{id}/raw``) to the API of the provider an account was
connected at (Google, Microsoft Graph, Dropbox, Box).

* ``X-Kloudless-Raw-URI``: a relative URI (``/drive/v3/about``) goes to the provider's API
  base (:attr:`~.providers.ProviderApp.api_base`); an absolute one must name one of the
  provider's API hosts (:meth:`~.providers.ProviderApp.api_hosts`: Dropbox's
  ``content.dropboxapi.com``, Box's ``upload.box.com``, ...), else 403 ``forbidden``. No user
  info, fragments or control characters (400). The request's query parameters are added to
  the URI's own.
* Headers: the request's own, minus the API's (``Authorization``, ``X-Kloudless-*``,
  ``Idempotency-Key``, cookies, ``Host``) and hop-by-hop ones, then ``X-Kloudless-Raw-Headers``
  (JSON; it may not set ``Authorization`` or ``Host``: 400). The server adds
  ``Authorization: Bearer <the account's token>``; the client's own ``Authorization`` (its
  Kloudless credential) never leaves the server.
* Body: streamed upstream with its length. A body that cannot be rewound is first spooled to
  a temp file in the data dir, so that the request can be sent again once after a 401 (the
  token is refreshed and the request repeated; a second 401 is returned as it is).
* Answer: the provider's status, headers (minus hop-by-hop ones) and body bytes, streamed
  back undecoded. Transport failures are 502/504 JSON errors; an address the outbound policy
  refuses is 403.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

import requests
from werkzeug.wrappers import Response

from ..errors import ApiError, forbidden, invalid_parameters, too_large
from ..outbound import OutboundPolicy, OutboundRefused
from ..spool import drain
from .base import PassthroughRequest
from .providers import ProviderApp
from .webdav_client import forwardable_headers, iter_raw
from .webdav_passthrough import api_header, raw_headers

#: Headers X-Kloudless-Raw-Headers may not set (the server's own).
_SERVER_HEADERS = frozenset({"authorization", "host", "content-length", "transfer-encoding"})
#: (connect, read) timeouts of a pass-through request, in seconds.
TIMEOUTS = (15, 300)
#: Bodies up to this size are spooled in memory rather than on disk.
_MEMORY_SPOOL = 1024 * 1024


def target_url(app: ProviderApp, uri: str, query: list[tuple[str, str]]) -> str:
    """:returns: the upstream URL of ``X-Kloudless-Raw-URI`` (see the module docstring).

    :raises ApiError: 400 for a malformed URI, 403 for a host that is not the provider's.
    """
    if not uri or len(uri) > 8192 or any(ord(c) < 33 or ord(c) == 127 for c in uri):
        raise invalid_parameters(
            "X-Kloudless-Raw-URI must be a URI without spaces or control characters."
        )
    parts = urlsplit(uri)
    if parts.scheme or uri.startswith("//"):
        scheme = parts.scheme.lower()
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise invalid_parameters("X-Kloudless-Raw-URI has an invalid port.") from None
        origin = (scheme, (parts.hostname or "").lower(), port)
        if parts.username is not None or parts.password is not None:
            raise invalid_parameters("X-Kloudless-Raw-URI may not contain user info.")
        if origin not in app.api_hosts():
            hosts = ", ".join(sorted(f"{s}://{h}" for s, h, _ in app.api_hosts()))
            raise forbidden(
                f"Pass-through for {app.provider.title} accounts reaches only its API "
                f"({hosts}); use a relative URI for {app.api_base}."
            )
        url = uri
    else:
        url = app.api_base + ("" if uri.startswith("/") else "/") + uri
    if parts.fragment:
        raise invalid_parameters("X-Kloudless-Raw-URI may not contain a fragment.")
    if query:
        url += ("&" if urlsplit(url).query else "?") + urlencode(query)
    return url


def _headers(request: PassthroughRequest) -> dict[str, str]:
    headers = {k: v for k, v in request.headers if not api_header(k) and k.lower() != "host"}
    explicit = raw_headers(request.raw_headers)
    refused = sorted(k for k in explicit if k.lower() in _SERVER_HEADERS)
    if refused:
        raise invalid_parameters(
            f"X-Kloudless-Raw-Headers may not set {', '.join(refused)}: the server sets "
            "the upstream's Authorization itself."
        )
    for name in explicit:
        for key in [k for k in headers if k.lower() == name.lower()]:
            del headers[key]
    headers.update(explicit)
    return headers


class _Body:
    """A rewindable request body of known length (requests sends it with Content-Length)."""

    def __init__(self, stream: IO[bytes], start: int, length: int) -> None:
        self.stream = stream
        self.start = start
        self.length = length

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def rewind(self) -> None:
        self.stream.seek(self.start)


def _rewindable(
    request: PassthroughRequest, max_bytes: int, data_dir: str
) -> tuple[_Body | None, IO[bytes] | None]:
    """:returns: the body to send (None for no body) and a spool file to close afterwards."""
    if request.content_length and request.content_length > max_bytes:
        raise too_large(f"The pass-through body exceeds {max_bytes} bytes.")
    if not request.content_length and not request.chunked:
        return None, None
    stream = request.body
    try:
        if request.content_length and stream.seekable():
            return _Body(stream, stream.tell(), request.content_length), None
    except (AttributeError, OSError, ValueError):
        pass
    folder = os.path.join(data_dir, "tmp")
    os.makedirs(folder, exist_ok=True)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by the caller
        max_size=_MEMORY_SPOOL, dir=folder, prefix="raw-"
    )
    try:
        total, _ = drain(
            stream,
            max_bytes,
            lambda: too_large(f"The pass-through body exceeds {max_bytes} bytes."),
            spool,
        )
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return _Body(spool, 0, total), spool


def _send(
    session: requests.Session, method: str, url: str, headers: dict[str, str], body: Any
) -> requests.Response:
    try:
        return session.request(
            method, url, headers=headers, data=body, stream=True, timeout=TIMEOUTS
        )
    except OutboundRefused:
        raise forbidden(
            "The provider API address is refused by the server's outbound policy."
        ) from None
    except requests.Timeout:
        raise ApiError(
            504, "gateway_timeout", "The provider's API did not answer in time."
        ) from None
    except (requests.RequestException, OSError):
        raise ApiError(502, "bad_gateway", "The provider's API could not be reached.") from None


def forward(
    app: ProviderApp,
    access_token: Callable[..., str],
    request: PassthroughRequest,
    policy: OutboundPolicy,
    max_bytes: int,
    data_dir: str,
) -> Response:
    """Send ``request`` to the provider's API with the account's token and relay the answer.

    :param access_token: ``access_token(rejected=None) -> str`` (see
        :meth:`~.provider.TokenKeeper.access_token`).
    :raises ApiError: see the module docstring.
    """
    method = request.method.upper()
    if not method.isascii() or not method.isalpha() or len(method) > 20:
        raise invalid_parameters("X-Kloudless-Raw-Method must be an HTTP method name.")
    url = target_url(app, request.uri, request.query)
    headers = _headers(request)
    body, spool = _rewindable(request, max_bytes, data_dir)
    session = policy.session()
    try:
        token = access_token()
        headers["Authorization"] = f"Bearer {token}"
        answer = _send(session, method, url, headers, body)
        if answer.status_code == 401:
            answer.close()
            headers["Authorization"] = f"Bearer {access_token(rejected=token)}"
            if body is not None:
                body.rewind()
            answer = _send(session, method, url, headers, body)
    except BaseException:
        session.close()
        if spool is not None:
            spool.close()
        raise
    if spool is not None:
        spool.close()  # the body has been sent in full

    def relay() -> Any:
        try:
            yield from iter_raw(answer)
        finally:
            session.close()

    return Response(
        relay(),
        status=answer.status_code,
        headers=forwardable_headers(answer),
        direct_passthrough=True,
    )
