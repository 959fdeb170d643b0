"""The routing table's vocabulary: :class:`Route`, the auth levels, and the URL map.

Each ``api/<area>.py`` module lists its routes in ``ROUTES``; :mod:`kloudless.server.api`
collects them in one table, which :func:`url_map` mounts under ``/v1`` (and ``/v2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Callable

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Response

AUTH_NONE = "none"  # no credentials needed (OAuth pages, public links)
AUTH_ANY = "any"  # Bearer token or API key
AUTH_APP = "app"  # API key or application-level bearer token
AUTH_META = "meta"  # AUTH_APP or the operator's developer key (meta/applications)
AUTH_DEVELOPER = "developer"  # the developer key only (the management API)

#: ``handler(ctx, **url_vars) -> Response``.
Handler = Callable[..., Response]
#: ``precheck(ctx, **url_vars) -> None``: raises ``ApiError`` to refuse a request.
Precheck = Callable[..., None]

BODY_SMALL = "small"  # JSON or form bodies, up to Settings.max_json_bytes
BODY_UPLOAD = "upload"  # file bytes, up to Settings.max_upload_bytes
#: The methods that change state.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: WSGI environ key: what the app's preflight found for a request (its route, URL variables
#: and credentials), handed by the HTTP server to the dispatch of the same request so that it
#: does not route and authenticate it a second time (``ServerApp.preflight``).
PREFLIGHTED = "kloudless.preflighted"
#: WSGI environ key: a list the HTTP server (``serving.Task``) gives each request; what the app
#: appends to it (callables of no arguments) runs once the answer has been handed to the
#: socket, in the same worker, before the connection's next request is read: work the client
#: need not wait for, such as the request log line. Without the key (another WSGI server, the
#: test client) the app does that work before it answers.
AFTER_RESPONSE = "kloudless.after_response"

__all__ = [
    "AFTER_RESPONSE",
    "AUTH_ANY",
    "AUTH_APP",
    "AUTH_DEVELOPER",
    "AUTH_META",
    "AUTH_NONE",
    "BODY_SMALL",
    "BODY_UPLOAD",
    "PREFLIGHTED",
    "WRITE_METHODS",
    "Handler",
    "Precheck",
    "Route",
    "in_family",
    "url_map",
]


@dataclass(frozen=True)
class Route:
    """One routing rule.

    :param path: werkzeug rule under ``/v1`` (e.g. ``/accounts/<account_id>/storage/quota``);
        ``prefix=False`` mounts it at the site root instead.
    :param methods: accepted HTTP methods.
    :param handler: ``handler(ctx, **url_vars) -> Response``.
    :param auth: :data:`AUTH_ANY` (default), :data:`AUTH_APP`, :data:`AUTH_META` (an
        application's credentials or the developer key), :data:`AUTH_DEVELOPER` (the developer
        key only) or :data:`AUTH_NONE`. A developer key is refused (403) on every route but
        :data:`AUTH_META` and :data:`AUTH_DEVELOPER` ones.
    :param body: the request bodies it takes: :data:`BODY_SMALL` (default) or
        :data:`BODY_UPLOAD`; a longer body is refused before it is read.
    :param precheck: checks that need only the headers (the account, its quota), run by the
        HTTP server before it reads the body, and never instead of the handler's own checks.
    :param atomic: run an authenticated write (POST, PUT, PATCH, DELETE) as one unit of work
        (:meth:`~kloudless.server.store.Store.unit_of_work`): its change, activity events and
        stored idempotent answer commit together. False only for a handler that must call out
        (an upstream, a webhook URL) after its first write; a callable
        ``atomic(ctx, **url_vars) -> bool`` decides per request (the contacts batch: atomic on
        ``local`` accounts, not where each of its requests calls an upstream).
    :param family: the API family the route belongs to (``storage``, ``calendar``, ...; see
        :data:`kloudless.server.scopes.FAMILIES`): a bearer token's scope must cover it. Set it
        here, or for a whole module with :func:`in_family` in the routing table.
    """

    path: str
    methods: tuple[str, ...]
    handler: Handler
    auth: str = AUTH_ANY
    prefix: bool = True
    body: str = BODY_SMALL
    precheck: Precheck | None = None
    atomic: bool | Callable[..., bool] = True
    family: str = ""


def in_family(family: str, routes: Sequence[Route]) -> list[Route]:
    """:returns: ``routes`` with ``family`` set on those that do not name one themselves."""
    return [route if route.family else replace(route, family=family) for route in routes]


def url_map(routes: Sequence[Route]) -> Map:
    """:returns: the werkzeug map whose endpoints are indexes into ``routes``."""
    rules = Map(strict_slashes=False, merge_slashes=False)
    for index, route in enumerate(routes):
        if not route.prefix:
            rules.add(Rule(route.path, methods=list(route.methods), endpoint=index))
            continue
        # This server implements API v1; /v2 paths are served by the same handlers so that
        # 2.x SDK code pinning api_version=2 keeps working.
        for version in ("/v1", "/v2"):
            rules.add(Rule(version + route.path, methods=list(route.methods), endpoint=index))
    return rules
