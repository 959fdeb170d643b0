"""Meta API (spec §10): applications.

With an API key or an application-level token the caller reaches its own application only
(listing it, reading and changing it). With the operator's developer key
(:mod:`kloudless.server.developers`) it reaches every application of the server, and may also
create (``POST meta/applications``, answered with the new application's first API key, shown
once) and delete them (``DELETE meta/applications/{id}``: its accounts with everything in them,
its keys, tokens and webhook). The older management routes ``/v1/applications...``
(:mod:`kloudless.server.api.management`) use the same handlers.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from werkzeug.wrappers import Response

from .. import webhooks
from ..context import RequestContext
from ..errors import forbidden, invalid_parameters, not_found
from ..params import parse_bool
from ..responses import json_response, no_content
from ..routing import AUTH_META, Route
from ..store import now_iso
from .accounts import remove_account

#: Longest application name and description.
MAX_TEXT = 1000


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


def is_developer(ctx: RequestContext) -> bool:
    """:returns: whether the caller used the developer key."""
    return ctx.require_auth().kind == "developer"


def require_developer(ctx: RequestContext) -> None:
    """:raises ApiError: 403 unless the caller used the developer key."""
    if not is_developer(ctx):
        raise forbidden("Creating and deleting applications needs the developer key.")


def reachable_app(ctx: RequestContext, app_id: str) -> sqlite3.Row:
    """:returns: the application ``app_id`` if the caller may manage it (the developer key:
    any; an application's credentials: their own). :raises ApiError: 404 otherwise."""
    row = ctx.store.get_app(app_id)
    if row is None or not (is_developer(ctx) or app_id == ctx.require_auth().app_id):
        raise not_found(f"Application not found: {app_id[:100]}")
    return row


def request_fields(ctx: RequestContext) -> dict[str, Any]:
    """:returns: the body as a dict: JSON, or form fields (the 1.x SDK sends forms)."""
    mimetype = ctx.request.mimetype
    if "form" in mimetype:
        return dict(ctx.form_body())
    return ctx.json_body(required=False)


def list_apps(ctx: RequestContext) -> Response:
    if is_developer(ctx):
        rows = ctx.store.list_apps()
    else:
        own = ctx.store.get_app(ctx.require_auth().app_id)
        rows = [own] if own is not None else []
    # Every application here is active; ``active=false`` (the 1.x SDK's filter) lists none.
    if not parse_bool(ctx.request.args.get("active"), "active", True):
        rows = []
    return json_response(ctx.object_list([serialize_app(ctx, r) for r in rows], "meta"))


def _text_fields(body: dict[str, Any]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key in ("name", "description"):
        if key in body:
            if not isinstance(body[key], str) or len(body[key]) > MAX_TEXT:
                raise invalid_parameters(
                    f"'{key}' must be a string of at most {MAX_TEXT} characters."
                )
            fields[key] = body[key]
    return fields


def create_app(ctx: RequestContext) -> Response:
    require_developer(ctx)
    fields = _text_fields(request_fields(ctx))
    name = fields.get("name", "").strip()
    if not name:
        raise invalid_parameters("'name' is required: the new application's name.")
    app_id, api_key = ctx.store.create_app(name)
    if fields.get("description"):
        ctx.store.execute(
            "UPDATE apps SET description = ? WHERE id = ?", (fields["description"], app_id)
        )
    answer = serialize_app(ctx, reachable_app(ctx, app_id))
    answer["api_key"] = api_key  # its first API key, shown only here
    ctx.secret_answer = True
    return json_response(answer, 201)


def get_app(ctx: RequestContext, app_id: str) -> Response:
    return json_response(serialize_app(ctx, reachable_app(ctx, app_id)))


def patch_app(ctx: RequestContext, app_id: str) -> Response:
    reachable_app(ctx, app_id)
    body = request_fields(ctx)
    if body.get("webhook_url") is not None:
        webhooks.validate_webhook_url(body["webhook_url"])  # refuse before changing anything
    for key, value in _text_fields(body).items():
        ctx.store.execute(
            f"UPDATE apps SET {key} = ?, modified = ? WHERE id = ?",
            (value, now_iso(), app_id),
        )
    shown = apply_webhook_changes(ctx, app_id, body)
    ctx.secret_answer = bool(shown)
    return json_response(dict(serialize_app(ctx, reachable_app(ctx, app_id)), **shown))


def delete_app(ctx: RequestContext, app_id: str) -> Response:
    """Delete an application and everything of it: accounts (with their files, calendars,
    contacts, events), API keys, tokens, OAuth codes, webhook, trusted domains."""
    require_developer(ctx)
    reachable_app(ctx, app_id)
    with ctx.store.transaction():
        for account in ctx.store.list_accounts(app_id):
            remove_account(ctx, account)
        for table in ("oauth_codes", "trusted_domains", "consent_invitations"):
            ctx.store.execute(f"DELETE FROM {table} WHERE app_id = ?", (app_id,))
        # api_keys, tokens and webhooks go with the row (ON DELETE CASCADE).
        ctx.store.execute("DELETE FROM apps WHERE id = ?", (app_id,))
    return no_content()


def _webhook_fields(ctx: RequestContext, app_id: str) -> dict[str, Any]:
    """:returns: ``webhook_url`` and ``webhook_status`` (the signing key is never listed)."""
    config = webhooks.get_webhook(ctx.store, app_id)
    return {
        "webhook_url": config.url if config else None,
        "webhook_status": config.state if config else None,
    }


def apply_webhook_changes(ctx: RequestContext, app_id: str, body: dict[str, Any]) -> dict[str, str]:
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
    Route("/meta/applications", ("GET",), list_apps, auth=AUTH_META),
    Route("/meta/applications", ("POST",), create_app, auth=AUTH_META),
    Route("/meta/applications/<app_id>", ("GET",), get_app, auth=AUTH_META),
    # Not atomic: the webhook validation ping is sent after the new URL is stored.
    Route("/meta/applications/<app_id>", ("PATCH",), patch_app, auth=AUTH_META, atomic=False),
    Route("/meta/applications/<app_id>", ("DELETE",), delete_app, auth=AUTH_META),
]
