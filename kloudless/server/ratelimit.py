"""Fixed-window rate limits: requests per client and failed authentications per address."""

from __future__ import annotations

import math
import threading
import time

from .errors import too_many_requests

__all__ = ["AuthGuard", "RateLimiter"]


class RateLimiter:
    """Fixed one-minute windows per client key; ``limit`` 0 disables it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}

    def blocked(self, key: str) -> int | None:
        """Like :meth:`check` without counting. :returns: seconds to wait, or None."""
        if self.limit <= 0:
            return None
        with self._lock:
            start, count = self._windows.get(key, (0, 0))
        if count < self.limit:  # the common case reads no clock
            return None
        now = time.time()
        window = int(now // 60)
        if start == window:
            return max(1, math.ceil((window + 1) * 60 - now))
        return None

    def check(self, key: str) -> int | None:
        """:returns: None if allowed, else the seconds to wait (``Retry-After``)."""
        if self.limit <= 0:
            return None
        now = time.time()
        window = int(now // 60)
        with self._lock:
            if len(self._windows) > 10000:
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            if count >= self.limit:
                return max(1, math.ceil((window + 1) * 60 - now))
            self._windows[key] = (start, count + 1)
        return None


class AuthGuard:
    """The brute-force guard: failed authentications counted per client address.

    :param limit: failures per minute before every request of the address gets 429 (0: off).
    """

    def __init__(self, limit: int) -> None:
        self.failures = RateLimiter(limit)

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
