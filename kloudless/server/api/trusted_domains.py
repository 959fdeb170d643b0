"""Meta API: an application's trusted domains (spec §10, ``trusted_domain`` objects), with an
API key or an application-level token of that application, or the operator's developer key.

* ``GET /v1/meta/applications/{app_id}/trusted_domains``: the list (``object_list``);
* ``POST`` the same path with ``{"domain": "https://app.example.com"}``: trust an origin
  (``201``; ``200`` with the existing object when it was trusted already);
* ``DELETE /v1/meta/applications/{app_id}/trusted_domains/{id}``: stop trusting it (``204``).

``domain`` is an origin, stored as :func:`kloudless.server.trusted_domains.normalize` makes
it; see that module for what trusting one allows.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from werkzeug.wrappers import Response

from .. import trusted_domains
from ..context import RequestContext
from ..errors import invalid_parameters, not_found
from ..responses import json_response, no_content
from ..routing import AUTH_META, Route
from .meta import reachable_app


def _serialize(ctx: RequestContext, row: sqlite3.Row) -> dict[str, Any]:
    return {
        "api": "meta",
        "type": "trusted_domain",
        "id": int(row["id"]),
        "domain": row["origin"],
        "application": row["app_id"],
        "created": row["created"],
        "href": ctx.href(f"meta/applications/{row['app_id']}/trusted_domains/{row['id']}"),
    }


def _own(ctx: RequestContext, app_id: str) -> str:
    reachable_app(ctx, app_id)  # 404 for another application's (unless the developer key)
    return app_id


def list_domains(ctx: RequestContext, app_id: str) -> Response:
    rows = trusted_domains.list_for(ctx.store, _own(ctx, app_id))
    return json_response(ctx.object_list([_serialize(ctx, r) for r in rows], "meta"))


def add_domain(ctx: RequestContext, app_id: str) -> Response:
    _own(ctx, app_id)
    domain = ctx.json_body().get("domain")
    if not isinstance(domain, str):
        raise invalid_parameters("'domain' must be an origin such as https://app.example.com.")
    try:
        origin = trusted_domains.normalize(domain)
    except ValueError as exc:
        raise invalid_parameters(f"'domain': {exc}.") from None
    existed = trusted_domains.is_trusted(ctx.store, app_id, origin)
    try:
        row = trusted_domains.add(ctx.store, app_id, origin)
    except OverflowError as exc:
        raise invalid_parameters(str(exc)) from None
    return json_response(_serialize(ctx, row), 200 if existed else 201)


def _domain(ctx: RequestContext, app_id: str, domain_id: str) -> sqlite3.Row:
    _own(ctx, app_id)
    row = (
        trusted_domains.get(ctx.store, app_id, int(domain_id))
        if domain_id.isascii() and domain_id.isdigit() and len(domain_id) < 18
        else None
    )
    if row is None:
        raise not_found(f"Trusted domain not found: {domain_id[:40]}")
    return row


def get_domain(ctx: RequestContext, app_id: str, domain_id: str) -> Response:
    return json_response(_serialize(ctx, _domain(ctx, app_id, domain_id)))


def delete_domain(ctx: RequestContext, app_id: str, domain_id: str) -> Response:
    row = _domain(ctx, app_id, domain_id)
    trusted_domains.remove(ctx.store, app_id, str(row["origin"]))
    return no_content()


_BASE = "/meta/applications/<app_id>/trusted_domains"
ROUTES = [
    Route(_BASE, ("GET",), list_domains, auth=AUTH_META),
    Route(_BASE, ("POST",), add_domain, auth=AUTH_META),
    Route(_BASE + "/<domain_id>", ("GET",), get_domain, auth=AUTH_META),
    Route(_BASE + "/<domain_id>", ("DELETE",), delete_domain, auth=AUTH_META),
]
