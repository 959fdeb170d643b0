"""Start-up recovery: return what a dead process left "in progress" to a state clients can
continue from, before the server takes requests.

One server process serves a data dir at a time (``kloudless serve`` holds ``serve.lock``), so
at start-up nothing is in progress any more:

* blob journal rows (:mod:`~kloudless.server.connectors.local_storage`) are settled: committed
  blobs move into place, removed ones are deleted (with a remote blob store, puts journalled
  before a commit are settled once they are an hour old: another process may still commit);
* with a file blob store, the time of the start is taken on the store's clock
  (:func:`orphan_cutoff`): an upload writes its blob in place before the commit of its row,
  so a kill in between leaves a blob no row names, and the start-up sweep, in the background
  (:class:`~kloudless.server.sweep.Sweeper`), removes those older than that start; nothing of
  this process, or of one started after it, is older (the store is not listed here, so the
  start takes no longer with more files; a running server's sweeps do the same for blobs
  older than an hour);
* multipart sessions left ``completing`` by an interrupted ``complete`` are ``open`` again
  (complete them again, keep sending parts, or abort them); part folders without a session
  (a crash between the removal's commit and the folder's deletion) are removed;
* tasks left ``PENDING`` are failed with ``task_interrupted`` (their work had not committed:
  a task's change and its result are one unit of work), so polling them ends.

Idempotency keys left ``running`` belong to a process instance that no longer exists; the
idempotency layer takes them over when the request is retried (nothing of the first attempt
committed, see :meth:`~kloudless.server.store.Store.unit_of_work`).

**When one of several processes dies** (``--workers``, or servers over one PostgreSQL) the
others keep serving, so the full recovery above cannot run (it would undo their work in
progress). Tasks and ``completing`` multipart sessions therefore record their *owner*, the
instance (:mod:`~kloudless.server.instances`) that runs them (migration 1104), and what a dead
owner left is taken over, once, by whichever process meets it first:

* a poll of a task whose owner is dead fails it with ``task_interrupted`` at once
  (:func:`fail_orphan_task`);
* a part, ``complete`` or abort of a session a dead owner was completing reopens it first
  (:func:`reopen_orphan_session`), so the retried ``complete`` assembles the file;
* :func:`take_over` does both for every row of a dead owner: at the start of a process that
  shares the database with live ones (a replaced worker) and in every sweep.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time

from .blobs import FileBlobStore, blob_store
from .connectors.local_storage import settle_all
from .errors import ApiError, error_body
from .instances import is_alive
from .settings import Settings
from .store import Store, now_iso, register_migration

log = logging.getLogger("kloudless.server")

__all__ = [
    "INTERRUPTED_TASK",
    "fail_orphan_task",
    "orphan_cutoff",
    "recover",
    "remove_orphan_part_folders",
    "reopen_orphan_session",
    "take_over",
]

# postgres/scale range 1100-1199: who runs a task, who completes a multipart session (an
# instance id; NULL for rows of older versions, which only the full recovery handles).
register_migration(
    1104,
    "ALTER TABLE tasks ADD COLUMN owner TEXT; ALTER TABLE multipart ADD COLUMN owner TEXT",
)

#: The error an interrupted task ends with.
INTERRUPTED_TASK = ApiError(
    500,
    "task_interrupted",
    "The server stopped while this task ran and nothing of it was kept; run the request again.",
)


def remove_orphan_part_folders(store: Store, data_dir: str, older_than: float = 0.0) -> int:
    """Remove ``multipart/<id>`` folders whose session no longer exists.

    :param older_than: only folders not modified for that many seconds (sweeps of a running
        server pass a grace period).
    :returns: the number of folders removed.
    """
    root = os.path.join(data_dir, "multipart")
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    live = {str(r["id"]) for r in store.all("SELECT id FROM multipart")}
    removed = 0
    limit = time.time() - older_than
    for name in names:
        path = os.path.join(root, name)
        with contextlib.suppress(OSError):
            if name not in live and os.lstat(path).st_mtime <= limit:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
    return removed


def _orphaned(store: Store, row: sqlite3.Row) -> bool:
    owner = row["owner"]
    return owner is not None and not is_alive(store, str(owner))


def fail_orphan_task(store: Store, row: sqlite3.Row) -> bool:
    """Fail a ``PENDING`` task whose owner died (nothing of its work committed).

    :param row: the task's row (``id``, ``state``, ``owner``).
    :returns: True if it was failed now (read the row again).
    """
    if row["state"] != "PENDING" or not _orphaned(store, row):
        return False
    body = error_body(INTERRUPTED_TASK, "")
    with store.transaction(standalone=True):
        failed = store.execute(
            "UPDATE tasks SET state = 'FAILURE', result = ?, status_code = ?, modified = ?"
            " WHERE id = ? AND state = 'PENDING' AND owner = ?",
            (json.dumps(body), INTERRUPTED_TASK.status, now_iso(), row["id"], row["owner"]),
        ).rowcount
    if failed:
        log.warning("task %s failed: its server process %s died", row["id"], row["owner"])
    return bool(failed)


def reopen_orphan_session(store: Store, row: sqlite3.Row) -> bool:
    """Reopen a multipart session that a dead owner was completing (its complete never
    committed: the session would exist no more otherwise).

    :param row: the session's row (``id``, ``state``, ``owner``).
    :returns: True if it was reopened now (read the row again).
    """
    if row["state"] != "completing" or not _orphaned(store, row):
        return False
    with store.transaction(standalone=True):
        reopened = store.execute(
            "UPDATE multipart SET state = 'open', owner = NULL, modified = ?"
            " WHERE id = ? AND state = 'completing' AND owner = ?",
            (now_iso(), row["id"], row["owner"]),
        ).rowcount
    if reopened:
        log.warning(
            "multipart upload %s reopened: its server process %s died completing it",
            row["id"],
            row["owner"],
        )
    return bool(reopened)


def take_over(store: Store) -> dict[str, int]:
    """Take over what dead owners left while other processes live: fail their tasks, reopen
    the sessions they were completing.

    :returns: how many tasks and sessions were taken over.
    """
    tasks = store.all(
        "SELECT id, state, owner FROM tasks WHERE state = 'PENDING' AND owner IS NOT NULL"
    )
    sessions = store.all(
        "SELECT id, state, owner FROM multipart WHERE state = 'completing' AND owner IS NOT NULL"
    )
    counts = {
        "tasks": sum(fail_orphan_task(store, row) for row in tasks),
        "multipart": sum(reopen_orphan_session(store, row) for row in sessions),
    }
    return counts


def orphan_cutoff(settings: Settings) -> float | None:
    """The start of a process that starts alone (no other live instance shares the
    database), on the blob store's clock, taken before the process writes any blob: a blob no
    row names that is older than this was left by a process that is gone (nothing of this
    one, or of one started later, is older), so the start-up sweep removes it at once
    instead of after :data:`~kloudless.server.connectors.local_storage.ORPHAN_GRACE_SECONDS`.

    :returns: the time, or None for a remote blob store (whose puts are settled by age only:
        another process may be about to commit).
    """
    blobs = blob_store(settings)
    if blobs.remote or not isinstance(blobs, FileBlobStore):
        return None
    return blobs.clock()


def recover(store: Store, settings: Settings) -> dict[str, int]:
    """Run start-up recovery once (see the module docstring).

    :returns: how many blob journal rows, multipart sessions, part folders and tasks were
        recovered.
    """
    blobs = blob_store(settings)
    counts = {"blobs": settle_all(store, settings.data_dir, blobs)}
    with store.transaction():
        counts["multipart"] = store.execute(
            "UPDATE multipart SET state = 'open', owner = NULL, modified = ?"
            " WHERE state = 'completing'",
            (now_iso(),),
        ).rowcount
    counts["part_folders"] = remove_orphan_part_folders(store, settings.data_dir)
    body = error_body(INTERRUPTED_TASK, "")
    with store.transaction():
        counts["tasks"] = store.execute(
            "UPDATE tasks SET state = 'FAILURE', result = ?, status_code = ?, modified = ?"
            " WHERE state = 'PENDING'",
            (json.dumps(body), INTERRUPTED_TASK.status, now_iso()),
        ).rowcount
    if any(counts.values()):
        log.info("recovered after an interrupted run: %s", counts)
    return counts
