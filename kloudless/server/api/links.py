"""Shared links (spec §5.5): CRUD under ``storage/links`` plus the public ``/l/<id>`` route.

A link is served by this server at ``/l/<id>`` (every service), or, with ``"upstream": true``
on creation, made by the service itself where it has public links of its own (rclone's
``operations/publiclink``: S3 presigned URLs, Dropbox or Google Drive shared links...): the
link's ``url`` is then the service's, its ``expiration`` what the service says, and it takes no
password; deleting it asks the service to remove it (S3 presigned URLs cannot be revoked and
work until they expire). A service without public links answers ``501 not_implemented``.
The service's URL is stored sealed (``links.upstream_url``, migration 780).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import html
import os
import secrets
import sqlite3
from typing import Any

from werkzeug.wrappers import Response

from .. import content
from ..availability import format_utc, parse_datetime
from ..connectors.webdav_auth import seal, unseal
from ..context import RequestContext
from ..errors import ApiError, invalid_parameters, not_found
from ..responses import json_response, no_content
from ..routing import AUTH_NONE, Route
from ..store import now_iso, register_migration
from .storage import send_contents

A = "/accounts/<account_id>/storage/links"

# The service's own URL of an upstream link, sealed (rclone range 780-799).
register_migration(780, "ALTER TABLE links ADD COLUMN upstream_url TEXT")


def _hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 100_000)
    return salt.hex() + "$" + digest.hex()


def _check_password(password: str, stored: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(_hash_password(password, bytes.fromhex(salt)), stored)


def _parse_expiration(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_parameters("'expiration' must be an ISO-8601 timestamp.")
    try:
        return format_utc(parse_datetime(value))
    except ValueError:
        raise invalid_parameters(
            "'expiration' must be an ISO-8601 timestamp within years 1..9999."
        ) from None


def _expired(row: sqlite3.Row) -> bool:
    # Compare instants: stored values of older versions differ in format.
    if not row["expiration"]:
        return False
    try:
        expires = parse_datetime(str(row["expiration"]))
    except ValueError:
        return True
    return expires <= dt.datetime.now(dt.timezone.utc)


def serialize_link(ctx: RequestContext, row: sqlite3.Row) -> dict[str, Any]:
    """:returns: the link JSON (``password`` is only a flag)."""
    upstream = row["upstream_url"]
    return {
        "id": row["id"],
        "api": "storage",
        "type": "link",
        "file_id": row["file_id"],
        "account": int(row["account_id"]),
        "url": unseal(ctx.store.server_secret(), upstream)
        if upstream
        else ctx.site_url(f"l/{row['id']}"),
        "upstream": bool(upstream),
        "active": bool(row["active"]),
        "direct": bool(row["direct"]),
        "expiration": row["expiration"],
        "password": bool(row["password_hash"]),
        "created": row["created"],
        "modified": row["modified"],
        "href": ctx.href(f"accounts/{int(row['account_id'])}/storage/links/{row['id']}"),
    }


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise invalid_parameters(f"'{key}' must be a boolean.")
    return value


def _password(body: dict[str, Any]) -> str | None:
    value = body.get("password")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 1024:
        raise invalid_parameters("'password' must be a string.")
    return _hash_password(value)


def create_link(ctx: RequestContext, account_id: str) -> Response:
    account = ctx.account(account_id)
    acc = int(account["id"])
    body = ctx.json_body()
    file_id = body.get("file_id")
    if not isinstance(file_id, str) or not file_id:
        raise invalid_parameters("'file_id' is required.")
    storage = ctx.storage(account)
    try:
        storage.get(file_id, "file")
    except ApiError as exc:
        if exc.status == 404:
            raise invalid_parameters(f"Invalid file_id: {file_id[:100]}") from None
        raise
    expiration = _parse_expiration(body.get("expiration"))
    password = _password(body)
    upstream_url = None
    if _bool(body, "upstream", False):
        if password is not None:
            raise invalid_parameters("A link made by the service ('upstream') has no password.")
        if not _bool(body, "active", True):
            raise invalid_parameters("A link made by the service ('upstream') is active.")
        # The service's call comes before this request's first write (see HACKING.md).
        made = storage.public_link(file_id, "file", _seconds_until(expiration))
        upstream_url = seal(ctx.store.server_secret(), made.url)
        expiration = made.expiration
    link_id = secrets.token_urlsafe(15)
    now = now_iso()
    ctx.store.execute(
        "INSERT INTO links (id, account_id, file_id, direct, active, expiration, password_hash,"
        " created, modified, upstream_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            link_id,
            acc,
            file_id,
            int(_bool(body, "direct", False)),
            int(_bool(body, "active", True)),
            expiration,
            password,
            now,
            now,
            upstream_url,
        ),
    )
    return json_response(serialize_link(ctx, _link(ctx, acc, link_id)), 201)


def _seconds_until(expiration: str | None) -> int | None:
    """:returns: seconds from now until ``expiration`` (None for none). :raises ApiError: 400
    for a time in the past."""
    if expiration is None:
        return None
    seconds = int((parse_datetime(expiration) - dt.datetime.now(dt.timezone.utc)).total_seconds())
    if seconds <= 0:
        raise invalid_parameters("'expiration' is in the past.")
    return seconds


def _link(ctx: RequestContext, acc: int, link_id: str) -> sqlite3.Row:
    row = ctx.store.one("SELECT * FROM links WHERE id = ? AND account_id = ?", (link_id, acc))
    if row is None:
        raise not_found(f"Link not found: {link_id[:100]}")
    return row


def list_links(ctx: RequestContext, account_id: str) -> Response:
    ids = [int(a["id"]) for a in ctx.accounts(account_id)]
    ctx.page_params()
    marks = ",".join("?" * len(ids))
    rows = ctx.store.all(
        f"SELECT * FROM links WHERE account_id IN ({marks}) ORDER BY created, id", ids
    )
    active = ctx.request.args.get("active")
    if active:
        wanted = ctx.arg_bool("active")
        rows = [r for r in rows if bool(r["active"]) == wanted]
    items = [serialize_link(ctx, r) for r in rows]
    return json_response(ctx.object_list(items, "storage", with_total=True))


def get_link(ctx: RequestContext, account_id: str, link_id: str) -> Response:
    acc = int(ctx.account(account_id)["id"])
    return json_response(serialize_link(ctx, _link(ctx, acc, link_id)))


def patch_link(ctx: RequestContext, account_id: str, link_id: str) -> Response:
    acc = int(ctx.account(account_id)["id"])
    row = _link(ctx, acc, link_id)
    body = ctx.json_body()
    changes: dict[str, Any] = {}
    if "active" in body:
        changes["active"] = int(_bool(body, "active", True))
    if "direct" in body:
        changes["direct"] = int(_bool(body, "direct", False))
    if "expiration" in body:
        changes["expiration"] = _parse_expiration(body["expiration"])
    if "password" in body:
        changes["password_hash"] = _password(body)
    if "file_id" in body and body["file_id"] != row["file_id"]:
        raise invalid_parameters("A link's file_id cannot be changed.")
    if row["upstream_url"] and any(
        k in body and body[k] != _current(row, k)
        for k in ("active", "direct", "expiration", "password")
    ):
        raise invalid_parameters(
            "A link made by the service ('upstream') cannot be changed; delete it and make another."
        )
    changes["modified"] = now_iso()
    sets = ", ".join(f"{k} = ?" for k in changes)
    ctx.store.execute(f"UPDATE links SET {sets} WHERE id = ?", [*changes.values(), link_id])
    return json_response(serialize_link(ctx, _link(ctx, acc, link_id)))


def _current(row: sqlite3.Row, key: str) -> Any:
    """:returns: a link's field as the API shows it (to tell a change from a re-sent value)."""
    if key == "password":
        return bool(row["password_hash"]) or None
    if key == "expiration":
        return row["expiration"]
    return bool(row[key])


def delete_link(ctx: RequestContext, account_id: str, link_id: str) -> Response:
    account = ctx.account(account_id)
    acc = int(account["id"])
    row = _link(ctx, acc, link_id)
    if row["upstream_url"]:
        # Removed at the service first (a failure keeps the link, to try again).
        try:
            ctx.storage(account).remove_public_link(str(row["file_id"]), "file")
        except ApiError as exc:
            if exc.status != 404:  # the file is gone upstream: so is its link
                raise
    ctx.store.execute("DELETE FROM links WHERE id = ?", (link_id,))
    return no_content()


_PASSWORD_FORM = """<!doctype html><html><head><meta charset="utf-8"><title>Protected link</title>
</head><body><h1>This link is password protected</h1>{error}
<form method="post"><label for="id_password">Password</label>
<input type="password" name="password" id="id_password" autofocus>
<button type="submit">Open</button></form></body></html>"""

_LANDING = """<!doctype html><html><head><meta charset="utf-8"><title>{name}</title></head>
<body><h1>{name}</h1><p>{size} bytes</p><p><a href="?download=1">Download</a></p></body></html>"""


def public_link(ctx: RequestContext, link_id: str) -> Response:
    row = ctx.store.one("SELECT * FROM links WHERE id = ?", (link_id,))
    if row is None or not row["active"] or _expired(row) or row["upstream_url"]:
        # A link made by the service lives at the service's URL, not here.
        raise not_found("This link does not exist, is inactive or has expired.")
    if row["password_hash"]:
        if ctx.request.method != "POST":
            return content.page(_PASSWORD_FORM.format(error=""))
        password = ctx.form_body().get("password", "")
        if not _check_password(password, str(row["password_hash"])):
            return content.page(_PASSWORD_FORM.format(error="<p>Wrong password.</p>"), 403)
    account = ctx.store.get_account(int(row["account_id"]))
    if account is None:
        raise not_found("This link does not exist.")
    storage = ctx.storage(account)
    download = bool(ctx.request.args.get("download"))
    if not row["direct"] and ctx.request.method == "GET" and not download:
        obj = storage.get(str(row["file_id"]), "file")
        return content.page(_LANDING.format(name=html.escape(obj.name), size=obj.size))
    opened = storage.open_contents(str(row["file_id"]))
    # A direct link opened in a browser shows safe types (images, PDF, text) inline; anything
    # else, and every ?download=1, is an attachment. Nothing runs on this origin either way.
    return send_contents(
        ctx,
        opened.stream,
        opened.size,
        opened.mime_type,
        opened.etag,
        name=opened.name,
        inline=bool(row["direct"]) and not download,
    )


ROUTES = [
    Route(A, ("GET",), list_links),
    Route(A, ("POST",), create_link),
    Route(A + "/<link_id>", ("GET",), get_link),
    Route(A + "/<link_id>", ("PATCH",), patch_link),
    Route(A + "/<link_id>", ("DELETE",), delete_link),
    Route(
        "/l/<link_id>", ("GET", "POST"), public_link, auth=AUTH_NONE, prefix=False, family="public"
    ),
]
