"""The account fields Kloudless clients read and write besides ``account`` and ``active``.

Kloudless v1 accounts carry ``admin`` (an admin account of an organisation, see the Teams
guide), ``enabled`` (the developer's switch, distinct from ``active``, which says whether the
stored credentials still work) and the upstream credentials' ``token_expiry`` and
``refresh_token_expiry``. Migration 600 adds them to the ``accounts`` table; this module parses
them from request bodies and query strings, so that ``POST``/``PATCH /v1/accounts`` and the
``GET /v1/accounts`` filters treat them one way.
"""

from __future__ import annotations

import json
from typing import Any

from .availability import format_utc, parse_datetime
from .errors import invalid_parameters
from .store import register_migration

register_migration(
    600,
    """
    ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE accounts ADD COLUMN token_expiry TEXT;
    ALTER TABLE accounts ADD COLUMN refresh_token_expiry TEXT
    """,
)

#: Boolean account fields (JSON booleans in bodies), stored as 0/1 columns.
BOOLEAN_FIELDS = ("active", "enabled", "admin")
#: Date-time account fields (ISO-8601 or null), stored normalised to UTC ``...Z``.
TIME_FIELDS = ("token_expiry", "refresh_token_expiry")


def parse_expiry(value: Any, name: str) -> str | None:
    """:returns: an expiry time normalised to UTC (``2026-12-01T08:11:16Z``), or None for null.

    :raises ApiError: 400 ``invalid_parameters`` for anything but null or an ISO-8601 string.
    """
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise invalid_parameters(f"'{name}' must be an ISO-8601 date-time or null.")
    try:
        return format_utc(parse_datetime(value))
    except ValueError:
        raise invalid_parameters(f"'{name}' must be an ISO-8601 date-time or null.") from None


def column_changes(body: dict[str, Any]) -> dict[str, Any]:
    """Validate the stored account fields present in a ``POST``/``PATCH`` body.

    :returns: ``{column: value}`` for ``active``, ``enabled``, ``admin``, ``account``,
        ``custom_properties``, ``token_expiry`` and ``refresh_token_expiry`` (only those given).
    :raises ApiError: 400 ``invalid_parameters`` naming the first malformed field.
    """
    changes: dict[str, Any] = {}
    for name in BOOLEAN_FIELDS:
        if name in body:
            if not isinstance(body[name], bool):
                raise invalid_parameters(f"'{name}' must be a boolean.")
            changes[name] = int(body[name])
    if "account" in body:
        name = body["account"]
        if not isinstance(name, str) or not name:
            raise invalid_parameters("'account' must be a non-empty string.")
        if len(name) > 255:
            raise invalid_parameters("'account' is longer than 255 characters.")
        changes["account"] = name
    if "custom_properties" in body:
        if not isinstance(body["custom_properties"], dict):
            raise invalid_parameters("'custom_properties' must be an object.")
        changes["custom_properties"] = json.dumps(body["custom_properties"])
    for name in TIME_FIELDS:
        if name in body:
            changes[name] = parse_expiry(body[name], name)
    return changes


def row_fields(row: Any) -> dict[str, Any]:
    """:returns: the fields of an account row as the account object shows them."""
    return {
        "active": bool(row["active"]),
        "enabled": bool(row["enabled"]),
        "admin": bool(row["admin"]),
        "token_expiry": row["token_expiry"],
        "refresh_token_expiry": row["refresh_token_expiry"],
    }


__all__ = ["BOOLEAN_FIELDS", "TIME_FIELDS", "column_changes", "parse_expiry", "row_fields"]
