"""Bearer-token lookups remembered by a process until the credentials change (SQLite only).

Every request with a Bearer token reads its token and account row (one indexed join,
:meth:`~kloudless.server.store.Store.lookup_token_account`), a statement of its own on every
request. :class:`TokenCache` keeps the rows it found, and gives one back only while nothing
that could change the answer has been written since it was read.

The database says when that is, so no write path can be forgotten: triggers on ``tokens``
and ``accounts`` (insert, update, delete; created whenever a store is opened) call the SQL
function :data:`CHANGED_FUNCTION`, which every connection of the store registers
(:func:`install`). It changes the shared :class:`ChangeSignal`, eight bytes in a file beside
the database that each process maps into memory; a cached row counts only while the signal
is what it was before the row was read. A connection without the function (another program,
an older kloudless) cannot change those tables at all: its statement fails with ``no such
function``, rather than leaving the caches behind; nor can a process that could not map the
signal file (:class:`NoSignal`).

The signal changes twice per write: when a trigger fires (before the commit: rows cached
earlier no longer count) and once the change has committed (:meth:`ChangeSignal.settle`:
rows read meanwhile, from the data before the commit, no longer count either; the app
settles at the end of every request too, for a commit made past the store's own calls). A
process that dies between its commit and its second change could leave such a row behind, as
could a lookup on a connection whose unfinished cursor still holds an older snapshot, so a
row also counts for :data:`MAX_AGE` seconds at most.

Only positive answers are kept (an unknown token is looked up every time), lookups inside a
transaction are not kept (its snapshot may be older than the signal), and PostgreSQL, whose
writers may be on other machines, has no cache.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import threading
import time
from typing import Any

__all__ = [
    "CHANGED_FUNCTION",
    "MAX_AGE",
    "ChangeSignal",
    "NoSignal",
    "TokenCache",
    "install",
    "triggers",
]

#: The SQL function the credential triggers call (registered on every SQLite connection).
CHANGED_FUNCTION = "kloudless_credentials_changed"
#: The longest a remembered row counts, in seconds (the bound should a writer die between its
#: commit and its second signal).
MAX_AGE = 10.0
#: Rows remembered per process; past it the oldest half is forgotten.
MAX_ENTRIES = 4096
_SIGNAL_BYTES = 8


class ChangeSignal:
    """Eight bytes shared by every process using one database: new random bytes on each change
    of the credentials (random, so that no two writers can agree on a value readers have
    seen; a torn write is a change too).

    :param path: the signal file (created with ``mode`` if missing).
    :param mode: its permission bits (the database file's, so that whoever may write the
        database may signal).
    """

    def __init__(self, path: str, mode: int = 0o600) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
        try:
            if os.fstat(fd).st_size < _SIGNAL_BYTES:
                os.ftruncate(fd, _SIGNAL_BYTES)
            self._map = mmap.mmap(fd, _SIGNAL_BYTES)
        finally:
            os.close(fd)
        self._pending = threading.local()

    def read(self) -> bytes:
        """:returns: the current value (compare it, nothing else)."""
        return self._map[:_SIGNAL_BYTES]

    def change(self) -> None:
        """Change the value now (a trigger fired: the change is on its way). This thread's
        next :meth:`settle` changes it again."""
        self._map[:_SIGNAL_BYTES] = os.urandom(_SIGNAL_BYTES)
        self._pending.value = True

    def settle(self) -> None:
        """Change the value again if this thread changed it since its last commit (called after
        every commit and every statement outside a transaction)."""
        if getattr(self._pending, "value", False):
            self._pending.value = False
            self._map[:_SIGNAL_BYTES] = os.urandom(_SIGNAL_BYTES)

    def close(self) -> None:
        """Unmap the file."""
        self._map.close()


class TokenCache:
    """Token rows by token hash, each with the signal value read before it and its time.

    :param signal: the database's :class:`ChangeSignal`.
    :param max_age: see :data:`MAX_AGE`. :param max_entries: see :data:`MAX_ENTRIES`.
    """

    def __init__(
        self, signal: ChangeSignal, max_age: float = MAX_AGE, max_entries: int = MAX_ENTRIES
    ) -> None:
        self.signal = signal
        self.max_age = max_age
        self.max_entries = max_entries
        self._rows: dict[str, tuple[bytes, float, Any]] = {}

    def get(self, key: str) -> Any:
        """:returns: the row remembered for ``key`` if it still counts, else None."""
        entry = self._rows.get(key)
        if entry is None:
            return None
        seen, at, row = entry
        if seen != self.signal.read() or time.monotonic() - at > self.max_age:
            self._rows.pop(key, None)
            return None
        return row

    def put(self, key: str, seen: bytes, row: Any) -> None:
        """Remember ``row``, read after the signal was ``seen``."""
        rows = self._rows
        if len(rows) >= self.max_entries:
            # Dicts keep insertion order: forget the older half (one pass, rarely).
            for old in list(rows)[: len(rows) // 2]:
                rows.pop(old, None)
        rows[key] = (seen, time.monotonic(), row)

    def clear(self) -> None:
        """Forget every row."""
        self._rows.clear()


class NoSignal(Exception):
    """Raised (inside SQLite, which fails the statement) by a credential change in a process
    that could not map the signal file: the change would be hidden from every cache."""


def install(conn: sqlite3.Connection, signal: ChangeSignal | None) -> None:
    """Register :data:`CHANGED_FUNCTION` on a new connection: the triggers call it. Without a
    ``signal`` (the file could not be mapped) the function fails, and so does any change of
    the credentials: other processes could not see it."""

    def changed() -> None:
        if signal is None:
            raise NoSignal("credentials cannot change without the signal file")
        signal.change()

    conn.create_function(CHANGED_FUNCTION, 0, changed)


#: The tables whose rows a cached lookup reads, and every way to change them. Inserts too:
#: ``INSERT OR REPLACE`` deletes the row it replaces without a delete trigger, and a new
#: account may take the id of a token's missing account.
_WATCHED = tuple(
    (table, operation)
    for table in ("tokens", "accounts")
    for operation in ("INSERT", "UPDATE", "DELETE")
)


def triggers(conn: sqlite3.Connection) -> None:
    """Create the credential triggers that are missing (run by every opening of a SQLite
    store: dropped ones come back)."""
    for table, operation in _WATCHED:
        conn.execute(
            f"CREATE TRIGGER IF NOT EXISTS credentials_{table}_{operation.lower()} "
            f"AFTER {operation} ON {table} BEGIN SELECT {CHANGED_FUNCTION}(); END"
        )
