"""Provider sign-ins in progress: one row per browser sent to a provider's authorization
endpoint by the consent page (table ``provider_flows``, migration 1301).

A row is keyed by the SHA-256 of the OAuth ``state`` sent to the provider, holds the Kloudless
authorization request the consent page showed (to finish it afterwards), the PKCE
``code_verifier`` (sealed), the hash of a random cookie set in the browser that started the
flow (the callback must come from that browser: no login CSRF) and an expiry
(``Settings.oauth_page_ttl``). :func:`claim` consumes a row exactly once, in a transaction
committed at once, before any upstream call; :func:`claim_for_browser` consumes the sign-in a
browser's cookie names (to end it with an error when the callback's ``state`` matches none).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from typing import Any

from .connectors.webdav_auth import seal, unseal
from .store import Store, hash_secret, register_migration

register_migration(
    1301,
    """
    CREATE TABLE provider_flows (
        state_hash TEXT PRIMARY KEY,
        app_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        request TEXT NOT NULL,
        verifier TEXT NOT NULL,
        binding TEXT NOT NULL,
        expires REAL NOT NULL,
        used INTEGER NOT NULL DEFAULT 0
    );
    """,
)


def new_state() -> str:
    """:returns: a fresh unguessable ``state`` value."""
    return secrets.token_urlsafe(32)


def begin(
    store: Store,
    state: str,
    app_id: str,
    provider: str,
    request: dict[str, str],
    verifier: str | None,
    binding: str,
    ttl: float,
) -> None:
    """Record a sign-in sent to ``provider`` (old rows are removed on the way)."""
    now = time.time()
    with store.transaction():
        store.execute("DELETE FROM provider_flows WHERE expires < ?", (now - 3600,))
        store.execute(
            "INSERT INTO provider_flows VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
            (
                hash_secret(state),
                app_id,
                provider,
                json.dumps(request),
                seal(store.server_secret(), verifier) if verifier else "",
                hash_secret(binding),
                now + ttl,
            ),
        )


class Flow:
    """A claimed sign-in."""

    def __init__(self, store: Store, row: sqlite3.Row) -> None:
        self.app_id = str(row["app_id"])
        self.provider = str(row["provider"])
        self.request: dict[str, str] = json.loads(row["request"])
        self.verifier = unseal(store.server_secret(), row["verifier"]) if row["verifier"] else None
        self.expired = float(row["expires"]) < time.time()
        self._binding = str(row["binding"])

    def same_browser(self, cookie: str) -> bool:
        """:returns: whether ``cookie`` is the one set in the browser that began the flow."""
        return bool(cookie) and secrets.compare_digest(hash_secret(cookie), self._binding)


def claim_for_browser(store: Store, cookie: str) -> Flow | None:
    """Consume the newest unused sign-in begun by the browser with ``cookie``.

    :returns: it, or None when that browser has none (or sent no cookie).
    """
    if not cookie or len(cookie) > 200:
        return None
    binding = hash_secret(cookie)
    with store.transaction(standalone=True):
        row: Any = store.one(
            "SELECT * FROM provider_flows WHERE binding = ? AND used = 0"
            " ORDER BY expires DESC LIMIT 1",
            (binding,),
        )
        if row is None:
            return None
        store.execute(
            "UPDATE provider_flows SET used = 1 WHERE state_hash = ?", (row["state_hash"],)
        )
    return Flow(store, row)


def claim(store: Store, state: str) -> Flow | None:
    """Consume the sign-in of ``state``. :returns: it, or None for an unknown or used state."""
    if not state or len(state) > 200:
        return None
    key = hash_secret(state)
    with store.transaction(standalone=True):
        row: Any = store.one("SELECT * FROM provider_flows WHERE state_hash = ?", (key,))
        if row is None or row["used"]:
            return None
        store.execute("UPDATE provider_flows SET used = 1 WHERE state_hash = ?", (key,))
    return Flow(store, row)
