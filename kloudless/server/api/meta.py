"""Meta API (spec §10): the caller's application, with an API key or an application token."""

from __future__ import annotations

import sqlite3
from typing import Any

from werkzeug.wrappers import Response

from ..app import AUTH_APP, RequestContext, Route, json_response
from ..errors import invalid_parameters, not_found
from ..store import now_iso


def serialize_app(ctx: RequestContext, row: sqlite3.Row) -> dict[str, Any]:
    """:returns: the application JSON (no secrets)."""
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "logo_url": None,
        "active": True,
        "created": row["created"],
        "modified": row["modified"],
        "source": "local",
        "api": "meta",
        "type": "application",
        "href": ctx.href(f"meta/applications/{row['id']}"),
    }


def list_apps(ctx: RequestContext) -> Response:
    row = ctx.store.get_app(ctx.require_auth().app_id)
    items = [serialize_app(ctx, row)] if row is not None else []
    return json_response(ctx.object_list(items, "meta"))


def _own_app(ctx: RequestContext, app_id: str) -> sqlite3.Row:
    row = ctx.store.get_app(app_id)
    if row is None or app_id != ctx.require_auth().app_id:
        raise not_found(f"Application not found: {app_id[:100]}")
    return row


def get_app(ctx: RequestContext, app_id: str) -> Response:
    return json_response(serialize_app(ctx, _own_app(ctx, app_id)))


def patch_app(ctx: RequestContext, app_id: str) -> Response:
    _own_app(ctx, app_id)
    body = ctx.json_body()
    for key in ("name", "description"):
        if key in body:
            if not isinstance(body[key], str) or len(body[key]) > 1000:
                raise invalid_parameters(f"'{key}' must be a string of at most 1000 characters.")
            ctx.store.execute(
                f"UPDATE apps SET {key} = ?, modified = ? WHERE id = ?",
                (body[key], now_iso(), app_id),
            )
    return json_response(serialize_app(ctx, _own_app(ctx, app_id)))


ROUTES = [
    Route("/meta/applications", ("GET",), list_apps, auth=AUTH_APP),
    Route("/meta/applications/<app_id>", ("GET",), get_app, auth=AUTH_APP),
    Route("/meta/applications/<app_id>", ("PATCH",), patch_app, auth=AUTH_APP),
]
