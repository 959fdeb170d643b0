"""Periodic clean-up of state that would otherwise grow without bound.

:func:`sweep` removes finished tasks older than a day, multipart sessions idle for more than
seven days (with their part files), stale upload temp files (``accounts/<id>/tmp/up-*``,
``cp-*``, contact photos ``ph-*``, and request bodies the HTTP server spooled, ``tmp/body-*``)
older than a day, expired OAuth codes, blob files no row references (journal rows first, then
unmentioned files older than an hour; contact photos no contact names, too) and part folders
without a session (with a remote blob store: S3 multipart uploads without a session, older
than an hour, are aborted); it fails the tasks and reopens the ``completing`` multipart
sessions of a dead process of several (:func:`~kloudless.server.recovery.take_over`).
:class:`Sweeper` runs it at start-up and then opportunistically, at most once per
:data:`INTERVAL` seconds, on the app's background executor (never on a request thread), so it
stops with the server (:meth:`kloudless.server.core.Core.close`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import logging
import os
import shutil
import threading
import time
from concurrent.futures import Executor, Future
from typing import Any, Protocol

from . import leases
from .availability import parse_datetime
from .blobs import blob_store, reclaim_unreferenced
from .connectors.local_contacts import PHOTO_FOLDER, referenced_photos
from .connectors.local_storage import (
    BLOB_FOLDER,
    ORPHAN_GRACE_SECONDS,
    abort_orphan_uploads,
    drop_multipart,
    reclaim_inline_orphans,
    referenced_blobs,
    settle_all,
)
from .recovery import remove_orphan_part_folders, take_over
from .settings import Settings
from .spool import SPOOL_DIR, SPOOL_PREFIX
from .store import Store

log = logging.getLogger("kloudless.server")

#: Seconds between two sweeps.
INTERVAL = 600
TASK_MAX_AGE = dt.timedelta(days=1)
MULTIPART_MAX_IDLE = dt.timedelta(days=7)
TEMP_MAX_AGE = dt.timedelta(days=1)
#: The lease a sweep holds (see :mod:`kloudless.server.leases`), and for how long at most.
SWEEP_LEASE = "sweep"
SWEEP_LEASE_SECONDS = 3600.0


class SweepHost(Protocol):
    """What a sweep needs: the server's settings (data dir), store and background executor
    (a :class:`~kloudless.server.core.Core`)."""

    settings: Settings
    store: Store

    @property
    def executor(self) -> Executor: ...

    @property
    def instance_id(self) -> str: ...


def _older(value: object, limit: dt.datetime) -> bool:
    try:
        return parse_datetime(str(value)) < limit
    except ValueError:
        return True  # unreadable timestamps cannot be from this version: stale


def sweep(
    app: SweepHost, now: dt.datetime | None = None, orphans_before: float | None = None
) -> dict[str, int]:
    """Remove stale state once.

    :param now: the current time (tests pass a later one).
    :param orphans_before: also remove the blobs and contact photos no row names that are
        older than this time of the blob store's clock, whatever the grace (the start-up sweep
        of a process that started alone: :func:`~kloudless.server.recovery.orphan_cutoff`).
    :returns: how many tasks, multipart sessions, temp files and OAuth codes were removed.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    store = app.store
    counts = {
        "tasks": 0,
        "multipart": 0,
        "temp_files": 0,
        "oauth_codes": 0,
        "blobs": 0,
        "part_folders": 0,
    }
    # What a dead process of several left in progress (see recovery.take_over).
    taken = take_over(store)
    counts["orphan_tasks"], counts["orphan_sessions"] = taken["tasks"], taken["multipart"]
    # Journal rows whose after-commit step failed first (before their temp files age out).
    blobs = blob_store(app.settings)
    counts["blobs"] = settle_all(store, app.settings.data_dir, blobs)
    task_limit = now - TASK_MAX_AGE
    for row in store.all("SELECT id, modified FROM tasks WHERE state != 'PENDING'"):
        if _older(row["modified"], task_limit):
            store.execute("DELETE FROM tasks WHERE id = ?", (row["id"],))
            counts["tasks"] += 1
    idle_limit = now - MULTIPART_MAX_IDLE
    # A session still 'completing' after days was left by a crash: stale too.
    for row in store.all("SELECT * FROM multipart"):
        if not _older(row["modified"] or row["created"], idle_limit):
            continue
        with store.transaction():
            removed = store.execute("DELETE FROM multipart WHERE id = ?", (row["id"],)).rowcount
            store.execute("DELETE FROM multipart_parts WHERE session_id = ?", (row["id"],))
        if removed:
            if row["upload_id"]:
                drop_multipart(blobs, row)
            shutil.rmtree(
                os.path.join(app.settings.data_dir, "multipart", str(row["id"])),
                ignore_errors=True,
            )
            counts["multipart"] += 1
    temp_limit = (now - TEMP_MAX_AGE).timestamp()
    pattern = os.path.join(glob.escape(app.settings.data_dir), "accounts", "*", "tmp")
    # Request bodies the HTTP server spooled (data dir tmp/body-*) that a crash left behind.
    temps = ("up-", "cp-", "ph-")
    folders: list[tuple[str, tuple[str, ...]]] = [(f, temps) for f in glob.glob(pattern)]
    folders.append((os.path.join(app.settings.data_dir, SPOOL_DIR), (SPOOL_PREFIX,)))
    for folder, prefixes in folders:
        for prefix in prefixes:
            for path in glob.glob(os.path.join(glob.escape(folder), prefix + "*")):
                with contextlib.suppress(OSError):
                    if os.lstat(path).st_mtime < temp_limit:
                        os.unlink(path)
                        counts["temp_files"] += 1
    counts["oauth_codes"] = store.execute(
        "DELETE FROM oauth_codes WHERE expires < ?", (now.timestamp(),)
    ).rowcount
    # One listing of the store for the files' blobs and the contact photos.
    orphans = {BLOB_FOLDER: referenced_blobs(store), PHOTO_FOLDER: referenced_photos(store)}
    counts["blobs"] += reclaim_unreferenced(
        blobs, orphans, ORPHAN_GRACE_SECONDS, before=orphans_before
    )
    counts["blobs"] += reclaim_inline_orphans(store)

    counts["part_folders"] = remove_orphan_part_folders(
        store, app.settings.data_dir, older_than=ORPHAN_GRACE_SECONDS
    )
    # A remote store's unfinished uploads without a session are its part folders.
    counts["part_folders"] += abort_orphan_uploads(store, blobs)
    return counts


class Sweeper:
    """Runs :func:`sweep` in the background at most once per ``interval`` seconds.

    :param app: the server (its executor runs the sweep).
    :param interval: seconds between sweeps.
    :param orphans_before: the ``orphans_before`` of :func:`sweep` for the first sweep that
        runs (start-up recovery's :func:`~kloudless.server.recovery.orphan_cutoff`); the
        later ones keep to the grace.
    """

    def __init__(
        self, app: SweepHost, interval: float = INTERVAL, orphans_before: float | None = None
    ) -> None:
        self.app = app
        self.interval = interval
        self.orphans_before = orphans_before
        #: The counts of the last sweep that ran to its end (see :func:`sweep`).
        self.last: dict[str, int] = {}
        self._lock = threading.Lock()
        self._next = 0.0  # the first call sweeps (start-up)
        self._future: Future[Any] | None = None

    def maybe_run(self) -> bool:
        """Start a background sweep if one is due. :returns: True if one was started."""
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self.interval
        try:
            self._future = self.app.executor.submit(self._run)
        except RuntimeError:  # the executor is shut down: the app is closing
            return False
        return True

    def wait(self, timeout: float = 30) -> None:
        """Wait for the last started sweep to finish (tests; a server's start-up sweep removes
        what a kill left, in the background)."""
        if self._future is not None:
            self._future.result(timeout=timeout)

    def _run(self) -> None:
        try:
            # One runner at a time in the whole deployment (every process sharing the
            # database); the lease outlives a sweep by far, and a crashed runner's expires.
            holder = self.app.instance_id
            if not leases.acquire(self.app.store, SWEEP_LEASE, holder, SWEEP_LEASE_SECONDS):
                log.info("another server process is sweeping; skipped")
                return
            try:
                counts = sweep(self.app, orphans_before=self.orphans_before)
            finally:
                leases.release(self.app.store, SWEEP_LEASE, holder)
            self.orphans_before = None  # removed: what is older is gone
            self.last = counts
        except Exception:  # never let clean-up break anything; try again next interval
            log.exception("state sweep failed")
            return
        if any(counts.values()):
            log.info("swept stale state: %s", counts)
