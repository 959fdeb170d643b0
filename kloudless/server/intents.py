"""Intents: what a keyed request is about to do upstream, recorded before it does it.

A change on a remote backend (WebDAV, CalDAV) cannot join the request's database
transaction. So before calling upstream, a connector records its intent (for example the
path it is about to create) under the request's idempotency key, in a transaction of its own.
If the server dies after the upstream change but before the request's answer is stored, the
retry of that request (same key) finds the intent and looks for the object it names instead
of creating a second one. The idempotency layer deletes the intent in the transaction that
stores the answer (not looked for under the keys of accounts whose connector never records
one: ``Connector.records_intents``); intents of keys that never came back expire with them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .store import Store, register_migration

__all__ = ["Intent", "forget_intent"]

register_migration(
    901,
    """
    CREATE TABLE upstream_intents (
        request_key TEXT PRIMARY KEY, account_id INTEGER NOT NULL, op TEXT NOT NULL,
        detail TEXT NOT NULL, created REAL NOT NULL);
    CREATE INDEX upstream_intents_created ON upstream_intents(created)
    """,
)


class Intent:
    """The intent slot of one keyed request (the same on every retry of it).

    :param store: the server's store.
    :param request_key: identifies the request: its idempotency scope and key hash.
    :param account_id: the account the request changes.
    """

    def __init__(self, store: Store, request_key: str, account_id: int) -> None:
        self.store = store
        self.request_key = request_key
        self.account_id = int(account_id)

    def recall(self, op: str) -> dict[str, Any] | None:
        """:returns: what an earlier attempt of this request recorded for ``op``, or None."""
        row = self.store.one(
            "SELECT op, detail FROM upstream_intents WHERE request_key = ? AND account_id = ?",
            (self.request_key, self.account_id),
        )
        if row is None or row["op"] != op:
            return None
        value = json.loads(row["detail"])
        return value if isinstance(value, dict) else None

    def remember(self, op: str, detail: dict[str, Any]) -> None:
        """Record ``detail`` before the upstream call; committed at once (a standalone
        transaction, so call it before the request's first local write)."""
        with self.store.transaction(standalone=True):
            self.store.execute(
                "INSERT OR REPLACE INTO upstream_intents"
                " (request_key, account_id, op, detail, created) VALUES (?, ?, ?, ?, ?)",
                (self.request_key, self.account_id, op, json.dumps(detail), time.time()),
            )


def forget_intent(store: Store, request_key: str) -> None:
    """Delete a request's intent, and those of its parts (``<key>/<n>``: the requests of a
    contacts batch), inside the transaction that stores its answer."""
    store.execute(
        "DELETE FROM upstream_intents WHERE request_key = ? OR substr(request_key, 1, ?) = ?",
        (request_key, len(request_key) + 1, request_key + "/"),
    )


def prune_intents(store: Store, older_than: float) -> int:
    """Delete intents recorded more than ``older_than`` seconds ago. :returns: how many."""
    cur = store.execute(
        "DELETE FROM upstream_intents WHERE created < ?", (time.time() - older_than,)
    )
    return int(cur.rowcount)
