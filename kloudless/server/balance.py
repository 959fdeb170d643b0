"""Spreading connections evenly over the worker processes of ``kloudless serve --workers N``.

The workers accept from one shared listening socket: the kernel wakes every idle worker for a
new connection and the first to call ``accept()`` gets it. Keep-alive clients (the SDK's
sessions, a reverse proxy's pool of upstream connections) then stay with that worker for the
connection's life, so a few early wins leave one worker serving most of the requests while
another idles: 8 connections over 2 workers often split 6/2 or 5/3.

So each worker publishes, in a small block of memory shared by the process tree (made by the
supervisor before it forks, one slot per worker), its number of open connections and when its
I/O loop last ran. A worker with more connections than the least loaded live one leaves a new
connection to that one: it does not accept for up to :data:`DEFER_WAIT` seconds, napping a
millisecond at a time between turns of its loop (its own connections are still served). It
never refuses: if the other does not take the connection by then, it accepts it; a worker
whose loop has not run for :data:`STALE` seconds (stuck, e.g. waiting for a locked database)
is not waited for.

Why not ``SO_REUSEPORT`` (a listening socket per worker): the kernel then picks the socket by a
hash of the client's address and port, which splits a few connections just as unevenly, and
the connections queued on the socket of a worker that dies are reset instead of going to
another worker.
"""

from __future__ import annotations

import mmap
import time

__all__ = ["DEFER_WAIT", "NAP", "STALE", "Balance", "Slot"]

#: Longest time (seconds) a busier worker leaves a pending connection to a less loaded one.
DEFER_WAIT = 0.1
#: The busier worker's nap between two looks at a pending connection (seconds).
NAP = 0.001
#: A worker whose I/O loop has not run for this long (seconds) is not waited for.
STALE = 3.0
#: A pending connection not seen for this long (seconds) was taken: the next one is new.
_GAP = 0.02


class Balance:
    """Open-connection counts and loop times of ``workers`` processes, in memory shared
    across ``fork()``.

    Each slot is written by its own worker only (aligned 4- and 8-byte stores) and read by
    all; a stale read only makes one accept less even, never wrong.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        # An anonymous MAP_SHARED mapping: forked children see one another's writes.
        self._memory = mmap.mmap(-1, 12 * workers)
        self._beats = memoryview(self._memory)[: 8 * workers].cast("d")
        self._counts = memoryview(self._memory)[8 * workers :].cast("i")
        self.workers = workers

    def slot(self, index: int) -> Slot:
        """:returns: worker ``index``'s view, its count reset to 0 and its loop time now."""
        if not 0 <= index < self.workers:
            raise IndexError(f"no worker slot {index}")
        self._counts[index] = 0
        self._beats[index] = time.monotonic()
        return Slot(self, index)

    def counts(self) -> list[int]:
        """:returns: every worker's open connections."""
        return list(self._counts)


class Slot:
    """One worker's place in a :class:`Balance`."""

    def __init__(self, balance: Balance, index: int) -> None:
        self.balance = balance
        self.index = index
        self._since = 0.0  # when this worker first left the pending connection
        self._seen = 0.0  # when it last looked at it
        self._others = -1  # the others' connections then

    def set(self, connections: int) -> None:
        """Publish this worker's number of open connections."""
        self.balance._counts[self.index] = connections

    def beat(self, now: float | None = None) -> None:
        """Publish that this worker's I/O loop runs (call it every turn of the loop)."""
        self.balance._beats[self.index] = time.monotonic() if now is None else now

    def busier(self, now: float | None = None) -> bool:
        """:returns: True when a live worker (loop run within :data:`STALE` seconds) has
        fewer open connections than this one."""
        now = time.monotonic() if now is None else now
        counts, beats = self.balance._counts, self.balance._beats
        mine = counts[self.index]
        return any(
            counts[i] < mine and now - beats[i] < STALE
            for i in range(self.balance.workers)
            if i != self.index
        )

    def defer(self, now: float | None = None) -> bool:
        """Asked when a connection is pending: :returns: True to leave it to a less loaded
        worker for now (look again after a :data:`NAP`), False to accept it. A connection
        is left for at most :data:`DEFER_WAIT` seconds; when another worker's count moves (it
        took one), or the pending connection went unseen for a moment, the wait starts over.
        """
        now = time.monotonic() if now is None else now
        counts = self.balance._counts
        others = sum(counts) - counts[self.index]
        if not self.busier(now):
            self._since = 0.0
            return False
        if others != self._others or now - self._seen > _GAP or not self._since:
            self._since, self._others = now, others
        self._seen = now
        if now - self._since >= DEFER_WAIT:
            self._since = 0.0
            return False
        return True
