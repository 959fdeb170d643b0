"""Fixed-window rate limits: requests per client and failed authentications per address.

One process counts in memory. Several processes sharing a database (``--workers N``, or
servers over one PostgreSQL) count in it (table ``rate_windows``, migration 1102): give
:class:`RateLimiter` the store, and every process sees the same windows.
"""

from __future__ import annotations

import math
import threading
import time

from .errors import too_many_requests
from .store import Store, register_migration

__all__ = ["AuthGuard", "RateLimiter"]

register_migration(
    1102,
    """
    CREATE TABLE rate_windows (
        key TEXT NOT NULL, minute INTEGER NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (key, minute))
    """,
)

#: Least seconds between two removals of old windows from the database.
_PRUNE_SECONDS = 60.0


def _wait(window: int, now: float) -> int:
    return max(1, math.ceil((window + 1) * 60 - now))


class RateLimiter:
    """Fixed one-minute windows per client key; ``limit`` 0 disables it.

    :param limit: requests per key and minute.
    :param store: count in this store's ``rate_windows`` (shared by every process using the
        database) instead of in memory.
    """

    def __init__(self, limit: int, store: Store | None = None) -> None:
        self.limit = limit
        self.store = store
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}
        self._pruned = 0.0

    def blocked(self, key: str) -> int | None:
        """Like :meth:`check` without counting. :returns: seconds to wait, or None."""
        if self.limit <= 0:
            return None
        if self.store is not None:
            now = time.time()
            window = int(now // 60)
            row = self.store.one(
                "SELECT count FROM rate_windows WHERE key = ? AND minute = ?", (key, window)
            )
            return _wait(window, now) if row is not None and row["count"] >= self.limit else None
        with self._lock:
            start, count = self._windows.get(key, (0, 0))
        if count < self.limit:  # the common case reads no clock
            return None
        now = time.time()
        window = int(now // 60)
        if start == window:
            return _wait(window, now)
        return None

    def check(self, key: str) -> int | None:
        """:returns: None if allowed, else the seconds to wait (``Retry-After``)."""
        if self.limit <= 0:
            return None
        if self.store is not None:
            return self._check_shared(self.store, key)
        now = time.time()
        window = int(now // 60)
        with self._lock:
            if len(self._windows) > 10000:
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            if count >= self.limit:
                return _wait(window, now)
            self._windows[key] = (start, count + 1)
        return None

    def _check_shared(self, store: Store, key: str) -> int | None:
        now = time.time()
        window = int(now // 60)
        # Its own transaction, committed at once: a refused (or failing) request still counts.
        with store.transaction(standalone=True):
            if now - self._pruned > _PRUNE_SECONDS:
                self._pruned = now
                store.execute("DELETE FROM rate_windows WHERE minute < ?", (window - 1,))
            row = store.one(
                "SELECT count FROM rate_windows WHERE key = ? AND minute = ?", (key, window)
            )
            if row is not None and row["count"] >= self.limit:
                return _wait(window, now)
            store.execute(
                "INSERT INTO rate_windows (key, minute, count) VALUES (?, ?, 1)"
                " ON CONFLICT (key, minute) DO UPDATE SET count = rate_windows.count + 1",
                (key, window),
            )
        return None


class AuthGuard:
    """The brute-force guard: failed authentications counted per client address.

    :param limit: failures per minute before every request of the address gets 429 (0: off).
    :param store: count in the database (several processes), see :class:`RateLimiter`.
    """

    def __init__(self, limit: int, store: Store | None = None) -> None:
        self.failures = RateLimiter(limit, store)

    def check(self, address: str | None) -> None:
        """Refuse an address with too many recent failures, before looking at its credentials.

        :raises ApiError: 429 ``too_many_requests`` with ``Retry-After``.
        """
        wait = self.failures.blocked(f"addr:{address}")
        if wait is not None:
            raise too_many_requests("failed authentications", wait)

    def note_failure(self, address: str | None) -> None:
        """Count one failed authentication of ``address``."""
        self.failures.check(f"addr:{address}")
