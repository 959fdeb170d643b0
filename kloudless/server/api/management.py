"""The operator's management API (Kloudless' DeveloperKey API), with the developer key
(:mod:`kloudless.server.developers`) only:

* ``GET /v1/meta/developers``, ``GET|PATCH /v1/meta/developers/{id}``: the operator
  (``first_name``, ``last_name``, ``email``);
* ``GET|POST /v1/applications``, ``GET|PATCH|DELETE /v1/applications/{id}``: the applications,
  as ``meta/applications`` (:mod:`kloudless.server.api.meta`, same handlers);
* ``GET|POST /v1/applications/{id}/apikeys``, ``DELETE .../apikeys/{key}``: API keys. ``POST``
  answers the new key in ``key``, shown once (keys are stored hashed). Listed keys show their
  ``id`` (a digest prefix, not a credential) in ``key`` too, so a listed key can be deleted by
  it; ``DELETE`` takes the id or the key itself;
* ``GET|POST /v1/applications/{id}/webhooks``, ``GET|DELETE .../webhooks/{id}``: the
  application's webhook. This server keeps one webhook per application: ``POST`` with the URL
  it has answers it (200), another URL is 409 ``conflict`` until the webhook is deleted.

Bodies are JSON or form fields (the 1.x SDK sends forms).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from werkzeug.wrappers import Response

from .. import developers, webhooks
from ..context import RequestContext
from ..errors import ApiError, not_found
from ..responses import json_response, no_content
from ..routing import AUTH_DEVELOPER, Route
from ..store import hash_secret
from . import meta

#: Length of the digest prefix that identifies an API key (``apikey_<hex>``).
KEY_ID_HEX = 20


# -- developers ----------------------------------------------------------------------------------
def _developer_id(ctx: RequestContext) -> int:
    developer_id = ctx.require_auth().developer_id
    assert developer_id is not None  # AUTH_DEVELOPER routes see developer keys only
    return developer_id


def serialize_developer(ctx: RequestContext, row: sqlite3.Row) -> dict[str, Any]:
    """:returns: the developer JSON (``api: meta``, ``type: developer``)."""
    return {
        "id": int(row["id"]),
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "email": row["email"],
        "created": row["created"],
        "modified": row["modified"],
        "api": "meta",
        "type": "developer",
        "href": ctx.href(f"meta/developers/{row['id']}"),
    }


def list_developers(ctx: RequestContext) -> Response:
    rows = developers.list_developers(ctx.store, _developer_id(ctx))
    return json_response(ctx.object_list([serialize_developer(ctx, r) for r in rows], "meta"))


def get_developer(ctx: RequestContext, developer_id: str) -> Response:
    row = developers.get_developer(ctx.store, _developer_id(ctx), developer_id)
    return json_response(serialize_developer(ctx, row))


def patch_developer(ctx: RequestContext, developer_id: str) -> Response:
    own = _developer_id(ctx)
    developers.get_developer(ctx.store, own, developer_id)
    developers.update_developer(ctx.store, own, meta.request_fields(ctx))
    row = developers.get_developer(ctx.store, own, developer_id)
    return json_response(serialize_developer(ctx, row))


# -- API keys ------------------------------------------------------------------------------------
def key_id(key_hash: str) -> str:
    """:returns: the public id of the API key stored as ``key_hash``."""
    return "apikey_" + key_hash[:KEY_ID_HEX]


def serialize_key(
    ctx: RequestContext, app_id: str, row: sqlite3.Row, key: str | None = None
) -> dict[str, Any]:
    """:returns: the API key JSON; ``key`` is the clear key only when it was just created."""
    kid = key_id(str(row["key_hash"]))
    return {
        "id": kid,
        "key": key if key is not None else kid,
        "application": app_id,
        "created": row["created"],
        "modified": row["created"],
        "api": "meta",
        "type": "apikey",
        "href": ctx.href(f"applications/{app_id}/apikeys/{kid}"),
    }


def _keys(ctx: RequestContext, app_id: str) -> list[sqlite3.Row]:
    return ctx.store.all(
        "SELECT key_hash, created FROM api_keys WHERE app_id = ? ORDER BY created, key_hash",
        (app_id,),
    )


def list_keys(ctx: RequestContext, app_id: str) -> Response:
    meta.reachable_app(ctx, app_id)
    items = [serialize_key(ctx, app_id, row) for row in _keys(ctx, app_id)]
    return json_response(ctx.object_list(items, "meta"))


def create_key(ctx: RequestContext, app_id: str) -> Response:
    meta.reachable_app(ctx, app_id)
    key = ctx.store.create_api_key(app_id)
    row = ctx.store.one(
        "SELECT key_hash, created FROM api_keys WHERE key_hash = ?", (hash_secret(key),)
    )
    assert row is not None
    ctx.secret_answer = True
    return json_response(serialize_key(ctx, app_id, row, key), 201)


def delete_key(ctx: RequestContext, app_id: str, key: str) -> Response:
    meta.reachable_app(ctx, app_id)
    wanted = hash_secret(key)
    for row in _keys(ctx, app_id):
        if row["key_hash"] == wanted or key_id(str(row["key_hash"])) == key:
            ctx.store.execute("DELETE FROM api_keys WHERE key_hash = ?", (row["key_hash"],))
            return no_content()
    raise not_found("API key not found.")  # never echo what may be a key


# -- webhooks ------------------------------------------------------------------------------------
def _webhook(ctx: RequestContext, app_id: str) -> dict[str, Any] | None:
    """:returns: the application's webhook JSON, or None when it has none."""
    config = webhooks.get_webhook(ctx.store, app_id)
    row = ctx.store.one("SELECT created, modified FROM webhooks WHERE app_id = ?", (app_id,))
    if config is None or row is None:
        return None
    # Changes when the webhook is deleted and made again, as an id of a new object does.
    hook_id = "wh_" + hash_secret(f"{app_id}:{row['created']}")[:16]
    return {
        "id": hook_id,
        "url": config.url,
        "status": config.state,
        "application": app_id,
        "created": row["created"],
        "modified": row["modified"],
        "api": "meta",
        "type": "webhook",
        "href": ctx.href(f"applications/{app_id}/webhooks/{hook_id}"),
    }


def _the_webhook(ctx: RequestContext, app_id: str, webhook_id: str) -> dict[str, Any]:
    hook = _webhook(ctx, app_id)
    if hook is None or hook["id"] != webhook_id:
        raise not_found(f"Webhook not found: {webhook_id[:100]}")
    return hook


def list_webhooks(ctx: RequestContext, app_id: str) -> Response:
    meta.reachable_app(ctx, app_id)
    hook = _webhook(ctx, app_id)
    return json_response(ctx.object_list([hook] if hook else [], "meta"))


def create_webhook(ctx: RequestContext, app_id: str) -> Response:
    """``{"url": ..., "signing_key": optional}``: configure the webhook and validate it with a
    ping; a new ``whsec_`` signing key is shown once in ``signing_key``."""
    meta.reachable_app(ctx, app_id)
    body = meta.request_fields(ctx)
    url = webhooks.validate_webhook_url(body.get("url"))
    existing = _webhook(ctx, app_id)
    if existing is not None:
        if existing["url"] != url:
            raise ApiError(
                409,
                "conflict",
                "This server keeps one webhook per application; delete the existing one "
                "first (or change its URL with PATCH meta/applications/{id} webhook_url).",
            )
        return json_response(existing)
    changes: dict[str, Any] = {"webhook_url": url}
    if body.get("signing_key") is not None:
        changes["webhook_signing_key"] = body["signing_key"]
    shown = meta.apply_webhook_changes(ctx, app_id, changes)
    hook = _webhook(ctx, app_id)
    assert hook is not None
    if "webhook_signing_key" in shown:
        hook["signing_key"] = shown["webhook_signing_key"]
        ctx.secret_answer = True
    return json_response(hook, 201)


def get_webhook(ctx: RequestContext, app_id: str, webhook_id: str) -> Response:
    meta.reachable_app(ctx, app_id)
    return json_response(_the_webhook(ctx, app_id, webhook_id))


def delete_webhook(ctx: RequestContext, app_id: str, webhook_id: str) -> Response:
    meta.reachable_app(ctx, app_id)
    _the_webhook(ctx, app_id, webhook_id)
    webhooks.remove_webhook(ctx.store, app_id)
    return no_content()


_APP = "/applications/<app_id>"
ROUTES = [
    Route("/meta/developers", ("GET",), list_developers, auth=AUTH_DEVELOPER),
    Route("/meta/developers/<developer_id>", ("GET",), get_developer, auth=AUTH_DEVELOPER),
    Route("/meta/developers/<developer_id>", ("PATCH",), patch_developer, auth=AUTH_DEVELOPER),
    Route("/applications", ("GET",), meta.list_apps, auth=AUTH_DEVELOPER),
    Route("/applications", ("POST",), meta.create_app, auth=AUTH_DEVELOPER),
    Route(_APP, ("GET",), meta.get_app, auth=AUTH_DEVELOPER),
    # Not atomic: a new webhook URL is validated with a ping after it is stored.
    Route(_APP, ("PATCH",), meta.patch_app, auth=AUTH_DEVELOPER, atomic=False),
    Route(_APP, ("DELETE",), meta.delete_app, auth=AUTH_DEVELOPER),
    Route(_APP + "/apikeys", ("GET",), list_keys, auth=AUTH_DEVELOPER),
    Route(_APP + "/apikeys", ("POST",), create_key, auth=AUTH_DEVELOPER),
    Route(_APP + "/apikeys/<key>", ("DELETE",), delete_key, auth=AUTH_DEVELOPER),
    Route(_APP + "/webhooks", ("GET",), list_webhooks, auth=AUTH_DEVELOPER),
    Route(_APP + "/webhooks", ("POST",), create_webhook, auth=AUTH_DEVELOPER, atomic=False),
    Route(_APP + "/webhooks/<webhook_id>", ("GET",), get_webhook, auth=AUTH_DEVELOPER),
    Route(_APP + "/webhooks/<webhook_id>", ("DELETE",), delete_webhook, auth=AUTH_DEVELOPER),
]
