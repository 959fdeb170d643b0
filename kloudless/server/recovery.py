"""Start-up recovery: return what a dead process left "in progress" to a state clients can
continue from, before the server takes requests.

One server process serves a data dir at a time (``kloudless serve`` holds ``serve.lock``), so
at start-up nothing is in progress any more:

* blob journal rows (:mod:`~kloudless.server.connectors.local_storage`) are settled: committed
  blobs move into place, removed ones are deleted (with a remote blob store, puts journalled
  before a commit are settled once they are an hour old: another process may still commit);
* multipart sessions left ``completing`` by an interrupted ``complete`` are ``open`` again
  (complete them again, keep sending parts, or abort them); part folders without a session
  (a crash between the removal's commit and the folder's deletion) are removed;
* tasks left ``PENDING`` are failed with ``task_interrupted`` (their work had not committed:
  a task's change and its result are one unit of work), so polling them ends.

Idempotency keys left ``running`` belong to a process instance that no longer exists; the
idempotency layer takes them over when the request is retried (nothing of the first attempt
committed, see :meth:`~kloudless.server.store.Store.unit_of_work`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time

from .blobs import blob_store
from .connectors.local_storage import settle_all
from .errors import ApiError, error_body
from .settings import Settings
from .store import Store, now_iso

log = logging.getLogger("kloudless.server")

__all__ = ["INTERRUPTED_TASK", "recover", "remove_orphan_part_folders"]

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


def recover(store: Store, settings: Settings) -> dict[str, int]:
    """Run start-up recovery once (see the module docstring).

    :returns: how many blob journal rows, multipart sessions, part folders and tasks were
        recovered.
    """
    counts = {"blobs": settle_all(store, settings.data_dir, blob_store(settings))}
    with store.transaction():
        counts["multipart"] = store.execute(
            "UPDATE multipart SET state = 'open', modified = ? WHERE state = 'completing'",
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
