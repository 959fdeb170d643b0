"""Activity events (spec §7): ``events/latest`` and ``events?cursor=&page_size=``."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from werkzeug.wrappers import Response

from ..context import RequestContext
from ..errors import invalid_parameters
from ..params import SQLITE_MAX_INT, parse_int
from ..responses import json_response
from ..routing import Route
from . import calendar
from .contacts import sync_upstream

#: Human-readable action symbols per event type (the ``action`` field).
ACTIONS = {
    "add": "+",
    "delete": "-",
    "update": "M",
    "rename": "R",
    "move": "MV",
    "copy": "C",
    "restore": "RS",
}


def serialize_event(ctx: RequestContext, row: sqlite3.Row) -> dict[str, Any]:
    """:returns: the activity event JSON.

    As in Kloudless v1, the top-level ``id`` is the id of the object the event is about (client
    code finds the event of a deleted file by it), and ``event_id`` is the event's own
    sequence number (the integer its ``href`` and the cursor count in).
    """
    metadata = json.loads(row["metadata"])
    if not ctx.wants_raw and isinstance(metadata, dict):
        metadata.pop("raw", None)
    object_id = row["object_id"]
    if object_id is None and isinstance(metadata, dict):
        object_id = metadata.get("id")
    data: dict[str, Any] = {
        "id": None if object_id is None else str(object_id),
        "event_id": int(row["id"]),
        "api": "events",
        "type": row["type"],
        "action": ACTIONS.get(str(row["type"]), ""),
        "account": int(row["account_id"]),
        **_actor(row),
        "ip": row["ip"],
        "modified": row["modified"],
        "object_id": row["object_id"],
        "metadata": metadata,
        "href": ctx.href(f"accounts/{int(row['account_id'])}/events/{int(row['id'])}"),
    }
    if ctx.wants_raw:
        data["raw"] = {"cursor": int(row["id"])}
    return data


def _actor(row: sqlite3.Row) -> dict[str, Any]:
    """``user_id`` (the team user an admin account acted as) and ``admin_account``."""
    actor = json.loads(row["actor"]) if row["actor"] else {}
    return {"user_id": actor.get("user_id"), "admin_account": actor.get("admin_account")}


def latest(ctx: RequestContext, account_id: str) -> Response:
    accounts = ctx.accounts(account_id)
    return json_response({"cursor": max(ctx.store.latest_cursor(int(a["id"])) for a in accounts)})


def list_events(ctx: RequestContext, account_id: str) -> Response:
    # Cursors are global, increasing ids, so several accounts' logs merge naturally.
    accounts = ctx.accounts(account_id)
    for account in accounts:
        # Contacts changed upstream (CardDAV) become events before the log is read.
        sync_upstream(ctx, account)
        # So do events changed in a cloud calendar (Google syncToken, Graph delta).
        calendar.sync_upstream(ctx, account)
    ids = [int(a["id"]) for a in accounts]
    marks = ",".join("?" * len(ids))
    raw_cursor = ctx.request.args.get("cursor", "0") or "0"
    if raw_cursor == "after-auth":
        raw_cursor = "0"
    try:
        cursor = int(raw_cursor)
    except ValueError:
        raise invalid_parameters("Parameter 'cursor' must be an integer cursor.") from None
    if cursor < 0:
        raise invalid_parameters("Parameter 'cursor' must not be negative.")
    if cursor > SQLITE_MAX_INT:
        raise invalid_parameters("Parameter 'cursor' is too large.")
    # A cursor past the newest event would silently skip the events that come next.
    if cursor > max(ctx.store.latest_cursor(i) for i in ids):
        raise invalid_parameters(
            "Parameter 'cursor' is ahead of the latest event (see events/latest)."
        )
    page_size = parse_int(
        ctx.request.args.get("page_size"),
        "page_size",
        ctx.settings.default_page_size,
        1,
        ctx.settings.max_page_size,
    )
    rows = ctx.store.all(
        f"SELECT * FROM activity WHERE account_id IN ({marks}) AND id > ? ORDER BY id LIMIT ?",
        (*ids, cursor, page_size),
    )
    new_cursor = int(rows[-1]["id"]) if rows else cursor
    left = ctx.store.one(
        f"SELECT COUNT(*) AS n FROM activity WHERE account_id IN ({marks}) AND id > ?",
        (*ids, new_cursor),
    )
    objects = [serialize_event(ctx, r) for r in rows]
    return json_response(
        {
            "api": "events",
            "type": "object_list",
            "objects": objects,
            "count": len(objects),
            "cursor": new_cursor,
            "remaining": int(left["n"]) if left else 0,
        }
    )


def get_event(ctx: RequestContext, account_id: str, event_id: int) -> Response:
    account = ctx.account(account_id)
    row = (
        ctx.store.one(
            "SELECT * FROM activity WHERE account_id = ? AND id = ?", (int(account["id"]), event_id)
        )
        if event_id <= SQLITE_MAX_INT  # larger ints overflow SQLite (and cannot exist)
        else None
    )
    if row is None:
        from ..errors import not_found

        raise not_found(f"Event not found: {event_id}")
    return json_response(serialize_event(ctx, row))


ROUTES = [
    Route("/accounts/<account_id>/events/latest", ("GET",), latest),
    Route("/accounts/<account_id>/events", ("GET",), list_events),
    Route("/accounts/<account_id>/events/<int:event_id>", ("GET",), get_event),
]
