"""Accounts (core API, spec §4): list, create (import), get, patch, delete."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from werkzeug.wrappers import Response

from .. import account_fields
from ..connectors.base import Connector
from ..connectors.registry import get_connector, services
from ..connectors.webdav_auth import account_label
from ..context import RequestContext
from ..errors import ApiError, invalid_parameters
from ..outbound import policy_for
from ..params import parse_bool
from ..responses import json_response, no_content
from ..routing import Route
from ..store import now_iso


def serialize_account(ctx: RequestContext, row: sqlite3.Row, full: bool = False) -> dict[str, Any]:
    """:returns: the account JSON; ``full`` adds ``properties`` with capabilities."""
    connector = get_connector(str(row["service"]))
    apis = connector.account_apis(json.loads(row["config"] or "{}"))
    data: dict[str, Any] = {
        "id": int(row["id"]),
        "account": row["account"],
        "service": row["service"],
        "service_name": connector.service_name or row["service"],
        **account_fields.row_fields(row),
        "internal_use": False,
        "created": row["created"],
        "modified": row["modified"],
        "apis": list(apis),
        "effective_scope": " ".join(
            f"{row['service']}:normal.{api}.default:kloudless" for api in apis
        ),
        "custom_properties": json.loads(row["custom_properties"] or "{}"),
        "object_definitions": {},
        "proxy_connection": None,
        "api": "core",
        "type": "account",
        "href": ctx.href(f"accounts/{int(row['id'])}"),
    }
    if full:
        capabilities: dict[str, Any] = {}
        storage = connector.storage(ctx.account_env(row)) if "storage" in apis else None
        if storage is not None:
            capabilities = {k: {"value": v} for k, v in storage.capabilities.items()}
        try:
            contacts = connector.contacts(ctx.account_env(row)) if "crm" in apis else None
        except ApiError:  # e.g. a CalDAV server without address books
            contacts = None
        if contacts is not None:
            capabilities.update({k: {"value": v} for k, v in contacts.capabilities.items()})
        data["properties"] = {"capabilities": capabilities}
    if ctx.wants_raw:
        data["raw"] = {"service": row["service"], "app_id": row["app_id"]}
    return data


def default_account_name(service: str, config: dict[str, Any]) -> str:
    """:returns: the display name of a new account created without ``account``: ``user@host``
    for upstream accounts (a validated config with ``url`` and ``username``), else the service.
    """
    url, username = config.get("url"), config.get("username")
    if isinstance(url, str) and isinstance(username, str):
        return account_label(url, username)
    return service


def list_accounts(ctx: RequestContext) -> Response:
    auth = ctx.require_auth()
    ctx.page_params()
    if auth.kind == "bearer" and auth.account_id is not None:
        own = auth.account_ids or (auth.account_id,)
        rows = [r for r in (ctx.store.get_account(i) for i in own) if r is not None]
    else:
        rows = ctx.store.list_accounts(auth.app_id)
    for name in account_fields.BOOLEAN_FIELDS:  # active, enabled, admin
        value = ctx.request.args.get(name)
        if value is not None and value != "":
            wanted = parse_bool(value, name, True)
            rows = [r for r in rows if bool(r[name]) == wanted]
    search = ctx.request.args.get("search")
    if search:
        rows = [r for r in rows if search.lower() in str(r["account"]).lower()]
    items = [serialize_account(ctx, r) for r in rows]
    return json_response(ctx.object_list(items, "core", with_total=True))


#: Body keys of ``POST /v1/accounts`` that are account fields, not connector settings.
_ACCOUNT_KEYS = (
    "service",
    "account",
    "custom_properties",
    *account_fields.BOOLEAN_FIELDS,
    *account_fields.TIME_FIELDS,
)


#: Body keys that make ``POST /v1/accounts`` a Kloudless account import: the credentials are
#: stored without being tried (see :mod:`kloudless.server.imported`).
IMPORT_KEYS = ("token", "token_secret", "refresh_token")


def _connector(service: Any) -> Connector:
    """:returns: the connector of a service named in a request body.

    :raises ApiError: 400 ``invalid_parameters`` naming the supported services (never 501).
    """
    if not isinstance(service, str) or not service:
        raise invalid_parameters("'service' must be a service name.")
    try:
        return get_connector(service)
    except ApiError as exc:
        if exc.status != 501:
            raise
    raise invalid_parameters(
        f"This server has no connector for the service {service[:64]!r}; "
        f"it supports: {', '.join(services())}."
    )


def create_account(ctx: RequestContext) -> Response:
    auth = ctx.require_auth()
    if auth.kind != "apikey":
        raise ApiError(403, "forbidden", "Creating accounts needs an API key.")
    body = ctx.json_body()
    service = body.get("service", "local")
    connector = _connector(service)
    columns = account_fields.column_changes(body)
    name = columns.pop("account", None)
    settings = {k: v for k, v in body.items() if k not in _ACCOUNT_KEYS}
    # The store lets connectors seal upstream credentials before storing them.
    if any(key in body for key in IMPORT_KEYS):
        # Stored untried; the outbound policy still applies to every later connection.
        config = connector.import_config(dict(settings, account=name), ctx.store)
    else:
        # The outbound policy decides which addresses the connector may contact.
        config = connector.validate_config(settings, ctx.store, policy_for(ctx.settings))
    service, label = connector.account_identity(config)
    if name is None:
        name = label or default_account_name(service, config)
    with ctx.store.transaction():
        account_id = ctx.store.create_account(auth.app_id, service, name, config)
        _update_columns(ctx, account_id, columns)
    row = ctx.store.get_account(account_id)
    assert row is not None
    return json_response(serialize_account(ctx, row), 201)


def _update_columns(ctx: RequestContext, account_id: int, columns: dict[str, Any]) -> None:
    if columns:
        sets = ", ".join(f"{k} = ?" for k in columns)
        ctx.store.execute(
            f"UPDATE accounts SET {sets} WHERE id = ?", [*columns.values(), account_id]
        )


def get_account(ctx: RequestContext, account_id: str) -> Response:
    row = ctx.account(account_id)
    full = ctx.arg_bool("retrieve_full")
    ctx.arg_bool("retrieve_tokens")  # validated; tokens are stored hashed and never returned
    return json_response(serialize_account(ctx, row, full))


def patch_account(ctx: RequestContext, account_id: str) -> Response:
    row = ctx.account(account_id)
    body = ctx.json_body()
    if "service" in body and body["service"] != row["service"]:
        raise invalid_parameters("An account's service cannot be changed.")
    changes = account_fields.column_changes(body)
    if any(key in body for key in IMPORT_KEYS):
        # New credentials for the upstream, stored untried like an import; they make an
        # account whose old ones were rejected active again.
        settings = {k: v for k, v in body.items() if k not in _ACCOUNT_KEYS}
        previous = json.loads(row["config"] or "{}")
        config = _connector(str(row["service"])).import_config(settings, ctx.store, previous)
        changes["config"] = json.dumps(config)
        changes.setdefault("active", 1)
    if changes:
        changes["modified"] = now_iso()
        _update_columns(ctx, int(row["id"]), changes)
    new = ctx.store.get_account(int(row["id"]))
    assert new is not None
    return json_response(serialize_account(ctx, new))


def delete_account(ctx: RequestContext, account_id: str) -> Response:
    remove_account(ctx, ctx.account(account_id))
    return no_content()


def remove_account(ctx: RequestContext, row: sqlite3.Row) -> None:
    """Delete an account and everything in it (its connector cleans up on disk once the
    deletion has committed)."""
    acc = int(row["id"])
    from .multipart import remove_account_sessions

    remove_account_sessions(ctx, acc)
    ctx.store.delete_account(acc)
    connector = get_connector(str(row["service"]))
    ctx.store.after_commit(
        lambda: connector.on_account_deleted(ctx.store, acc, ctx.settings.data_dir)
    )


ROUTES = [
    Route("/accounts", ("GET",), list_accounts),
    Route("/accounts", ("POST",), create_account),
    Route("/accounts/<account_id>", ("GET",), get_account),
    Route("/accounts/<account_id>", ("PATCH",), patch_account),
    Route("/accounts/<account_id>", ("DELETE",), delete_account),
]
