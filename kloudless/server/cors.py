"""CORS for browser clients (kloudless-js, the File Picker, the Authenticator's step 3).

A browser page may read an API answer only when the answer names its origin. This server
names an origin only when it is a trusted domain (:mod:`kloudless.server.trusted_domains`)
of the application whose credential the request carries:

* Preflights (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) carry no
  credential, so they are answered for an origin that *some* application trusts, for a route
  that exists with the requested method, before authentication, and say nothing about
  accounts. Allowed: the methods below, and the request headers ``Authorization``,
  ``Content-Type``, ``Idempotency-Key``, ``Range`` and any ``X-Kloudless-*``; other requested
  headers are left out (so the browser refuses the request). ``Access-Control-Max-Age`` is
  ten minutes. An untrusted origin gets ``204`` without CORS headers.
* Other requests with an ``Origin``: ``Access-Control-Allow-Origin: <origin>`` when the
  origin is trusted by the credential's application (or, when the request has no valid
  credential yet, by any application, so the page can read its ``401``), with
  ``Access-Control-Expose-Headers`` (``X-Request-Id``, ``ETag``, ``Retry-After``, ...).
  Every answer to a request with an ``Origin`` carries ``Vary: Origin``.
* Never ``Access-Control-Allow-Credentials``: the API uses no cookies, and browsers send the
  bearer token in ``Authorization``.
* Public link downloads (``/l/<id>``) hold no credential: any origin may read them
  (``Access-Control-Allow-Origin: *``).
"""

from __future__ import annotations

from werkzeug.routing import MapAdapter
from werkzeug.wrappers import Request, Response

from . import trusted_domains
from .auth import Auth
from .store import Store

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
#: Request headers a browser may send (besides the CORS-safelisted ones), lower case.
ALLOW_HEADERS = ("authorization", "content-type", "idempotency-key", "range")
EXPOSE_HEADERS = (
    "X-Request-Id, ETag, Retry-After, Location, Content-Disposition, Content-Range, "
    "Content-Length, Accept-Ranges"
)
MAX_AGE = "600"


def _public(path: str) -> bool:
    return path.startswith("/l/")


def _allowed_headers(requested: str) -> str:
    names = [h.strip().lower() for h in requested.split(",") if h.strip()]
    return ", ".join(h for h in names if h in ALLOW_HEADERS or h.startswith("x-kloudless-"))


def is_preflight(request: Request) -> bool:
    """:returns: whether the request is a CORS preflight (``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``)."""
    return (
        request.method == "OPTIONS"
        and bool(request.headers.get("Origin"))
        and bool(request.headers.get("Access-Control-Request-Method"))
    )


def preflight(request: Request, store: Store, adapter: MapAdapter) -> Response:
    """:returns: the answer to a CORS preflight (:func:`is_preflight`).

    :raises werkzeug.exceptions.HTTPException: no route for the path and requested method
        (the usual JSON 404/405).
    """
    origin = request.headers.get("Origin", "")
    method = request.headers.get("Access-Control-Request-Method", "").upper()
    adapter.match(method=method)
    response = Response(status=204)
    response.headers["Vary"] = "Origin"
    if _public(request.path):
        response.headers["Access-Control-Allow-Origin"] = "*"
    elif trusted_domains.trusted_by_any(store, origin):
        response.headers["Access-Control-Allow-Origin"] = origin
    else:
        return response
    response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
    allowed = _allowed_headers(request.headers.get("Access-Control-Request-Headers", ""))
    if allowed:
        response.headers["Access-Control-Allow-Headers"] = allowed
    response.headers["Access-Control-Max-Age"] = MAX_AGE
    return response


def apply(request: Request, store: Store, auth: Auth | None, response: Response) -> None:
    """Add the CORS answer headers for the request's ``Origin`` (see the module docstring).

    :param auth: the request's valid credential, if it had one.
    """
    origin = request.environ.get("HTTP_ORIGIN")  # what request.headers.get() reads
    if not origin or "Access-Control-Allow-Origin" in response.headers:
        return
    response.vary.add("Origin")
    if _public(request.path):
        allowed = "*"
    elif auth is not None:
        allowed = origin if trusted_domains.is_trusted(store, auth.app_id, origin) else ""
    else:
        allowed = origin if trusted_domains.trusted_by_any(store, origin) else ""
    if allowed:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
