"""The registry of live server processes, so that several processes (``--workers N``, or
servers on several machines over one database) can tell whether the owner of a claim is alive.

Each :class:`~kloudless.server.core.Core` registers one row in ``server_instances`` (its random
id, host name, process id) and refreshes its ``heartbeat`` every :data:`HEARTBEAT_SECONDS` from a
daemon thread; :meth:`Instance.close` removes it. :func:`is_alive` decides for a recorded owner:

* no row: dead (it stopped, or never existed);
* a row of this host: alive while its process exists (``kill(pid, 0)``): a SIGKILLed
  process is known dead at once, so a restart takes over what it left;
* a row of another host: alive while its heartbeat is younger than :data:`LEASE_SECONDS`.

The idempotency layer uses it for ``running`` keys (a repeat on another live process waits for
the first instead of running twice), start-up recovery only runs when no other live instance
shares the database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid

from .store import Store, register_migration

log = logging.getLogger("kloudless.server")

__all__ = ["HEARTBEAT_SECONDS", "LEASE_SECONDS", "Instance", "is_alive", "others_alive"]

#: Seconds between two heartbeats of a live instance.
HEARTBEAT_SECONDS = 5.0
#: An instance on another host whose heartbeat is older than this is dead.
LEASE_SECONDS = 30.0
#: Rows of instances dead for longer than this are removed by the next registration.
FORGET_SECONDS = 24 * 3600.0

# postgres/scale range 1100-1199.
register_migration(
    1100,
    """
    CREATE TABLE server_instances (
        id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
        started REAL NOT NULL, heartbeat REAL NOT NULL)
    """,
)

_HOST = socket.gethostname()


def _pid_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    except OSError:  # pragma: no cover - Windows: no signal 0; trust the heartbeat
        return True
    # A killed process its parent has not reaped yet (a zombie) still answers signal 0.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:  # no /proc (macOS), or it just ended
        return True


def _row_alive(host: str, pid: int, heartbeat: float, now: float) -> bool:
    if host == _HOST and os.name == "posix":
        return _pid_exists(pid)
    return heartbeat > now - LEASE_SECONDS


def is_alive(store: Store, instance_id: str) -> bool:
    """:returns: True if the instance ``instance_id`` is registered and alive (see the module
    docstring)."""
    row = store.one(
        "SELECT host, pid, heartbeat FROM server_instances WHERE id = ?", (instance_id,)
    )
    if row is None:
        return False
    return _row_alive(str(row["host"]), int(row["pid"]), float(row["heartbeat"]), time.time())


def others_alive(store: Store, instance_id: str) -> int:
    """:returns: how many live instances other than ``instance_id`` share the database."""
    now = time.time()
    rows = store.all(
        "SELECT host, pid, heartbeat FROM server_instances WHERE id != ?", (instance_id,)
    )
    return sum(_row_alive(str(r["host"]), int(r["pid"]), float(r["heartbeat"]), now) for r in rows)


class Instance:
    """This process's row in ``server_instances``, kept fresh by a heartbeat thread.

    :param store: the server's store.
    :param heartbeat: seconds between two heartbeats; 0: no heartbeat thread (a process
        that must fork: other processes of this host check its pid instead).
    """

    def __init__(self, store: Store, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.store = store
        #: This process's instance id (recorded as the owner of claims).
        self.id = uuid.uuid4().hex
        self.interval = heartbeat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Other live instances found when this one registered.
        self.others_at_start = 0

    def register(self) -> int:
        """Insert this instance's row (dropping long-dead rows) and start the heartbeat.

        :returns: the number of other live instances at that moment (in the same
            transaction, so of several processes starting at once exactly one sees 0).
        """
        now = time.time()
        with self.store.transaction():
            self.store.execute(
                "DELETE FROM server_instances WHERE heartbeat < ?", (now - FORGET_SECONDS,)
            )
            self.others_at_start = others_alive(self.store, self.id)
            self.store.execute(
                "INSERT INTO server_instances (id, host, pid, started, heartbeat)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.id, _HOST, os.getpid(), now, now),
            )
        if self.interval > 0:
            self._thread = threading.Thread(
                target=self._beat, name="kloudless-heartbeat", daemon=True
            )
            self._thread.start()
        return self.others_at_start

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.store.transaction():
                    self.store.execute(
                        "UPDATE server_instances SET heartbeat = ? WHERE id = ?",
                        (time.time(), self.id),
                    )
            except Exception:  # a busy or closing database: the next beat tries again
                log.debug("instance heartbeat failed", exc_info=True)

    def close(self) -> None:
        """Stop the heartbeat and remove this instance's row (safe to call twice)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with contextlib.suppress(Exception), self.store.transaction():
            self.store.execute("DELETE FROM server_instances WHERE id = ?", (self.id,))
