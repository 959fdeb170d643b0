"""Fixed-window rate limits: requests per client and failed authentications per address.

One process counts in memory. Several processes sharing a database (``--workers N``, or
servers over one PostgreSQL) count in it (table ``rate_windows``, migration 1102): give
:class:`RateLimiter` the store, and every process sees the same windows.

Shared counting does not cost a database write per request. Each process keeps what it last
read of a key's window and what it counted since, and writes its count in batches: while much
of the limit is left, once it has counted :data:`BATCH_SHARE` of what is left (at most
:data:`MAX_BATCH`) or :data:`REFRESH_SECONDS` after its last read; near the limit (fewer than
``BATCH_SHARE`` × 2 left), every request, as one exact check-and-count in one transaction.
The trade-off: ``P`` processes can let through at most about ``P × limit / BATCH_SHARE`` more
than the limit in a window before every one of them refuses (none with a limit below
``2 × BATCH_SHARE`` per minute, which is counted exactly). A refusal is never wrong: counts only
grow within a window, so what a process last read is a lower bound.

Checking whether an address is blocked (:meth:`RateLimiter.blocked`, the failed-login guard's
look before every authentication) reads nothing for an address this process has seen no
failure of in the window, except one query a second for the keys others filled up; an address
with failures here is checked against the database every time. So an address blocked by
failures elsewhere may have its requests served here for up to :data:`REFRESH_SECONDS`, and
can make at most one more failed attempt per process (whose count then shows the block).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

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
#: Longest time a process counts on what it read of the shared windows (others' counts).
REFRESH_SECONDS = 1.0
#: A process writes its count once it has counted this share (1/N) of what is left.
BATCH_SHARE = 16
#: ... or this many requests, whichever is fewer.
MAX_BATCH = 64
#: Most keys remembered per process before the ones of past windows are dropped.
_MAX_KEYS = 10000


def _wait(window: int, now: float) -> int:
    return max(1, math.ceil((window + 1) * 60 - now))


@dataclass
class _View:
    """What this process knows of one key's shared window."""

    window: int
    #: The database's count, as last read or written (a lower bound of the true count).
    total: int = 0
    #: Counted here and not written yet.
    pending: int = 0
    #: ``time.monotonic()`` of the last read (-inf: never).
    read_at: float = -math.inf


class RateLimiter:
    """Fixed one-minute windows per client key; ``limit`` 0 disables it.

    :param limit: requests per key and minute.
    :param store: count in this store's ``rate_windows`` (shared by every process using the
        database) instead of in memory; see the module docstring for what that costs.
    :param namespace: prefix of this limiter's keys in the shared table (limiters sharing a
        database must not share keys).
    """

    def __init__(self, limit: int, store: Store | None = None, namespace: str = "") -> None:
        self.limit = limit
        self.store = store
        self.namespace = namespace
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}
        self._pruned = 0.0
        self._views: dict[str, _View] = {}
        #: Keys of this namespace at the limit in ``_full_window``, read at ``_full_read_at``.
        self._full: frozenset[str] = frozenset()
        self._full_window = -1
        self._full_read_at = -math.inf

    def blocked(self, key: str) -> int | None:
        """Like :meth:`check` without counting. :returns: seconds to wait, or None."""
        if self.limit <= 0:
            return None
        if self.store is not None:
            return self._blocked_shared(self.store, self.namespace + key)
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
            return self._check_shared(self.store, self.namespace + key)
        now = time.time()
        window = int(now // 60)
        with self._lock:
            if len(self._windows) > _MAX_KEYS:
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            if count >= self.limit:
                return _wait(window, now)
            self._windows[key] = (start, count + 1)
        return None

    # -- shared windows ----------------------------------------------------------------------
    def _view(self, key: str, window: int) -> _View:
        """:returns: this process's view of ``key`` in ``window`` (call with the lock held)."""
        view = self._views.get(key)
        if view is None or view.window != window:
            if len(self._views) > _MAX_KEYS:
                self._views = {k: v for k, v in self._views.items() if v.window == window}
            view = self._views[key] = _View(window)
        return view

    def _blocked_shared(self, store: Store, key: str) -> int | None:
        now = time.time()
        window = int(now // 60)
        with self._lock:
            view = self._view(key, window)
            known = view.total + view.pending
            pending = view.pending
        if known >= self.limit:
            return _wait(window, now)
        if known > 0:
            # Failures of this key were counted here: look at the database every time.
            row = store.one(
                "SELECT count FROM rate_windows WHERE key = ? AND minute = ?", (key, window)
            )
            total = 0 if row is None else int(row["count"])
            with self._lock:
                view.total = max(view.total, total)
            return _wait(window, now) if total + pending >= self.limit else None
        if key in self._full_keys(store, window):
            return _wait(window, now)
        return None

    def _full_keys(self, store: Store, window: int) -> frozenset[str]:
        """:returns: this namespace's keys at the limit in ``window``, as read at most
        :data:`REFRESH_SECONDS` ago (one query for all of them)."""
        moment = time.monotonic()
        if self._full_window == window and moment - self._full_read_at < REFRESH_SECONDS:
            return self._full
        rows = store.all(
            "SELECT key FROM rate_windows WHERE minute = ? AND count >= ? AND key LIKE ?",
            (window, self.limit, self.namespace + "%"),
        )
        full = frozenset(str(row["key"]) for row in rows)
        with self._lock:
            self._full, self._full_window, self._full_read_at = full, window, moment
        return full

    def _check_shared(self, store: Store, key: str) -> int | None:
        now = time.time()
        window = int(now // 60)
        moment = time.monotonic()
        with self._lock:
            view = self._view(key, window)
            if view.total + view.pending >= self.limit:
                return _wait(window, now)  # a lower bound already at the limit
            view.pending += 1
            left = self.limit - view.total - view.pending
            batch = max(1, min(MAX_BATCH, left // BATCH_SHARE))
            if view.pending < batch and moment - view.read_at < REFRESH_SECONDS:
                return None
            count, view.pending = view.pending, 0
        try:
            total, allowed = self._write(store, key, window, count, now)
        except BaseException:
            with self._lock:
                view.pending += count
            raise
        with self._lock:
            view.total = max(view.total, total)
            view.read_at = moment
        return None if allowed else _wait(window, now)

    def _write(
        self, store: Store, key: str, window: int, count: int, now: float
    ) -> tuple[int, bool]:
        """Add ``count`` requests to the shared window, unless it is full already (then this
        request is refused and nothing is added; the others of the batch were let through).

        :returns: ``(the window's count, whether this request is allowed)``.
        """
        # Its own transaction, committed at once: a refused (or failing) request still counts.
        with store.transaction(standalone=True):
            if now - self._pruned > _PRUNE_SECONDS:
                self._pruned = now
                store.execute("DELETE FROM rate_windows WHERE minute < ?", (window - 1,))
            row = store.one(
                "SELECT count FROM rate_windows WHERE key = ? AND minute = ?", (key, window)
            )
            total = 0 if row is None else int(row["count"])
            if total >= self.limit:
                return total, False
            store.execute(
                "INSERT INTO rate_windows (key, minute, count) VALUES (?, ?, ?)"
                " ON CONFLICT (key, minute) DO UPDATE SET count = rate_windows.count + ?",
                (key, window, count, count),
            )
        return total + count, True


class AuthGuard:
    """The brute-force guard: failed authentications counted per client address.

    :param limit: failures per minute before every request of the address gets 429 (0: off).
    :param store: count in the database (several processes), see :class:`RateLimiter`.
    """

    def __init__(self, limit: int, store: Store | None = None) -> None:
        self.failures = RateLimiter(limit, store, namespace="failed:")

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
