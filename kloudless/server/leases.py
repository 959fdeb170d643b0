"""Named leases: "one runner at a time" across every process sharing the database.

:func:`acquire` takes the lease ``name`` for ``holder`` for ``seconds`` when it is free (never
taken, expired, or already the holder's) and says whether it did; :func:`release` gives it back
early. Holders are server instance ids (:mod:`kloudless.server.instances`): the lease of a
holder that died is free at once. The check and the take are one write transaction, so of
several processes asking at once exactly one gets it. A sweep holds ``"sweep"`` while it runs,
so one process sweeps at a time in the whole deployment.
"""

from __future__ import annotations

import time

from .instances import is_alive
from .store import Store, register_migration

__all__ = ["acquire", "release"]

register_migration(
    1101,
    "CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until REAL NOT NULL)",
)


def acquire(store: Store, name: str, holder: str, seconds: float) -> bool:
    """Take the lease ``name`` for ``seconds`` if it is free or already ``holder``'s.

    :returns: True if ``holder`` now holds it.
    """
    now = time.time()
    with store.transaction(standalone=True):
        row = store.one("SELECT holder, until FROM leases WHERE name = ?", (name,))
        if (
            row is not None
            and str(row["holder"]) != holder
            and float(row["until"]) > now
            and is_alive(store, str(row["holder"]))
        ):
            return False
        if row is None:
            store.execute(
                "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?)",
                (name, holder, now + seconds),
            )
        else:
            store.execute(
                "UPDATE leases SET holder = ?, until = ? WHERE name = ?",
                (holder, now + seconds, name),
            )
    return True


def release(store: Store, name: str, holder: str) -> None:
    """Give the lease back early (only if ``holder`` still holds it)."""
    with store.transaction(standalone=True):
        store.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
