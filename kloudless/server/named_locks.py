"""Named locks held across every process sharing the database, for work that must never run
twice at once anywhere (refreshing a provider's rotating refresh token), while the database
itself stays free for everyone else.

:func:`hold` takes the lock ``name`` (waiting at most ``timeout`` seconds) and gives it back
at the end of the block:

* PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection of its own,
  closed at the end, so a process that dies holding it releases it with its connection
  (every machine of a deployment shares the database, so every machine sees the lock);
* SQLite: an exclusive ``flock`` on a file beside the database (``locks/<digest>.lock``):
  SQLite's processes all run on one machine, and the kernel drops the lock of a process that
  dies. Platforms without :mod:`fcntl` get this process's lock only.

Threads of one process first queue on a process-local lock, so only one of them polls the
shared lock. Unlike :mod:`~kloudless.server.leases` (a row in the write transaction), nothing
here takes the database's write lock, so a holder may make slow calls (to a token endpoint)
without blocking the writers of other requests. Take it before the first write of a request
(as with every upstream call): a unit of work that holds the write lock and then waits here
could wait for a holder that needs that write lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from .store import Store

__all__ = ["LockTimeout", "hold"]

#: Seconds between two tries of a lock another process holds.
POLL_SECONDS = 0.05

_LOCAL: dict[tuple[str, str], threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


class LockTimeout(TimeoutError):
    """The lock was not free within the timeout."""


def _local(store: Store, name: str) -> threading.Lock:
    with _LOCAL_GUARD:
        return _LOCAL.setdefault((store.location, name), threading.Lock())


def key_of(name: str) -> int:
    """:returns: the signed 64-bit advisory lock key of ``name`` (PostgreSQL)."""
    digest = hashlib.blake2b(f"kloudless-lock:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def hold(store: Store, name: str, timeout: float) -> Iterator[None]:
    """Hold the lock ``name`` for the block (see the module docstring).

    :param timeout: most seconds to wait for it (for the process-local and the shared lock
        together).
    :raises LockTimeout: it was not free in time.
    """
    deadline = time.monotonic() + timeout
    local = _local(store, name)
    if not local.acquire(timeout=max(0.0, timeout)):
        raise LockTimeout(f"the lock {name!r} stayed busy for {timeout:.0f} s")
    try:
        url = store.database_url
        shared = _hold_postgres(url, name, deadline) if url else _hold_file(store, name, deadline)
        with shared:
            yield
    finally:
        local.release()


def _wait(try_once: Any, name: str, deadline: float) -> None:
    while not try_once():
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockTimeout(f"the lock {name!r} is held by another server process")
        time.sleep(min(POLL_SECONDS, left))


@contextlib.contextmanager
def _hold_postgres(url: str, name: str, deadline: float) -> Iterator[None]:
    import psycopg

    key = key_of(name)
    conn = psycopg.connect(url, autocommit=True, connect_timeout=30)
    try:

        def try_once() -> bool:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            return bool(row and row[0])

        _wait(try_once, name, deadline)
        yield  # closing the connection releases the lock, however the block ends
    finally:
        conn.close()


@contextlib.contextmanager
def _hold_file(store: Store, name: str, deadline: float) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock (Windows): this process's lock only
        yield
        return
    folder = os.path.join(os.path.dirname(os.path.abspath(store.path)), "locks")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    digest = hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
    fd = os.open(os.path.join(folder, f"{digest}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:

        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        _wait(try_once, name, deadline)
        yield  # closing the file releases the lock
    finally:
        os.close(fd)
