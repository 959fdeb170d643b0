"""Storage for ``local`` accounts: bytes in a folder on disk, the tree in SQLite.

Layout: ``<data_dir>/accounts/<account_id>/blobs/<blob>`` holds file contents under random
blob names; ``.../tmp`` receives uploads. The folder tree (names, parents, sizes) lives in the
``objects`` table, so ids are random, URL-safe and stable across rename and move, disk paths
never depend on user-supplied names, and nothing can be read or written outside the account's
folder (blob names are ours, and symlinks are refused with ``O_NOFOLLOW``).

Writes go to a temp file, are fsync'ed and renamed into place before the database row points at
them, so a dropped upload leaves nothing visible. Name checks and tree changes of one account
run under a per-account lock inside one SQLite transaction; a unique index on
``(account_id, parent_id, name)`` guards against other processes. Deleting a folder removes
its whole subtree in one transaction.

Deletes are always permanent: ``local`` has no trash API (nothing could list, restore or
purge trashed objects), so ``permanent=false`` is accepted but rows and blobs are removed
either way (blobs after the transaction commits). Rows with ``trashed = 1`` left by older
versions stay invisible.

Small files (at most ``Settings.inline_file_bytes``) keep their bytes in the database instead
(table ``inline_blobs``, their blob names beginning with :data:`INLINE_PREFIX`), inserted in the
transaction that writes their row: one commit makes such an upload durable, where a blob costs a
data sync and a folder sync before it. Releasing, copying and deleting them are statements of
the change's own transaction.

Activity events are appended through the account's activity recorder inside the transaction of
the change they describe. Copies read the source subtree and hard-link its blobs into temp files
(``tmp/cp-*``; blobs are immutable, so a link is a snapshot of the bytes) in the transaction
that inserts the copies: a consistent snapshot however the source changes meanwhile, and no
byte copy under the write lock (a filesystem without hard links gets copies, fsync'ed).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import mimetypes
import os
import secrets
import shutil
import sqlite3
import stat
import time
from collections.abc import Iterator
from typing import IO, Any, Callable, cast

from .. import quota
from ..activity import ActivityRecorder
from ..availability import parse_datetime
from ..blobs import BlobStore, FileBlobStore, ReferencedNames, reclaim_unreferenced
from ..diskspace import insufficient_storage, is_disk_full
from ..errors import (
    ApiError,
    forbidden,
    invalid_parameters,
    naming_conflict,
    not_found,
    too_large,
)
from ..spool import (
    Prefixed,
    fsync_dir,
    read_at_most,
    read_digest,
    remove_quietly,
    spool_to_path,
    spool_to_temp,
    spooled_body,
)
from ..store import Store, now_iso, register_migration
from .base import (
    READ_WRITE_CAPABILITIES,
    FileContents,
    StorageBackend,
    StorageObject,
    validate_name,
)

log = logging.getLogger("kloudless.server")

MAX_DEPTH = 1000
#: The columns of an object's row sent as its ``raw`` record (``X-Kloudless-Raw-Data``).
_RAW_COLUMNS = (
    "id",
    "parent_id",
    "name",
    "kind",
    "size",
    "mime_type",
    "etag",
    "created",
    "modified",
)
#: The columns a page of a folder's children reads: :data:`_RAW_COLUMNS` but the parent's id,
#: which is the folder's (one column less of 1000 rows).
_PAGE_COLUMNS = tuple(c for c in _RAW_COLUMNS if c != "parent_id")
ROOT = "root"

#: The blob journal (migration 900). A row ``(blob, temp)`` says: the bytes of ``blob`` wait at
#: ``temp`` and move into the blob store once the row that references them is committed; a row
#: ``(blob, NULL)`` says: no row references ``blob`` any more, remove it. Journal rows commit
#: with the change; :func:`settle` acts on them after the commit, and again at start-up and in
#: sweeps for those a crash left, so the store only ever holds blobs committed rows reference.
register_migration(
    900,
    """
    CREATE TABLE blob_journal (
        account_id INTEGER NOT NULL, blob TEXT NOT NULL, temp TEXT,
        size INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL,
        PRIMARY KEY (account_id, blob))
    """,
)
#: Remote blob stores (S3, migration 1200): a ``blob_puts`` row says: ``blob`` is being put into
#: the store *before* the commit of the row that will reference it (another machine must find
#: it as soon as that row is visible). It is committed on its own before the put and deleted in
#: the transaction that inserts the referencing row; one that stays (the request failed or its
#: process died) is settled by removing the blob unless something references it.
register_migration(
    1200,
    """
    CREATE TABLE blob_puts (
        account_id INTEGER NOT NULL, blob TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0,
        created TEXT NOT NULL, PRIMARY KEY (account_id, blob))
    """,
)
#: Multipart sessions of remote blob stores (migration 1201): the session's blob and its S3
#: multipart upload id; each part's etag (S3 needs them to assemble the object).
register_migration(
    1201,
    """
    ALTER TABLE multipart ADD COLUMN blob TEXT;
    ALTER TABLE multipart ADD COLUMN upload_id TEXT;
    ALTER TABLE multipart_parts ADD COLUMN etag TEXT;
    """,
)


def order_key(kind: str, name: str, object_id: str) -> str:
    """:returns: the ``objects.sort_key`` of a row: folders first, then by lower-cased name,
    then by id, as one string whose plain (binary, code point) order is that order. Names
    hold no control characters (:func:`validate_name`), so the ``\\x01`` separator sorts a
    name before every longer name it begins."""
    return ("0" if kind == "folder" else "1") + name.lower() + "\x01" + object_id


def _add_sort_keys(conn: sqlite3.Connection) -> None:
    """Migration 1400: ``objects.sort_key`` (:func:`order_key`) and an index on it, so that a
    page of a folder is one indexed ``ORDER BY ... LIMIT/OFFSET`` read instead of fetching and
    sorting every child in Python. PostgreSQL compares it bytewise (``COLLATE "C"``, UTF-8: the
    code point order SQLite's binary comparison gives), not by the database's locale."""
    collate = "" if isinstance(conn, sqlite3.Connection) else ' COLLATE "C"'
    conn.execute(f"ALTER TABLE objects ADD COLUMN sort_key TEXT{collate}")
    rows = conn.execute("SELECT id, kind, name FROM objects").fetchall()
    conn.executemany(
        "UPDATE objects SET sort_key = ? WHERE id = ?",
        [(order_key(str(r[1]), str(r[2]), str(r[0])), r[0]) for r in rows],
    )
    conn.execute(
        "CREATE INDEX objects_order ON objects(account_id, parent_id, sort_key) WHERE trashed = 0"
    )


register_migration(1400, _add_sort_keys)

#: Least age of an unreferenced, unjournaled blob before the sweep removes it (older versions
#: renamed blobs into place before their commit; a remote put whose journal row could not be
#: written first), and of a ``blob_puts`` row before a sweep of another process may settle it
#: (its request may still be about to commit).
ORPHAN_GRACE_SECONDS = 3600.0
#: The blob store folder of an account's file blobs (``accounts/<id>/blobs/``).
BLOB_FOLDER = "blobs"
#: How the blob names of files whose bytes are in the database (``inline_blobs``) begin; no
#: such blob is ever in the blob store (the names of those are hex digits only).
INLINE_PREFIX = "in-"
#: The row of a file and, when they are in the database, its bytes (``inline_data``): what
#: a download reads, in one statement.
_CONTENTS_ROW = (
    "SELECT o.*, i.data AS inline_data FROM objects o LEFT JOIN inline_blobs i"
    " ON i.account_id = o.account_id AND i.blob = o.blob"
    " WHERE o.id = ? AND o.account_id = ? AND o.trashed = 0"
)


def is_inline(blob: object) -> bool:
    """:returns: whether a file's blob name is that of bytes kept in the database."""
    return isinstance(blob, str) and blob.startswith(INLINE_PREFIX)


def open_inline_contents(store: Store, account_id: int, file_id: str) -> FileContents | None:
    """The contents of a file whose bytes are kept in the database, read with its row in one
    statement, as :meth:`LocalStorage.open_contents` opens them; a read opens no file and
    needs no :class:`LocalStorage`. :returns: None for anything else (no such file, a folder,
    bytes in the blob store), which ``open_contents`` then answers."""
    row = store.one(_CONTENTS_ROW, (file_id, account_id))
    if row is None or row["kind"] != "file" or not is_inline(row["blob"]):
        return None
    data = row["inline_data"]
    if data is None:
        return None  # open_contents reports it
    return _file_contents(row, io.BytesIO(bytes(data)))


def _file_contents(row: sqlite3.Row, reader: IO[bytes]) -> FileContents:
    """:returns: the download of the file row ``row`` (of :data:`_CONTENTS_ROW`), read by
    ``reader``."""
    return FileContents(
        reader,
        int(row["size"] or 0),
        str(row["mime_type"] or "application/octet-stream"),
        row["etag"],
        row["modified"],
        str(row["name"]),
    )


#: The account folder chains this process has checked level by level and created. Once
#: there, a storage object checks only the folders it uses (one ``lstat`` each: still real
#: folders, not symlinks) instead of an ``lstat``, a ``stat`` and a ``mkdir`` of every level
#: on every request: the blob folder of a file store when it is made, its temp folder when
#: first written into (reads never are); anything else found there sends it through the full
#: check again.
_CHECKED: set[tuple[str, ...]] = set()


def _real_folders(paths: tuple[str, ...]) -> bool:
    """:returns: True when every path is a folder itself (not a symlink, not missing)."""
    for path in paths:
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return False
        except OSError:
            return False
    return True


@functools.lru_cache(maxsize=4096)
def _layout(
    data_dir: str, account_id: int, blob_store: BlobStore
) -> tuple[str, str, str | None, tuple[str, ...]]:
    """The folders of an account (computed once per process and blob store, they are used by
    every request):

    :returns: ``(account folder, its tmp folder, the blob folder in a file blob store or None,
        every level to check from the top)``.
    """
    # A blob's path in a file blob store (None for a remote store).
    local_blob = blob_store.local_path(blob_key(account_id, "x"))
    base = account_dir(data_dir, account_id)
    tmp = os.path.join(base, "tmp")
    folders = [os.path.dirname(base), base, tmp]
    blobs = None
    if local_blob is not None:  # a file store: its account folder is checked the same way
        blobs = os.path.dirname(local_blob)
        account_blobs = os.path.dirname(blobs)
        folders += [os.path.dirname(account_blobs), account_blobs, blobs]
    return base, tmp, blobs, tuple(dict.fromkeys(folders))


def account_dir(data_dir: str, account_id: int) -> str:
    """:returns: the account's folder on disk."""
    return os.path.join(data_dir, "accounts", str(int(account_id)))


def blob_key(account_id: int, blob: str) -> str:
    """:returns: the blob store key of an account's blob."""
    if not blob or "/" in blob or "\\" in blob or blob.startswith("."):
        raise ApiError(500, "internal_error", "Corrupt blob reference.")
    return f"accounts/{int(account_id)}/{BLOB_FOLDER}/{blob}"


def _referenced(store: Store, account_id: int, blob: str) -> bool:
    if store.one("SELECT 1 FROM objects WHERE account_id = ? AND blob = ?", (account_id, blob)):
        return True
    # A remote multipart upload assembles straight into its session's blob.
    return (
        store.one("SELECT 1 FROM multipart WHERE account_id = ? AND blob = ?", (account_id, blob))
        is not None
    )


def settle(
    store: Store,
    blobs: BlobStore,
    data_dir: str,
    account_id: int,
    names: list[str] | None = None,
) -> int:
    """Act on an account's blob journal rows (those of ``names``, or all): move committed
    blobs into the store, remove blobs no row references. Safe to repeat and to run
    concurrently: it only acts on committed state. A row whose blob store step fails stays
    (the next sweep retries).

    :returns: the number of journal rows settled.
    """
    base = account_dir(data_dir, account_id)
    if names is None:
        rows = store.all("SELECT * FROM blob_journal WHERE account_id = ?", (account_id,))
    else:
        rows = []
        for blob in names:
            row = store.one(
                "SELECT * FROM blob_journal WHERE account_id = ? AND blob = ?", (account_id, blob)
            )
            if row is not None:
                rows.append(row)
    settled = 0
    for row in rows:
        blob = str(row["blob"])
        key = blob_key(account_id, blob)
        referenced = _referenced(store, account_id, blob)
        temp = None if row["temp"] is None else os.path.join(base, str(row["temp"]))
        try:
            if temp and referenced and os.path.exists(temp):
                blobs.put_file(key, temp)
                remove_quietly(temp)
            elif temp:
                remove_quietly(temp)
            elif not referenced:
                blobs.delete(key)
        except OSError as exc:
            log.warning("blob %s of account %s not settled yet: %s", blob, account_id, exc)
            continue
        store.execute(
            "DELETE FROM blob_journal WHERE account_id = ? AND blob = ? AND temp IS ?",
            (account_id, blob, row["temp"]),
        )
        settled += 1
    return settled


def settle_puts(store: Store, blobs: BlobStore, grace: float = ORPHAN_GRACE_SECONDS) -> int:
    """Settle ``blob_puts`` rows older than ``grace`` seconds (younger ones may belong to a
    request about to commit, in any process): drop the row when a row references the blob,
    else remove the blob first.

    :returns: the number of rows settled.
    """
    settled = 0
    for row in store.all("SELECT * FROM blob_puts"):
        if not _older_than(row["created"], grace):
            continue
        account_id, blob = int(row["account_id"]), str(row["blob"])
        try:
            if not _referenced(store, account_id, blob):
                blobs.delete(blob_key(account_id, blob))
        except OSError as exc:
            log.warning("blob put %s of account %s not settled yet: %s", blob, account_id, exc)
            continue
        store.execute("DELETE FROM blob_puts WHERE account_id = ? AND blob = ?", (account_id, blob))
        settled += 1
    return settled


def _older_than(created: object, seconds: float) -> bool:
    if seconds <= 0:
        return True
    try:
        when = parse_datetime(str(created)).timestamp()
    except ValueError:
        return True
    return when < time.time() - seconds


def settle_all(
    store: Store, data_dir: str, blobs: BlobStore | None = None, put_grace: float | None = None
) -> int:
    """Settle the blob journal of every account (start-up recovery, sweeps).

    :param blobs: the blob store (default: files in the data dir).
    :param put_grace: see :func:`settle_puts` (default: :data:`ORPHAN_GRACE_SECONDS`).
    :returns: the number of journal rows settled.
    """
    blobs = blobs or FileBlobStore(data_dir)
    grace = ORPHAN_GRACE_SECONDS if put_grace is None else put_grace
    accounts = store.all("SELECT DISTINCT account_id FROM blob_journal")
    settled = sum(settle(store, blobs, data_dir, int(r["account_id"])) for r in accounts)
    return settled + settle_puts(store, blobs, grace)


def reclaim_orphans(
    store: Store,
    data_dir: str,
    grace: float = ORPHAN_GRACE_SECONDS,
    blobs: BlobStore | None = None,
) -> int:
    """Remove blobs (``accounts/<id>/blobs/<blob>`` in the store) that no row references and
    no journal row mentions, once older than ``grace`` seconds (left by versions that renamed
    blobs into place before their commit, by a remote put whose process died before it could
    journal, or by hand).

    :returns: the number of blobs removed.
    """
    return reclaim_unreferenced(
        blobs or FileBlobStore(data_dir), {BLOB_FOLDER: referenced_blobs(store)}, grace
    )


def reclaim_inline_orphans(store: Store) -> int:
    """Delete the bytes of inline blobs no file row names. This version writes, releases and
    copies them with the rows in one transaction, so none is left by it; a process of an older
    version (a rolling upgrade that kept ``--inline-file-bytes`` on, see the deployment guide)
    releases such a file's blob as if it were in the blob store, and leaves its bytes. One
    listing of each table, then each candidate checked again in a transaction of its own.

    :returns: how many were deleted.
    """
    named = {
        (int(r["account_id"]), str(r["blob"]))
        for r in store.all(
            "SELECT account_id, blob FROM objects WHERE blob LIKE ?", (INLINE_PREFIX + "%",)
        )
    }
    stale = [
        key
        for r in store.all("SELECT account_id, blob FROM inline_blobs")
        if (key := (int(r["account_id"]), str(r["blob"]))) not in named
    ]
    removed = 0
    for account_id, blob in stale:
        with store.transaction():
            if not _referenced(store, account_id, blob):  # committed since the listing
                removed += store.execute(
                    "DELETE FROM inline_blobs WHERE account_id = ? AND blob = ?",
                    (account_id, blob),
                ).rowcount
    return removed


def referenced_blobs(store: Store) -> ReferencedNames:
    """:returns: the blob names of an account that rows, journal rows and multipart sessions
    still need (for :func:`~kloudless.server.blobs.reclaim_unreferenced`)."""

    def referenced(account_id: int) -> set[str]:
        return {
            str(r["blob"])
            for r in store.all(
                "SELECT blob FROM objects WHERE account_id = ? AND blob IS NOT NULL"
                " UNION SELECT blob FROM blob_journal WHERE account_id = ?"
                " UNION SELECT blob FROM blob_puts WHERE account_id = ?"
                " UNION SELECT blob FROM multipart WHERE account_id = ?"
                " AND blob IS NOT NULL",
                (account_id, account_id, account_id, account_id),
            )
        }

    return referenced


def drop_multipart(blobs: BlobStore, session: sqlite3.Row) -> None:
    """Abort a removed remote multipart session's upload and remove its blob (assembled by a
    complete that did not commit). Failures are left to the sweep
    (:func:`reclaim_orphans`, :func:`abort_orphan_uploads`)."""
    key = blob_key(int(session["account_id"]), str(session["blob"]))
    try:
        blobs.multipart_abort(key, str(session["upload_id"]))
        blobs.delete(key)
    except OSError as exc:
        log.warning(
            "dropping multipart upload %s failed (the sweep retries): %s", session["id"], exc
        )


def abort_orphan_uploads(
    store: Store, blobs: BlobStore, grace: float = ORPHAN_GRACE_SECONDS
) -> int:
    """Abort the remote store's unfinished multipart uploads under ``accounts/`` that no
    session names, once older than ``grace`` seconds (a process died between starting one and
    committing its session, or between a session's removal and the abort).

    :returns: the number aborted.
    """
    if not blobs.remote:
        return 0
    aborted = 0
    limit = time.time() - grace
    try:
        for key, upload_id, started in list(blobs.multipart_list("accounts/")):
            if started >= limit:
                continue
            parts = key.split("/")
            journalled = (
                len(parts) == 4
                and parts[1].isdigit()
                and store.one(
                    "SELECT 1 FROM blob_puts WHERE account_id = ? AND blob = ?",
                    (int(parts[1]), parts[3]),
                )
            )
            if journalled:  # a session about to commit, or settle_puts's to clean up
                continue
            if store.one("SELECT 1 FROM multipart WHERE upload_id = ?", (upload_id,)) is None:
                blobs.multipart_abort(key, upload_id)
                aborted += 1
    except OSError as exc:
        log.warning("orphan multipart upload sweep stopped: %s", exc)
    return aborted


def _link_or_copy(source: str, dest: str) -> None:
    """Hard-link ``source`` as ``dest``, or copy it (fsync'ed) where the filesystem has no
    hard links. :raises FileNotFoundError: when ``source`` is gone."""
    try:
        os.link(source, dest)
    except FileNotFoundError:
        raise
    except OSError:  # EXDEV, EPERM, ENOTSUP...: no hard links here
        shutil.copyfile(source, dest)
        with open(dest, "rb") as copied:
            os.fsync(copied.fileno())


def split_name(name: str) -> tuple[str, str]:
    """Split ``report.tar.gz``-style names into a stem and an extension for auto-renaming."""
    stem, ext = os.path.splitext(name)
    if not stem:
        return name, ""
    return stem, ext


class LocalStorage(StorageBackend):
    """:class:`StorageBackend` of one ``local`` account.

    :param store: the server store. :param data_dir: the server data dir.
    :param account_id: the account.
    :param activity: records each change inside its transaction (None: changes unrecorded,
        for tools and benchmarks that use the backend directly).
    """

    capabilities = dict.fromkeys((*READ_WRITE_CAPABILITIES, "can_delete_file_permanently"), True)

    def __init__(
        self,
        store: Store,
        data_dir: str,
        account_id: int,
        activity: ActivityRecorder | None = None,
        quota_limit: int | None | Callable[[], int | None] = None,
        blobs: BlobStore | None = None,
        inline_bytes: int = 0,
    ) -> None:
        self.store = store
        #: Files of at most this many bytes keep them in the database (0: none; the connector
        #: passes ``Settings.inline_file_bytes``).
        self.inline_bytes = inline_bytes
        #: The bytes of new inline blobs, from :meth:`_write_blob` until :meth:`_adopt_blob`
        #: inserts them with their row.
        self._inline: dict[str, bytes] = {}
        self._quota_limit = quota_limit
        self.account_id = int(account_id)
        self.activity = activity
        self.data_dir = data_dir
        #: Where the file contents are (default: files in the data dir).
        self.blob_store = blobs if blobs is not None else FileBlobStore(data_dir)
        self.base, self._tmp, blobs_dir, self._levels = _layout(
            data_dir, self.account_id, self.blob_store
        )
        self._tmp_checked = False
        if blobs_dir is not None:
            self.blobs = blobs_dir
        if self._levels not in _CHECKED or (
            blobs_dir is not None and not _real_folders((blobs_dir,))
        ):
            self._check_levels()
        #: Ancestor chains by parent id, used only while building one listing.
        self._chains: dict[str, list[tuple[str, str]]] | None = None

    def _check_levels(self) -> None:
        """Check each level of the account's folders for a planted symlink *before* creating
        anything below it, so that nothing is ever created outside the data dir.

        :raises ApiError: 500 for a symlink.
        """
        for path in self._levels:
            if os.path.islink(path):
                raise ApiError(500, "internal_error", "The account folder may not be a symlink.")
            os.makedirs(path, exist_ok=True)
        _CHECKED.add(self._levels)
        self._tmp_checked = True

    @property
    def tmp(self) -> str:
        """The account's temp folder, checked (still a real folder) when first asked for."""
        if not self._tmp_checked and not _real_folders((self._tmp,)):
            self._check_levels()
        self._tmp_checked = True
        return self._tmp

    @property
    def quota_limit(self) -> int | None:
        """The account's storage quota in bytes (None: unlimited; see :mod:`..quota`), looked
        up when first needed (reads never need it)."""
        limit = self._quota_limit
        if callable(limit):
            limit = self._quota_limit = limit()
        return limit

    # -- rows ----------------------------------------------------------------------------------
    def _row(self, object_id: str, kind: str | None) -> sqlite3.Row:
        row = self.store.one(
            "SELECT * FROM objects WHERE id = ? AND account_id = ? AND trashed = 0",
            (object_id, self.account_id),
        )
        if row is None or (kind is not None and row["kind"] != kind):
            label = (kind or "object").capitalize()
            raise not_found(f"{label} not found: {object_id[:100]}")
        return row

    def _folder_row(self, folder_id: str, what: str = "parent_id") -> sqlite3.Row | None:
        """:returns: the folder row (None for root). :raises ApiError: 400 for a bad parent."""
        if folder_id == ROOT:
            return None
        if not isinstance(folder_id, str):
            raise ApiError(400, "invalid_parent_folder", f"'{what}' must be a folder id.")
        row = self.store.one(
            "SELECT * FROM objects WHERE id = ? AND account_id = ? AND trashed = 0",
            (folder_id, self.account_id),
        )
        if row is None or row["kind"] != "folder":
            raise ApiError(
                400, "invalid_parent_folder", f"Invalid parent folder: {str(folder_id)[:100]}"
            )
        return row

    def _ancestors(self, parent_id: str) -> list[tuple[str, str]]:
        if self._chains is not None:
            cached = self._chains.get(parent_id)
            if cached is None:
                cached = self._chains[parent_id] = self._walk_up(parent_id)
            return list(cached)
        return self._walk_up(parent_id)

    def _objects(self, rows: list[sqlite3.Row]) -> list[StorageObject]:
        """Build many objects, sharing ancestor lookups between siblings."""
        self._chains = {}
        try:
            return [self._object(r) for r in rows]
        finally:
            self._chains = None

    def _walk_up(self, parent_id: str, first: sqlite3.Row | None = None) -> list[tuple[str, str]]:
        """:returns: the ``(id, name)`` chain from the root down to ``parent_id``.

        :param first: ``parent_id``'s row when the caller has just read it (not read again).
        """
        chain: list[tuple[str, str]] = []
        current = parent_id
        for _ in range(MAX_DEPTH):
            if current == ROOT:
                break
            if first is not None and first["id"] == current:
                row: sqlite3.Row | None = first
            else:
                row = self.store.one(
                    "SELECT id, name, parent_id FROM objects WHERE id = ?", (current,)
                )
            if row is None:
                break
            chain.append((str(row["id"]), str(row["name"])))
            current = str(row["parent_id"])
        chain.append((ROOT, ""))
        chain.reverse()
        return chain

    def _object(self, row: sqlite3.Row) -> StorageObject:
        # Each column read from the row once (by name), the rest from the dict: a listing
        # builds 1000 of these per page.
        return self._object_of({k: row[k] for k in _RAW_COLUMNS})

    def _object_of(
        self, raw: dict[str, Any], ancestors: list[tuple[str, str]] | None = None
    ) -> StorageObject:
        """:returns: the object of a row's :data:`_RAW_COLUMNS` (its ``raw`` record).

        :param ancestors: its parent's chain (:meth:`_walk_up`), when the caller has it.
        """
        kind = raw["kind"]
        parent_id = str(raw["parent_id"])
        return StorageObject(
            id=str(raw["id"]),
            name=str(raw["name"]),
            type=str(kind),
            parent_id=parent_id,
            size=None if kind == "folder" else int(raw["size"] or 0),
            mime_type=raw["mime_type"],
            created=raw["created"],
            modified=raw["modified"],
            ancestors=self._ancestors(parent_id) if ancestors is None else ancestors,
            etag=raw["etag"],
            raw=raw,
        )

    def _root(self) -> StorageObject:
        return StorageObject(
            id=ROOT,
            name="",
            type="folder",
            parent_id=None,
            ancestors=[],
            raw={"id": ROOT, "kind": "folder"},
        )

    def _child(self, parent_id: str, name: str) -> sqlite3.Row | None:
        return self.store.one(
            "SELECT * FROM objects WHERE account_id = ? AND parent_id = ? AND name = ?"
            " AND trashed = 0",
            (self.account_id, parent_id, name),
        )

    def _free_name(self, parent_id: str, name: str) -> str:
        if self._child(parent_id, name) is None:
            return name
        stem, ext = split_name(name)
        for n in range(1, 10000):
            candidate = f"{stem} ({n}){ext}"
            if len(candidate.encode()) > 255:
                candidate = f"{secrets.token_hex(4)} ({n}){ext}"[:255]
            if self._child(parent_id, candidate) is None:
                return candidate
        raise naming_conflict(f"No free name for {name!r}.", None)

    def _subtree(self, folder_id: str) -> list[sqlite3.Row]:
        return self.store.all(
            """WITH RECURSIVE tree(id) AS (
                 SELECT id FROM objects WHERE account_id = ? AND parent_id = ? AND trashed = 0
                 UNION ALL
                 SELECT o.id FROM objects o JOIN tree t ON o.parent_id = t.id
                 WHERE o.account_id = ? AND o.trashed = 0)
               SELECT o.* FROM objects o JOIN tree t ON o.id = t.id""",
            (self.account_id, folder_id, self.account_id),
        )

    # -- blobs ---------------------------------------------------------------------------------
    @property
    def _remote(self) -> bool:
        return self.blob_store.remote

    def _key(self, blob: str) -> str:
        return blob_key(self.account_id, blob)

    def _blob_source(self, blob: str) -> str:
        """:returns: the file of a committed blob of a file store: in the store, or for a
        moment after its commit still at the journalled temp path."""
        path = self.blob_store.local_path(self._key(blob))
        if path is None:
            raise ApiError(500, "internal_error", "Not a file blob store.")
        if os.path.exists(path):
            return path
        row = self.store.one(
            "SELECT temp FROM blob_journal WHERE account_id = ? AND blob = ?",
            (self.account_id, blob),
        )
        if row is not None and row["temp"]:
            return os.path.join(self.base, str(row["temp"]))
        return path

    def _open_blob(self, blob: str, size: int | None = None) -> IO[bytes]:
        """:returns: a reader of a committed blob: from the store, or for a moment after its
        commit still from the journalled temp path (file stores).

        :raises FileNotFoundError: neither is there.
        """
        try:
            return self.blob_store.open(self._key(blob), size)
        except FileNotFoundError:
            row = self.store.one(
                "SELECT temp FROM blob_journal WHERE account_id = ? AND blob = ?",
                (self.account_id, blob),
            )
            if row is None or not row["temp"]:
                raise
            path = os.path.join(self.base, str(row["temp"]))
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            return os.fdopen(fd, "rb")

    def _write_temp(self, stream: IO[bytes], max_bytes: int) -> tuple[str, int, str]:
        """Copy a stream into a fsync'ed temp file. :returns: ``(path, size, sha256 hex)``."""
        return spool_to_temp(
            stream,
            self.tmp,
            "up-",
            max_bytes,
            lambda: self._too_large(max_bytes),
        )

    def _local_blob(self, blob: str) -> str:
        """:returns: the path of a blob of a file store."""
        path = self.blob_store.local_path(self._key(blob))
        if path is None:
            raise ApiError(500, "internal_error", "Not a file blob store.")
        return path

    def _write_blob(self, stream: IO[bytes], max_bytes: int) -> tuple[str, int, str]:
        """Put a stream into the store as a new blob, before the transaction that will
        reference it: a file store gets it written in place (the data and the folder entry
        synced; no journal and no move after the commit, so an upload costs one data sync, one
        folder sync and one commit), a remote store gets a journalled put (see
        :meth:`_put_remote`). No row references the blob yet, so nothing can read it; if the
        request fails it is removed, and what a kill leaves (a blob no row names) the start-up
        sweep removes (older than the process's start:
        :func:`~kloudless.server.recovery.orphan_cutoff`), or a running server's sweep once
        older than :data:`ORPHAN_GRACE_SECONDS`.

        A small stream (at most :attr:`inline_bytes`, not a body the HTTP server stored on
        disk) is kept in memory instead, for :meth:`_adopt_blob` to insert with its row.

        :returns: ``(blob, size, sha256 hex)``.
        """
        if self.inline_bytes > 0 and spooled_body(stream) is None:
            limit = min(self.inline_bytes, max_bytes)
            head = read_at_most(stream, limit + 1)
            if len(head) <= limit:
                blob = INLINE_PREFIX + secrets.token_hex(16)
                self._inline[blob] = head
                return blob, len(head), read_digest(stream, head)
            if len(head) > max_bytes:
                raise self._too_large(max_bytes)
            stream = cast(IO[bytes], Prefixed(head, stream))
        if self._remote:
            temp, size, digest = self._write_temp(stream, max_bytes)
            return self._put_remote(temp, size), size, digest
        blob = secrets.token_hex(16)
        size, digest = spool_to_path(
            stream, self._local_blob(blob), max_bytes, lambda: self._too_large(max_bytes)
        )
        return blob, size, digest

    def _adopt_blob(self, blob: str) -> None:
        """The row referencing a new blob of :meth:`_write_blob` is written in this transaction
        (the bytes of an inline blob too)."""
        if is_inline(blob):
            self.store.execute(
                "INSERT INTO inline_blobs (account_id, blob, data) VALUES (?, ?, ?)",
                (self.account_id, blob, self._inline.pop(blob)),
            )
        elif self._remote:
            self.adopt_puts(blob)

    def _drop_new_blob(self, blob: str) -> None:
        """Remove a new blob of :meth:`_write_blob` whose row was not written."""
        if is_inline(blob):
            self._inline.pop(blob, None)
        elif self._remote:
            self._drop_puts([blob])
        else:
            remove_quietly(self._local_blob(blob))

    def _on_rollback_drop(self, blob: str) -> None:
        """Remove a new blob if the request's unit of work rolls back after this change (a
        remote put registered its undo when it was journalled; an inline blob's row goes with
        the rollback)."""
        if not self._remote and not is_inline(blob):
            self._on_rollback_remove(self._local_blob(blob))

    @staticmethod
    def _too_large(max_bytes: int) -> ApiError:
        return too_large(f"The upload exceeds the limit of {max_bytes} bytes.")

    def _record(self, type_: str, obj: StorageObject) -> None:
        """Append the change's activity event (call inside the change's transaction)."""
        if self.activity is not None:
            self.activity.record(type_, obj)

    def _stage_blob(self, temp_path: str, size: int) -> str:
        """Journal a new blob whose bytes wait at ``temp_path`` (call inside the transaction
        that inserts the row referencing it); the file moves into the store after the commit.

        :returns: the blob name.
        """
        blob = secrets.token_hex(16)
        self.store.execute(
            "INSERT INTO blob_journal (account_id, blob, temp, size, created)"
            " VALUES (?, ?, ?, ?, ?)",
            # Relative to the account folder, so a moved data dir still settles.
            (self.account_id, blob, os.path.relpath(temp_path, self.base), size, now_iso()),
        )
        self.store.after_commit(lambda: self._settle_quietly(blob))
        return blob

    def journal_puts(self, sizes: list[int]) -> list[str]:
        """Journal new blobs that are about to be put into a remote store, before the
        request's first write (a commit of their own, so a crash after the put leaves a row
        that the sweep settles); inside a unit that has begun writing, the orphan sweep is the
        backstop instead. An undo on rollback is registered.

        :returns: the new blob names.
        """
        names = [secrets.token_hex(16) for _ in sizes]
        try:
            with self.store.transaction(standalone=True):
                for blob, size in zip(names, sizes):
                    self.store.execute(
                        "INSERT INTO blob_puts (account_id, blob, size, created)"
                        " VALUES (?, ?, ?, ?)",
                        (self.account_id, blob, size, now_iso()),
                    )
        except RuntimeError:  # a standalone transaction is impossible here
            pass
        self.store.after_rollback(lambda: self._drop_puts(names))
        return names

    def _put_remote(self, temp: str, size: int) -> str:
        """Put a temp file into the remote store as a new journalled blob (before the
        transaction that will reference it). The temp file is removed.

        :returns: the blob name.
        """
        (blob,) = self.journal_puts([size])
        try:
            self.blob_store.put_file(self._key(blob), temp)
        except OSError as exc:
            self._drop_puts([blob])
            if is_disk_full(exc):
                raise insufficient_storage() from None
            log.warning("blob store put failed: %s", exc)
            raise ApiError(
                503, "service_unavailable", "The blob store cannot be reached; try again."
            ) from None
        finally:
            remove_quietly(temp)
        return blob

    def adopt_puts(self, *names: str) -> None:
        """The referencing rows are written in this transaction: the puts are done."""
        for blob in names:
            self.store.execute(
                "DELETE FROM blob_puts WHERE account_id = ? AND blob = ?",
                (self.account_id, blob),
            )

    def _drop_puts(self, names: list[str]) -> None:
        """Undo puts whose request failed: remove the blobs and their journal rows (what
        fails here the sweep settles later)."""
        for blob in names:
            try:
                if _referenced(self.store, self.account_id, blob):
                    continue
                self.blob_store.delete(self._key(blob))
                self.store.execute(
                    "DELETE FROM blob_puts WHERE account_id = ? AND blob = ?",
                    (self.account_id, blob),
                )
            except (OSError, sqlite3.Error) as exc:
                log.warning("undoing blob put %s failed (the sweep retries): %s", blob, exc)

    def _release_blob(self, blob: str | None, size: int | None) -> None:
        """Journal the removal of a blob no row will reference (call inside the transaction
        that changes the row); the blob is removed after the commit, an inline blob's bytes
        in this transaction."""
        if not blob:
            return
        if is_inline(blob):
            self.store.execute(
                "DELETE FROM inline_blobs WHERE account_id = ? AND blob = ?",
                (self.account_id, blob),
            )
            return
        self.store.execute(
            "INSERT OR REPLACE INTO blob_journal (account_id, blob, temp, size, created)"
            " VALUES (?, ?, NULL, ?, ?)",
            (self.account_id, blob, int(size or 0), now_iso()),
        )
        self.store.after_commit(lambda: self._settle_quietly(blob))

    def _settle_quietly(self, blob: str) -> None:
        # After the commit the change stands: a failure here leaves a journal row that the
        # next start-up or sweep settles, never a failed request.
        try:
            settle(self.store, self.blob_store, self.data_dir, self.account_id, [blob])
        except (OSError, sqlite3.Error):
            log.exception("settling blob %s failed; the sweep will retry", blob)

    def _on_rollback_remove(self, *paths: str) -> None:
        """Remove temp files if the request's unit of work rolls back after this change."""
        self.store.after_rollback(lambda: remove_quietly(*paths))

    @contextlib.contextmanager
    def _tree_change(self) -> Iterator[None]:
        # BEGIN IMMEDIATE serialises tree changes (of every account, in every process).
        try:
            with self.store.transaction():
                yield
        except sqlite3.IntegrityError:
            raise naming_conflict("An object with that name already exists.", None) from None

    # -- StorageBackend ------------------------------------------------------------------------
    def get(self, object_id: str, kind: str) -> StorageObject:
        if object_id == ROOT:
            if kind != "folder":
                raise not_found(f"File not found: {object_id}")
            return self._root()
        return self._object(self._row(object_id, kind))

    def list_folder(self, folder_id: str, recursive: bool = False) -> list[StorageObject]:
        return self._objects(self._sorted_children(folder_id, recursive))

    def list_folder_page(
        self, folder_id: str, recursive: bool, start: int, count: int, *, with_raw: bool = True
    ) -> tuple[list[StorageObject], bool]:
        # Only the requested page's objects are built (and then serialized by the API), not the
        # whole folder's for every page.
        if recursive:
            rows = self._sorted_children(folder_id, recursive)
            return self._objects(rows[start : start + count]), len(rows) > start + count
        with self._read_snapshot():
            if folder_id != ROOT:
                self._row(folder_id, "folder")
            # One indexed read (objects_order) of the page and one row more, which tells
            # whether another page follows: no count of the folder's children.
            # Plain tuples of the raw columns: reading 9 columns by name from each of 1000
            # rows cost more than building the objects.
            cursor = self.store.conn.cursor()
            cursor.row_factory = None
            values = cursor.execute(
                f"SELECT {', '.join(_PAGE_COLUMNS)} FROM objects"
                " WHERE account_id = ? AND parent_id = ? AND trashed = 0"
                " ORDER BY sort_key LIMIT ? OFFSET ?",
                (self.account_id, folder_id, count + 1, start),
            ).fetchall()
        more = len(values) > count
        return self._page_objects(folder_id, values[:count] if more else values, with_raw), more

    def _page_objects(
        self, folder_id: str, values: list[tuple[Any, ...]], with_raw: bool
    ) -> list[StorageObject]:
        """The objects of a page of children of ``folder_id`` (tuples of :data:`_PAGE_COLUMNS`):
        what :meth:`_object_of` builds, with one ``ancestors`` list shared by the siblings
        (never mutated; ``serialize_many`` then builds their JSON once), the fields passed by
        position and, unless ``with_raw``, no ``raw`` records: building 1000 objects by
        keyword, and 1000 records nobody reads, cost more than reading their rows."""
        chain = self._walk_up(folder_id)
        objects = []
        for object_id, name, kind, size, mime_type, etag, created, modified in values:
            raw = (
                dict(
                    zip(
                        _RAW_COLUMNS,
                        (
                            object_id,
                            folder_id,
                            name,
                            kind,
                            size,
                            mime_type,
                            etag,
                            created,
                            modified,
                        ),
                    )
                )
                if with_raw
                else {}
            )
            objects.append(
                StorageObject(
                    str(object_id),
                    str(name),
                    str(kind),
                    folder_id,
                    None if kind == "folder" else int(size or 0),
                    mime_type,
                    created,
                    modified,
                    chain,
                    etag,
                    raw,
                )
            )
        return objects

    @contextlib.contextmanager
    def _read_snapshot(self) -> Iterator[None]:
        """Run several reads in one (deferred) transaction: WAL gives them one snapshot without
        taking the write lock."""
        conn = self.store.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def find_child(self, folder_id: str, name: str) -> StorageObject | None:
        if folder_id != ROOT:
            self._row(folder_id, "folder")
        row = self._child(folder_id, name)
        return None if row is None else self._object(row)

    def _sorted_children(self, folder_id: str, recursive: bool) -> list[sqlite3.Row]:
        """:returns: the rows of a folder's children (or subtree), folders first, by name."""
        if folder_id != ROOT:
            self._row(folder_id, "folder")
        if recursive:
            rows = self._subtree(folder_id)
        else:
            rows = self.store.all(
                "SELECT * FROM objects WHERE account_id = ? AND parent_id = ? AND trashed = 0",
                (self.account_id, folder_id),
            )
        rows.sort(key=lambda r: str(r["sort_key"]))
        return rows

    def create_folder(
        self, parent_id: str, name: str, conflict_if_exists: bool
    ) -> tuple[StorageObject, bool]:
        validate_name(name)
        with self._tree_change():
            self._folder_row(parent_id)
            existing = self._child(parent_id, name)
            if existing is not None:
                if existing["kind"] == "folder" and not conflict_if_exists:
                    return self._object(existing), False
                raise naming_conflict(
                    f"An object named {name!r} already exists.", str(existing["id"])
                )
            new_id = "folder_" + secrets.token_urlsafe(16)
            now = now_iso()
            self.store.execute(
                "INSERT INTO objects (id, account_id, parent_id, name, kind, created, modified,"
                " sort_key) VALUES (?, ?, ?, ?, 'folder', ?, ?, ?)",
                (
                    new_id,
                    self.account_id,
                    parent_id,
                    name,
                    now,
                    now,
                    order_key("folder", name, new_id),
                ),
            )
            created = self._object(self._row(new_id, "folder"))
            self._record("add", created)
            return created, True

    def upload(
        self, parent_id: str, name: str, stream: IO[bytes], overwrite: bool, max_bytes: int
    ) -> StorageObject:
        validate_name(name)
        self._folder_row(parent_id)  # fail early, before reading the body
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"  # not under the lock
        blob, size, digest = self._write_blob(stream, max_bytes)
        return self._insert_file(parent_id, name, blob, size, digest, mime, overwrite)

    def upload_file(
        self, parent_id: str, name: str, path: str, size: int, digest: str, overwrite: bool
    ) -> StorageObject:
        """Insert (or overwrite) a file whose bytes are the fsync'ed file ``path`` on the data
        dir's filesystem (a multipart session's parts, written in place): hard-linked into the
        file store as the new blob, like an upload's, so no byte is copied and ``path`` stays
        as it is if this fails.

        :param digest: the hex digest whose first 32 characters become the etag.
        :raises OSError: when the file cannot be linked (another filesystem, no hard links):
            the caller copies the bytes instead.
        """
        validate_name(name)
        self._folder_row(parent_id)
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        blob = secrets.token_hex(16)
        target = self._local_blob(blob)
        # A blob no row names is an orphan once old enough (by its modification time; for a
        # process that started alone, once older than its start): the parts may be older than
        # that, so the file is made new before it shows in the blob folder.
        os.utime(path)
        os.link(path, target)
        try:
            fsync_dir(os.path.dirname(target))
        except BaseException:
            remove_quietly(target)
            raise
        return self._insert_file(parent_id, name, blob, size, digest, mime, overwrite)

    def adopt_blob(
        self, parent_id: str, name: str, blob: str, size: int, overwrite: bool
    ) -> StorageObject:
        """Insert (or overwrite) a file whose bytes are already the blob ``blob`` of a remote
        store (a multipart upload assembled there). The blob stays if this fails (its session
        still references it)."""
        validate_name(name)
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        etag = secrets.token_hex(16)  # a version tag: S3 assembled the bytes, we never saw them
        return self._insert_file(parent_id, name, blob, size, etag, mime, overwrite)

    def _insert_file(
        self,
        parent_id: str,
        name: str,
        blob: str,
        size: int,
        digest: str,
        mime: str,
        overwrite: bool,
    ) -> StorageObject:
        """Insert (or overwrite) a file row for the new blob ``blob``, already in the store (see
        :meth:`_write_blob`)."""
        old_blob: str | None = None
        try:
            with self._tree_change():
                folder = self._folder_row(parent_id)
                now = now_iso()
                # A new file's name is taken by its insert (below), not looked up first.
                existing = self._child(parent_id, name) if overwrite else None
                replaced = existing["size"] if existing is not None else 0
                quota.check(self.store, self.quota_limit, self.account_id, size - (replaced or 0))
                self._adopt_blob(blob)
                if existing is not None:
                    if existing["kind"] != "file":
                        raise naming_conflict(
                            f"A folder named {name!r} already exists.", str(existing["id"])
                        )
                    old_blob = existing["blob"]
                    self._release_blob(old_blob, existing["size"])
                    self.store.execute(
                        "UPDATE objects SET blob = ?, size = ?, etag = ?, mime_type = ?,"
                        " modified = ? WHERE id = ?",
                        (blob, size, digest[:32], mime, now, existing["id"]),
                    )
                    file_id = str(existing["id"])
                    result = self._object(self._row(file_id, "file"))
                else:
                    raw = self._insert_new_file(
                        parent_id, name, blob, size, digest, mime, now, another=not overwrite
                    )
                    # The row as inserted (no read back), built inside the transaction; its
                    # parent's row was just read (the first step up to the root).
                    result = self._object_of(raw, self._walk_up(parent_id, folder))
                self._record("update" if old_blob is not None else "add", result)
        except BaseException:
            self._drop_new_blob(blob)
            raise
        self._on_rollback_drop(blob)
        return result

    def _insert_new_file(
        self,
        parent_id: str,
        name: str,
        blob: str,
        size: int,
        digest: str,
        mime: str,
        now: str,
        *,
        another: bool,
    ) -> dict[str, Any]:
        """Insert a new file row named ``name``.

        :param another: when a live sibling has the name, take the first free ``name (n)``
            instead (found out by the insert: one statement when the name is free); else
            such a sibling is a naming conflict (``IntegrityError``).
        :returns: the row's :data:`_RAW_COLUMNS` as inserted.
        """
        final, exact = name, not another
        for _ in range(2):
            file_id = "file_" + secrets.token_urlsafe(16)
            cur = self.store.execute(
                "INSERT INTO objects (id, account_id, parent_id, name, kind, size,"
                " mime_type, blob, etag, created, modified, sort_key)"
                " VALUES (?, ?, ?, ?, 'file', ?, ?, ?, ?, ?, ?, ?)"
                + ("" if exact else " ON CONFLICT DO NOTHING"),
                (
                    file_id,
                    self.account_id,
                    parent_id,
                    final,
                    size,
                    mime,
                    blob,
                    digest[:32],
                    now,
                    now,
                    order_key("file", final, file_id),
                ),
            )
            if cur.rowcount != 0:
                break
            # Taken: the first free name (the transaction holds the write lock: it stays free).
            final, exact = self._free_name(parent_id, name), True
        return {
            "id": file_id,
            "parent_id": parent_id,
            "name": final,
            "kind": "file",
            "size": size,
            "mime_type": mime,
            "etag": digest[:32],
            "created": now,
            "modified": now,
        }

    def open_contents(self, file_id: str) -> FileContents:
        for _ in range(3):  # the blob may be swapped by a concurrent PUT between read and open
            row = self.store.one(_CONTENTS_ROW, (file_id, self.account_id))
            if row is None or row["kind"] != "file":
                raise not_found(f"File not found: {file_id[:100]}")
            try:
                reader = self._reader(row)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("reading blob of %s failed: %s", file_id[:100], exc)
                raise ApiError(500, "internal_error", "The file cannot be read.") from None
            return _file_contents(row, reader)
        raise not_found(f"File not found: {file_id[:100]}")

    def _reader(self, row: sqlite3.Row) -> IO[bytes]:
        """:returns: a reader of the bytes of the file row ``row`` (of :data:`_CONTENTS_ROW`).
        :raises FileNotFoundError: the blob is gone (replaced since the row was read)."""
        blob = str(row["blob"])
        if not is_inline(blob):
            return self._open_blob(blob, int(row["size"] or 0))
        data = row["inline_data"]
        if data is None:  # read with its row in one statement: nothing can have moved it
            raise OSError(f"the inline bytes of blob {blob} are missing")
        return io.BytesIO(bytes(data))

    def replace_contents(self, file_id: str, stream: IO[bytes], max_bytes: int) -> StorageObject:
        self._row(file_id, "file")
        blob, size, digest = self._write_blob(stream, max_bytes)
        try:
            with self._tree_change():
                row = self._row(file_id, "file")
                quota.check(self.store, self.quota_limit, self.account_id, size - row["size"])
                self._release_blob(row["blob"], row["size"])
                self._adopt_blob(blob)
                self.store.execute(
                    "UPDATE objects SET blob = ?, size = ?, etag = ?, modified = ? WHERE id = ?",
                    (blob, size, digest[:32], now_iso(), file_id),
                )
                result = self._object(self._row(file_id, "file"))
                self._record("update", result)
        except BaseException:
            self._drop_new_blob(blob)
            raise
        self._on_rollback_drop(blob)
        return result

    def update(
        self, object_id: str, kind: str, name: str | None = None, parent_id: str | None = None
    ) -> StorageObject:
        if name is not None:
            validate_name(name)
        if object_id == ROOT:
            raise invalid_parameters("The root folder cannot be renamed or moved.")
        with self._tree_change():
            row = self._row(object_id, kind)
            new_parent = str(row["parent_id"]) if parent_id is None else parent_id
            new_name = str(row["name"]) if name is None else name
            self._folder_row(new_parent)
            if kind == "folder" and new_parent != ROOT:
                chain = [a for a, _ in self._ancestors(new_parent)] + [new_parent]
                if object_id in chain:
                    raise ApiError(
                        400,
                        "invalid_parent_folder",
                        "A folder cannot be moved into itself or its subfolders.",
                    )
            existing = self._child(new_parent, new_name)
            if existing is not None and existing["id"] != object_id:
                raise naming_conflict(
                    f"An object named {new_name!r} already exists there.", str(existing["id"])
                )
            self.store.execute(
                "UPDATE objects SET name = ?, parent_id = ?, modified = ?, sort_key = ?"
                " WHERE id = ?",
                (
                    new_name,
                    new_parent,
                    now_iso(),
                    order_key(str(row["kind"]), new_name, object_id),
                    object_id,
                ),
            )
            result = self._object(self._row(object_id, kind))
            if new_parent != row["parent_id"]:
                self._record("move", result)
            elif new_name != row["name"]:
                self._record("rename", result)
        return result

    def copy(self, object_id: str, kind: str, parent_id: str, name: str | None) -> StorageObject:
        if name is not None:
            validate_name(name)
        self._folder_row(parent_id)  # fail early
        temps: dict[str, str] = {}
        puts: dict[str, str] = {}
        staged: list[str] = []
        try:
            # The source is read and its blobs linked under the write lock, in the transaction
            # that inserts the copies: a consistent snapshot of the subtree, whatever changes
            # concurrently (no change can commit, hence no blob be released, in between).
            with self._tree_change():
                self._folder_row(parent_id)
                source = self._row(object_id, kind)  # still there?
                if kind == "folder":
                    chain = [a for a, _ in self._ancestors(parent_id)] + [parent_id]
                    if object_id in chain:
                        raise ApiError(
                            400, "invalid_parent_folder", "A folder cannot be copied into itself."
                        )
                plan = self._copy_plan(object_id, kind)
                final = self._free_name(parent_id, name or str(source["name"]))
                adding = sum(int(r["size"] or 0) for r in plan if r["kind"] == "file")
                quota.check(self.store, self.quota_limit, self.account_id, adding)
                if self._remote:
                    # Server-side copies into new blobs under the write lock: no referenced
                    # blob can be released meanwhile, so this too is a snapshot.
                    puts = self._copy_remote(
                        [r for r in plan if r["kind"] == "file" and not is_inline(r["blob"])]
                    )
                else:
                    self._link_blobs(plan, temps)
                new_id = self._insert_copies(plan, temps, puts, parent_id, final, staged)
                result = self._object(self._row(new_id, kind))
                self._record("copy", result)
        except BaseException:
            remove_quietly(*staged)
            self._drop_puts(list(puts.values()))
            raise
        finally:
            remove_quietly(*temps.values())
        self._on_rollback_remove(*staged)
        return result

    def _copy_plan(self, object_id: str, kind: str) -> list[sqlite3.Row]:
        """:returns: the rows to copy: the object, then its subtree, parents first."""
        rows = [self._row(object_id, kind)]
        index = 0
        while index < len(rows):
            if len(rows) > 1_000_000:
                raise invalid_parameters("The folder is too large to copy.")
            row = rows[index]
            index += 1
            if row["kind"] == "folder":
                rows.extend(
                    self.store.all(
                        "SELECT * FROM objects WHERE account_id = ? AND parent_id = ?"
                        " AND trashed = 0 ORDER BY id",
                        (self.account_id, str(row["id"])),
                    )
                )
        return rows

    def _link_blobs(self, rows: list[sqlite3.Row], temps: dict[str, str]) -> None:
        """Give every file of ``rows`` a temp name for its bytes (``temps``: source file id ->
        path): a hard link to its blob (blobs are never changed in place, so the link is the
        bytes as they are now, at the cost of a directory entry), or a copy where the
        filesystem has no hard links. Called under the write lock: no blob of these rows can
        be released meanwhile (a pending rename may still move one: looked up again)."""
        for row in rows:
            if row["kind"] != "file" or is_inline(row["blob"]):
                continue  # an inline blob is copied by a statement (see _insert_copies)
            temp = os.path.join(self.tmp, "cp-" + secrets.token_hex(12))
            for attempt in range(3):
                try:
                    _link_or_copy(self._blob_source(str(row["blob"])), temp)
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise ApiError(
                            500, "internal_error", f"The bytes of file {row['id']} are missing."
                        ) from None
            temps[str(row["id"])] = temp
        if temps:
            fsync_dir(self.tmp)  # the links are journalled as the copies' blobs: durable first

    def _copy_remote(self, files: list[sqlite3.Row]) -> dict[str, str]:
        """Copy the blobs of ``files`` into new journalled blobs of the remote store (called
        under the write lock, so every source blob is still referenced).

        :returns: ``{source file id: new blob}``.
        """
        names = self.journal_puts([int(r["size"] or 0) for r in files])
        try:
            for row, blob in zip(files, names):
                self.blob_store.copy(self._key(str(row["blob"])), self._key(blob))
        except FileNotFoundError:
            self._drop_puts(names)
            raise ApiError(
                500, "internal_error", "The bytes of a file to copy are missing."
            ) from None
        except OSError as exc:
            self._drop_puts(names)
            log.warning("blob store copy failed: %s", exc)
            raise ApiError(
                503, "service_unavailable", "The blob store cannot be reached; try again."
            ) from None
        except BaseException:
            self._drop_puts(names)
            raise
        return {str(r["id"]): blob for r, blob in zip(files, names)}

    def _insert_copies(
        self,
        rows: list[sqlite3.Row],
        temps: dict[str, str],
        puts: dict[str, str],
        parent_id: str,
        name: str,
        staged: list[str],
    ) -> str:
        """Insert copies of ``rows`` (parents first) and journal their temp files as blobs
        (``staged`` collects the temp paths), or adopt the blobs a remote store copied
        (``puts``).

        :returns: the id of the copy of ``rows[0]``.
        """
        new_ids: dict[str, str] = {}
        now = now_iso()
        for position, row in enumerate(rows):
            src_id = str(row["id"])
            prefix = "folder_" if row["kind"] == "folder" else "file_"
            new_id = new_ids[src_id] = prefix + secrets.token_urlsafe(16)
            if position == 0:
                dest_parent, dest_name = parent_id, name
            else:
                dest_parent, dest_name = new_ids[str(row["parent_id"])], str(row["name"])
            blob = None
            if row["kind"] == "file" and is_inline(row["blob"]):
                blob = self._copy_inline(str(row["blob"]))
            elif row["kind"] == "file" and src_id in puts:
                blob = puts[src_id]
                self.adopt_puts(blob)
            elif row["kind"] == "file":
                temp = temps.pop(src_id)
                staged.append(temp)
                blob = self._stage_blob(temp, int(row["size"] or 0))
            self.store.execute(
                "INSERT INTO objects (id, account_id, parent_id, name, kind, size, mime_type,"
                " blob, etag, created, modified, sort_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new_id,
                    self.account_id,
                    dest_parent,
                    dest_name,
                    row["kind"],
                    row["size"],
                    row["mime_type"],
                    blob,
                    row["etag"],
                    now,
                    now,
                    order_key(str(row["kind"]), dest_name, new_id),
                ),
            )
        return new_ids[str(rows[0]["id"])]

    def _copy_inline(self, blob: str) -> str:
        """Copy the bytes of an inline blob as a new one (in the copy's transaction).

        :returns: the new blob name."""
        copy = INLINE_PREFIX + secrets.token_hex(16)
        cur = self.store.execute(
            "INSERT INTO inline_blobs (account_id, blob, data)"
            " SELECT account_id, ?, data FROM inline_blobs WHERE account_id = ? AND blob = ?",
            (copy, self.account_id, blob),
        )
        if cur.rowcount != 1:
            raise ApiError(500, "internal_error", "The bytes of a file to copy are missing.")
        return copy

    def delete(self, object_id: str, kind: str, recursive: bool, permanent: bool) -> StorageObject:
        """Delete an object (a folder with its subtree, when ``recursive``). Always permanent
        for ``local`` (see the module docstring); ``permanent`` is accepted and ignored."""
        if object_id == ROOT:
            raise forbidden("The root folder cannot be deleted.")
        with self._tree_change():
            row = self._row(object_id, kind)
            before = self._object(row)
            subtree = self._subtree(object_id) if kind == "folder" else []
            if subtree and not recursive:
                raise ApiError(
                    403,
                    "folder_not_empty",
                    "The folder is not empty; pass recursive=true to delete it.",
                )
            ids = [object_id] + [str(r["id"]) for r in subtree]
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                # Journalled with the delete: the files go after the commit, and a crash
                # half-way through removing them leaves journal rows that start-up finishes.
                for r in self.store.all(
                    f"SELECT blob, size FROM objects WHERE id IN ({marks})", part
                ):
                    self._release_blob(r["blob"], r["size"])
                self.store.execute(f"DELETE FROM objects WHERE id IN ({marks})", part)
            self._record("delete", before)
        return before

    def search(self, query: str, parents: list[str] | None) -> list[StorageObject]:
        rows = self.store.all(
            "SELECT * FROM objects WHERE account_id = ? AND trashed = 0"
            " AND instr(lower(name), lower(?)) > 0 ORDER BY name, id",
            (self.account_id, query),
        )
        if parents:
            allowed: set[str] = set()
            for parent in parents:
                if parent == ROOT:
                    allowed = {str(r["id"]) for r in rows}
                    break
                self._row(parent, "folder")
                allowed.update(str(r["id"]) for r in self._subtree(parent))
            rows = [r for r in rows if str(r["id"]) in allowed]
        return self._objects(rows)

    def recent(self, after: str | None) -> list[StorageObject]:
        rows = self.store.all(
            "SELECT * FROM objects WHERE account_id = ? AND trashed = 0 AND kind = 'file'"
            " ORDER BY modified DESC, id",
            (self.account_id,),
        )
        if after is not None:
            # Compare instants, not strings: stored timestamps of older versions vary in
            # format (no fraction when it was zero).
            since = parse_datetime(after)
            rows = [r for r in rows if parse_datetime(str(r["modified"])) > since]
        return self._objects(rows)

    def quota(self) -> dict[str, int | None]:
        # What is on disk: the files, plus removed ones whose blobs are not deleted yet.
        row = self.store.one(
            "SELECT (SELECT COALESCE(SUM(size), 0) FROM objects"
            "  WHERE account_id = ? AND kind = 'file' AND trashed = 0)"
            " + (SELECT COALESCE(SUM(size), 0) FROM blob_journal"
            "  WHERE account_id = ? AND temp IS NULL) AS used",
            (self.account_id, self.account_id),
        )
        return {"used": int(row["used"]) if row else 0, "total": self.quota_limit}
