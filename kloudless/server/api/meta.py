"""Meta API (spec §10): the caller's application, with an API key or an application token."""

from __future__ import annotations

import sqlite3
from typing import Any

from werkzeug.wrappers import Response

from .. import webhooks
from ..context import RequestContext
from ..errors import invalid_parameters, not_found
from ..responses import json_response
from ..routing import AUTH_APP, Route
from ..store import now_iso


def serialize_app(ctx: RequestContext, row: sqlite3.Row) -> dict[str, Any]:
    """:returns: the application JSON (no secrets; ``webhook_signing_key`` appears only in the
    PATCH answer that created or rotated it)."""
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "logo_url": None,
        "active": True,
        "created": row["created"],
        "modified": row["modified"],
        "source": "local",
        **_webhook_fields(ctx, str(row["id"])),
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
    if body.get("webhook_url") is not None:
        webhooks.validate_webhook_url(body["webhook_url"])  # refuse before changing anything
    for key in ("name", "description"):
        if key in body:
            if not isinstance(body[key], str) or len(body[key]) > 1000:
                raise invalid_parameters(f"'{key}' must be a string of at most 1000 characters.")
            ctx.store.execute(
                f"UPDATE apps SET {key} = ?, modified = ? WHERE id = ?",
                (body[key], now_iso(), app_id),
            )
    shown = _patch_webhook(ctx, app_id, body)
    return json_response(dict(serialize_app(ctx, _own_app(ctx, app_id)), **shown))


def _webhook_fields(ctx: RequestContext, app_id: str) -> dict[str, Any]:
    """:returns: ``webhook_url`` and ``webhook_status`` (the signing key is never listed)."""
    config = webhooks.get_webhook(ctx.store, app_id)
    return {
        "webhook_url": config.url if config else None,
        "webhook_status": config.state if config else None,
    }


def _patch_webhook(ctx: RequestContext, app_id: str, body: dict[str, Any]) -> dict[str, str]:
    """Apply ``webhook_url`` (a URL, validated with a ping now; null removes the webhook) and
    ``rotate_webhook_signing_key``. :returns: a new signing key to show once, if any."""
    shown: dict[str, str] = {}
    # A key of the operator's choice (the API key a Kloudless receiver verifies with).
    chosen = body.get("webhook_signing_key")
    if chosen is not None:
        webhooks.check_signing_key(chosen)
    if "webhook_url" in body:
        if body["webhook_url"] is None:
            webhooks.remove_webhook(ctx.store, app_id)
        else:
            _, key = webhooks.configure_webhook(ctx.store, app_id, body["webhook_url"])
            if chosen is not None:
                webhooks.set_signing_key(ctx.store, app_id, chosen)
            elif key is not None:
                shown["webhook_signing_key"] = key
            dispatcher = ctx.core.webhooks
            webhooks.validate_webhook(
                ctx.store, app_id, timeout=dispatcher.timeout, sender=dispatcher.sender
            )
    if chosen is not None and "webhook_url" not in body:
        webhooks.set_signing_key(ctx.store, app_id, chosen)
    rotate = body.get("rotate_webhook_signing_key", False)
    if not isinstance(rotate, bool):
        raise invalid_parameters("'rotate_webhook_signing_key' must be a boolean.")
    if rotate:
        shown["webhook_signing_key"] = webhooks.rotate_signing_key(ctx.store, app_id)
    return shown


ROUTES = [
    Route("/meta/applications", ("GET",), list_apps, auth=AUTH_APP),
    Route("/meta/applications/<app_id>", ("GET",), get_app, auth=AUTH_APP),
    # Not atomic: the webhook validation ping is sent after the new URL is stored.
    Route("/meta/applications/<app_id>", ("PATCH",), patch_app, auth=AUTH_APP, atomic=False),
]
