"""``GET /v1/openapi.json``: the OpenAPI description of the routing table, without credentials.

The document is built from the table it is given (:mod:`kloudless.server.api` passes its
own, this route included) by :func:`kloudless.server.apidoc.document.build`, once per base
URL the server is reached at.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from ..apidoc.document import build
from ..context import RequestContext
from ..responses import json_response
from ..routing import AUTH_NONE, Route

__all__ = ["document_route"]


def document_route(routes: list[Route]) -> Route:
    """:returns: the route serving the description of ``routes`` (list it in ``routes``)."""
    built: dict[str, dict[str, Any]] = {}

    def openapi_document(ctx: RequestContext) -> Response:
        base = ctx.site_url("").rstrip("/")
        if base not in built:
            built.clear()  # one base URL at a time in practice; never grows without bound
            built[base] = build(routes, base)
        return json_response(built[base])

    return Route("/openapi.json", ("GET",), openapi_document, auth=AUTH_NONE, family="public")
