"""The server's operator as a Kloudless *developer*, and the developer key of the management API.

Kloudless gave each developer a key (``Authorization: DeveloperKey <key>``) for the management
API: the developer's applications, their API keys and webhooks (``/v1/applications...``,
``/v1/meta/applications...``, ``/v1/meta/developers...``). A self-hosted server has one
developer, its operator, who owns every application on the server; the developer row is
created with the first developer key.

* Developer keys (``dev_...``) are stored as SHA-256 digests only
  (:func:`~kloudless.server.store.hash_secret`): the clear key is returned once by
  :func:`create_key` (``kloudless serve`` prints it on first start as
  ``KLOUDLESS_DEVELOPER_KEY``; ``kloudless developer-key create|rotate`` makes more).
* A developer key reaches the management routes only (``AUTH_DEVELOPER`` and ``AUTH_META`` in
  :mod:`kloudless.server.routing`); never an account's data.

Tables (migration 610, management range 610-649): ``developers`` and ``developer_keys``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .errors import invalid_parameters, not_found
from .store import Store, hash_secret, new_secret, now_iso, register_migration

__all__ = [
    "KEY_PREFIX",
    "create_key",
    "developer_for_key",
    "get_developer",
    "has_key",
    "list_developers",
    "operator",
    "update_developer",
]

#: Every developer key starts with this (the request log redacts it like ``tok_``/``key_``).
KEY_PREFIX = "dev_"
#: The id of the operator's developer row (one developer per server).
OPERATOR_ID = 1
#: Fields ``PATCH meta/developers/{id}`` changes, with their longest length.
FIELDS = {"first_name": 200, "last_name": 200, "email": 320}

register_migration(
    610,
    """
    CREATE TABLE developers (
        id INTEGER PRIMARY KEY, first_name TEXT NOT NULL DEFAULT '',
        last_name TEXT NOT NULL DEFAULT '', email TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL, modified TEXT NOT NULL);
    CREATE TABLE developer_keys (
        key_hash TEXT PRIMARY KEY,
        developer_id INTEGER NOT NULL REFERENCES developers(id) ON DELETE CASCADE,
        created TEXT NOT NULL)
    """,
)


def operator(store: Store) -> sqlite3.Row:
    """:returns: the operator's developer row, created when missing."""
    row = store.one("SELECT * FROM developers WHERE id = ?", (OPERATOR_ID,))
    if row is None:
        now = now_iso()
        with store.transaction():
            store.execute(
                "INSERT INTO developers (id, created, modified) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                (OPERATOR_ID, now, now),
            )
        row = store.one("SELECT * FROM developers WHERE id = ?", (OPERATOR_ID,))
    assert row is not None
    return row


def has_key(store: Store) -> bool:
    """:returns: whether any developer key exists."""
    return store.one("SELECT key_hash FROM developer_keys LIMIT 1") is not None


def create_key(store: Store, *, replace: bool = False) -> str:
    """Create a developer key for the operator.

    :param replace: revoke every existing developer key first (rotation).
    :returns: the key, shown only here (stored hashed).
    """
    key = KEY_PREFIX + new_secret()
    with store.transaction():
        developer = operator(store)
        if replace:
            store.execute("DELETE FROM developer_keys WHERE developer_id = ?", (developer["id"],))
        store.execute(
            "INSERT INTO developer_keys (key_hash, developer_id, created) VALUES (?, ?, ?)",
            (hash_secret(key), developer["id"], now_iso()),
        )
    return key


def developer_for_key(store: Store, key: str) -> int | None:
    """:returns: the id of the developer owning ``key``, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    row = store.one(
        "SELECT developer_id FROM developer_keys WHERE key_hash = ?", (hash_secret(key),)
    )
    return None if row is None else int(row["developer_id"])


def list_developers(store: Store, developer_id: int) -> list[sqlite3.Row]:
    """:returns: the developers a developer key sees: its own."""
    row = store.one("SELECT * FROM developers WHERE id = ?", (developer_id,))
    return [] if row is None else [row]


def get_developer(store: Store, developer_id: int, ref: str) -> sqlite3.Row:
    """:returns: the developer ``ref`` (an id) if it is the caller's own.

    :raises ApiError: 404 otherwise (another developer's id looks like a missing one)."""
    if not (ref.isascii() and ref.isdigit()) or len(ref) > 18 or int(ref) != developer_id:
        raise not_found(f"Developer not found: {ref[:40]}")
    rows = list_developers(store, developer_id)
    if not rows:
        raise not_found(f"Developer not found: {ref[:40]}")
    return rows[0]


def update_developer(store: Store, developer_id: int, changes: dict[str, Any]) -> None:
    """Change ``first_name``, ``last_name`` and ``email`` (other keys are ignored, as
    read-only fields a client sends back are).

    :raises ApiError: 400 ``invalid_parameters`` for a value that is not a short string."""
    updates: dict[str, str] = {}
    for name, longest in FIELDS.items():
        if name not in changes:
            continue
        value = changes[name]
        if not isinstance(value, str) or len(value) > longest:
            raise invalid_parameters(f"'{name}' must be a string of at most {longest} characters.")
        updates[name] = value
    if not updates:
        return
    assignments = ", ".join(f"{name} = ?" for name in updates)  # names from FIELDS only
    store.execute(
        f"UPDATE developers SET {assignments}, modified = ? WHERE id = ?",
        (*updates.values(), now_iso(), developer_id),
    )
