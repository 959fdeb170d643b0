"""Multipart (chunked) uploads (spec §5.4, COMMON protocol details).

Sessions live in the ``multipart`` tables and their bytes in one file,
``<data_dir>/multipart/<session id>/data``, each part written in place at its offset
(``(part_number - 1) * part_size``) and fsync'ed before its row commits, so they survive
restarts and every byte is written once. Parts may arrive in any order, in parallel and more
than once: a part's row is deleted before its range is rewritten and inserted again once the
new bytes are durable, so a part whose upload failed or was cut off is missing (``complete``
refuses) rather than half old and half new. ``complete`` checks that every part is present and
the total size matches; for a ``local`` account with blobs in the data dir the session's file
becomes the new file's bytes without a copy (a hard link into the account's temp folder, then
the usual journalled insert), for other services its bytes are streamed to the backend like a
normal upload. Sessions begun by older versions (one file per part,
``<session id>/<part number>``) keep that layout until they end.

A session's ``state`` is ``open`` or ``completing``: ``complete`` claims it atomically
(``open`` → ``completing`` in one statement), so only one of several parallel completes
assembles the file; the others, and part uploads and aborts arriving meanwhile, get a 409.
A failed complete puts the session back to ``open``; so does start-up recovery for a complete
that a crash interrupted, and, while other server processes keep serving, the next request for
the session on any of them (the claim names its process, ``owner``: a dead one's claim is
void). The new file, its activity event, the session's removal and the
stored idempotent answer commit in one transaction, so a retried complete with the SDK's same
``Idempotency-Key`` gets the stored answer, and one without finds the session gone (404) but
never creates a second file.

Session ids are positive integers from one server-wide sequence, as in Kloudless v1 (the Java SDK
parses them as ``int``); they are not secrets, since a session is found only together with its
account. Sessions created by older versions keep their random string ids.

With a remote blob store (``kloudless serve --blob-store s3://...``) the sessions of ``local``
accounts are S3 multipart uploads straight into the file's future blob (columns ``blob``,
``upload_id``; each part's ``etag``): any server process can take the next part or the
``complete``, parts are at least :data:`~kloudless.server.blobs.S3_MIN_PART_SIZE` bytes, and
``complete`` assembles the object in the store without copying bytes. The session itself is the
journal of its blob: while it exists the blob is kept; its removal (abort, the sweep of stale
sessions) aborts the upload and removes the blob after the commit, and the sweep aborts uploads
and removes blobs no session or file references (a crash between the two).

``size`` may be left out, as Kloudless allowed for most services: the size is then known at
``complete`` (stored as :data:`UNKNOWN_SIZE`). Every part but the last must then be exactly
``part_size`` bytes, the last one at most that, and the parts 1..N must all be present.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import secrets
import shutil
import sqlite3
from typing import IO, Any, Callable, TypeVar, cast

from werkzeug.wrappers import Response

from ..blobs import BlobStore, blob_store
from ..connectors.base import StorageBackend, StorageObject, validate_name
from ..connectors.local_storage import LocalStorage, blob_key, drop_multipart
from ..context import RequestContext
from ..diskspace import insufficient_storage, is_disk_full
from ..errors import ApiError, invalid_parameters, not_found, too_large
from ..params import parse_int
from ..recovery import reopen_orphan_session
from ..responses import json_response, no_content
from ..routing import BODY_UPLOAD, Route
from ..spool import (
    BODY_IN_PLACE,
    InPlaceBody,
    datasync,
    drain,
    part_write_out,
    remove_quietly,
    spool_to_temp,
    sync_entry_once,
)
from ..store import now_iso, register_migration
from .storage import serialize, storage_backend, upload_precheck

log = logging.getLogger("kloudless.server")
T = TypeVar("T")

A = "/accounts/<account_id>/storage/multipart"

#: The ``size`` column of a session created without one (the size is known at ``complete``).
UNKNOWN_SIZE = -1

# The sequence integer session ids come from (AUTOINCREMENT: an id is never reused).
register_migration(
    601, "CREATE TABLE multipart_ids (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT)"
)


def _new_session_id(ctx: RequestContext) -> str:
    cur = ctx.store.execute("INSERT INTO multipart_ids (created) VALUES (?)", (now_iso(),))
    return str(int(cur.lastrowid or 0))


def _public_id(value: str) -> int | str:
    """:returns: the session id as the API shows it (an integer, or an older string id)."""
    return int(value) if value.isascii() and value.isdigit() else value


def _dir(ctx: RequestContext, session_id: str) -> str:
    return os.path.join(ctx.settings.data_dir, "multipart", session_id)


#: The file of a session's bytes, in its folder (parts at their offsets).
DATA = "data"


def _part_files(directory: str) -> bool:
    """:returns: True when the session keeps one file per part (begun by an older version)."""
    try:
        return any(name.isdigit() for name in os.listdir(directory))
    except FileNotFoundError:
        return False


class _At:
    """A write-only file object writing a part at increasing offsets of a file descriptor, its
    write-out started behind it (:func:`~kloudless.server.spool.part_write_out`)."""

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = fd
        self.offset = offset
        self.write_out = part_write_out(fd, offset)

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, self.offset)
            self.offset += written
            view = view[written:]
        self.write_out.advance(self.offset)
        return len(data)


def _remote_store(storage: object) -> BlobStore | None:
    """:returns: the remote blob store a ``local`` account's sessions assemble in, or None
    (parts in the data dir: file stores and other services)."""
    if isinstance(storage, LocalStorage) and storage.blob_store.remote:
        return storage.blob_store
    return None


def part_count(size: int, part_size: int) -> int:
    """:returns: the number of parts of a session (at least 1)."""
    return max(1, math.ceil(size / part_size))


def serialize_session(ctx: RequestContext, row: sqlite3.Row) -> dict[str, Any]:
    """:returns: the session JSON with the received parts."""
    parts = ctx.store.all(
        "SELECT part_number, size FROM multipart_parts WHERE session_id = ? ORDER BY part_number",
        (row["id"],),
    )
    acc = int(row["account_id"])
    size = int(row["size"])
    return {
        "id": _public_id(str(row["id"])),
        "account": acc,
        "name": row["name"],
        "parent_id": row["parent_id"],
        "size": None if size == UNKNOWN_SIZE else size,
        "part_size": int(row["part_size"]),
        "parallel_uploads": True,
        "overwrite": bool(row["overwrite"]),
        "parts": [{"part_number": int(p["part_number"]), "size": int(p["size"])} for p in parts],
        "created": row["created"],
        "api": "storage",
        "type": "multipart",
        "href": ctx.href(f"accounts/{acc}/storage/multipart/{row['id']}"),
    }


def _session(
    ctx: RequestContext, account_id: str, session_id: str
) -> tuple[sqlite3.Row, sqlite3.Row]:
    account = ctx.account(account_id)
    row = ctx.store.one(
        "SELECT * FROM multipart WHERE id = ? AND account_id = ?", (session_id, int(account["id"]))
    )
    if row is None:
        raise not_found(f"Multipart upload not found: {session_id[:100]}")
    if reopen_orphan_session(ctx.store, row):  # its completing process died
        row = ctx.store.one("SELECT * FROM multipart WHERE id = ?", (session_id,))
        if row is None:
            raise not_found(f"Multipart upload not found: {session_id[:100]}")
    return account, row


def _busy(session_id: str) -> ApiError:
    return ApiError(
        409,
        "conflict",
        f"Multipart upload {session_id[:100]} is being completed; wait for the complete "
        "request's answer (parts cannot be changed and the upload cannot be aborted now).",
    )


def init_upload(ctx: RequestContext, account_id: str) -> Response:
    account = ctx.account(account_id)
    storage = ctx.storage(account)
    body = ctx.json_body()
    name = validate_name(body.get("name"))
    parent = body.get("parent_id", "root")
    if not isinstance(parent, str) or not parent:
        raise invalid_parameters("'parent_id' must be a folder id.")
    size = body.get("size")
    if size is None:
        size = UNKNOWN_SIZE
    elif not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise invalid_parameters("'size' (total bytes) must be an integer >= 0 when given.")
    elif size > ctx.settings.max_upload_bytes:
        raise too_large(f"The upload exceeds the limit of {ctx.settings.max_upload_bytes} bytes.")
    try:
        storage.get(parent, "folder")
    except ApiError as exc:
        if exc.status == 404:
            raise ApiError(
                400, "invalid_parent_folder", f"Invalid parent folder: {parent[:100]}"
            ) from None
        raise
    overwrite = ctx.arg_bool("overwrite")
    now = now_iso()
    part_size = ctx.settings.multipart_part_size
    blob = upload_id = None
    remote = _remote_store(storage)
    if remote is not None and isinstance(storage, LocalStorage):
        # Before the first write, journalled first (the sweep then knows the upload is ours
        # even before the session commits); undone if the request fails.
        (blob,) = storage.journal_puts([0])
        key = blob_key(int(account["id"]), blob)
        upload_id = _blob_call(lambda: remote.multipart_start(key))
        ctx.store.after_rollback(lambda: remote.multipart_abort(key, str(upload_id)))
        part_size = max(part_size, remote.min_part_size)
    with ctx.store.transaction():
        if blob is not None and isinstance(storage, LocalStorage):
            storage.adopt_puts(blob)  # the session is the blob's journal from now on
        session_id = _new_session_id(ctx)
        os.makedirs(_dir(ctx, session_id), exist_ok=True)
        ctx.store.execute(
            "INSERT INTO multipart (id, account_id, name, parent_id, size, part_size, overwrite,"
            " created, state, modified, blob, upload_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?)",
            (
                session_id,
                int(account["id"]),
                name,
                parent,
                size,
                part_size,
                int(overwrite),
                now,
                now,
                blob,
                upload_id,
            ),
        )
    row = ctx.store.one("SELECT * FROM multipart WHERE id = ?", (session_id,))
    assert row is not None
    return json_response(serialize_session(ctx, row), 201)


def get_upload(ctx: RequestContext, account_id: str, session_id: str) -> Response:
    _, row = _session(ctx, account_id, session_id)
    return json_response(serialize_session(ctx, row))


def _part_number(ctx: RequestContext, row: sqlite3.Row) -> tuple[int, int, bool]:
    """:returns: ``(part number, its expected size, whether exactly that size)`` of a part
    ``PUT``. :raises ApiError: 400 for a missing or out of range ``part_number``."""
    size, part_size = int(row["size"]), int(row["part_size"])
    known = size != UNKNOWN_SIZE
    count = part_count(size if known else ctx.settings.max_upload_bytes, part_size)
    number = parse_int(ctx.request.args.get("part_number"), "part_number", 0, 1, count)
    if number == 0:
        raise invalid_parameters("Query parameter 'part_number' (1-based) is required.")
    # Without a total size, any part may be the last one: at most part_size bytes here, and
    # complete checks that only the last part is short.
    expected = part_size if number < count or not known else size - part_size * (count - 1)
    return number, expected, known


def part_precheck(ctx: RequestContext, account_id: str, session_id: str) -> None:
    """:func:`upload_precheck`, then, for a first upload of a part of a session whose parts
    are written in place: the part's place in the session file, where the HTTP server writes
    the body as it arrives (:class:`~kloudless.server.spool.InPlaceBody`) instead of spooling
    it to copy it there afterwards. Other parts (sent again, of sessions without a size or
    whose parts go to S3, of another length) are spooled as before.
    """
    upload_precheck(ctx, account_id)
    account = ctx.account(account_id)
    row = ctx.store.one(
        "SELECT * FROM multipart WHERE id = ? AND account_id = ?", (session_id, int(account["id"]))
    )
    if row is None or row["state"] != "open" or row["upload_id"]:
        return
    try:
        number, expected, known = _part_number(ctx, row)
    except ApiError:
        return  # the handler answers
    directory = _dir(ctx, session_id)
    if not known or ctx.request.content_length != expected or not os.path.isdir(directory):
        return
    if _part_files(directory) or ctx.store.one(
        "SELECT 1 FROM multipart_parts WHERE session_id = ? AND part_number = ?",
        (session_id, number),
    ):
        return
    offset = (number - 1) * int(row["part_size"])
    with contextlib.suppress(OSError):  # spooled as usual
        ctx.request.environ[BODY_IN_PLACE] = InPlaceBody(
            os.path.join(directory, DATA), offset, expected
        )


def put_part(ctx: RequestContext, account_id: str, session_id: str) -> Response:
    _, row = _session(ctx, account_id, session_id)
    part_size = int(row["part_size"])
    number, expected, known = _part_number(ctx, row)
    length = ctx.request.content_length
    if length is not None and (length != expected if known else length > expected):
        raise invalid_parameters(_part_rule(number, expected, known) + f", got {length}.")
    if row["state"] != "open":
        raise _busy(session_id)
    directory = _dir(ctx, session_id)
    os.makedirs(directory, exist_ok=True)
    rule = _part_rule(number, expected, known)
    placed = ctx.request.environ.get(BODY_IN_PLACE)
    if (
        isinstance(placed, InPlaceBody)
        and not row["upload_id"]
        and (placed.path, placed.offset)
        == (os.path.join(directory, DATA), (number - 1) * part_size)
    ):
        return json_response(
            {"part_number": number, "size": _placed(ctx, session_id, number, placed)}
        )
    if not row["upload_id"] and not _part_files(directory):
        received = _write_in_place(
            ctx, session_id, directory, number, part_size, (expected, known), rule
        )
        return json_response({"part_number": number, "size": received})
    temp, received, _ = spool_to_temp(
        ctx.body_stream(),
        directory,
        ".part-",
        expected,
        lambda: invalid_parameters(rule + "."),
    )
    etag = None
    try:
        if received != expected if known else received > expected:
            raise invalid_parameters(rule + f", got {received}.")
        if row["upload_id"]:  # a remote session: the part goes to S3 (before the first write)
            remote = blob_store(ctx.settings)
            key = blob_key(int(row["account_id"]), str(row["blob"]))
            upload_id = str(row["upload_id"])
            etag = _blob_call(lambda: remote.multipart_put(key, upload_id, number, temp))
        # The state check, the rename and the row are one step against a concurrent
        # complete (which claims the session in its own transaction) or abort.
        with ctx.store.transaction():
            _check_open(ctx, session_id)
            if etag is None:
                os.replace(temp, os.path.join(directory, str(number)))
            _record_part(ctx, session_id, number, received, etag)
    finally:
        remove_quietly(temp)  # renamed into place, sent to S3, or failed
    return json_response({"part_number": number, "size": received})


def _check_open(ctx: RequestContext, session_id: str) -> None:
    current = ctx.store.one("SELECT state FROM multipart WHERE id = ?", (session_id,))
    if current is None:
        raise not_found(f"Multipart upload not found: {session_id[:100]}")
    if current["state"] != "open":
        raise _busy(session_id)


def _record_part(
    ctx: RequestContext, session_id: str, number: int, received: int, etag: str | None
) -> None:
    ctx.store.execute(
        "INSERT OR REPLACE INTO multipart_parts (session_id, part_number, size, etag)"
        " VALUES (?, ?, ?, ?)",
        (session_id, number, received, etag),
    )
    ctx.store.execute("UPDATE multipart SET modified = ? WHERE id = ?", (now_iso(), session_id))


def _write_in_place(
    ctx: RequestContext,
    session_id: str,
    directory: str,
    number: int,
    part_size: int,
    size_rule: tuple[int, bool],
    rule: str,
) -> int:
    """Write a part's body at its offset of the session's file, fsync it, then record the
    part with a random version tag (the ``etag`` column; the file's etag is derived from its
    parts' tags, as S3 does, instead of hashing every byte once more). A part sent again has
    its row deleted first: until the new bytes are durable the part is missing, never half
    rewritten.

    :param size_rule: ``(expected bytes, exact)``: exactly that many, or at most (a session
        without a total size).
    :returns: the part's size.
    """
    expected, known = size_rule
    known_part = ctx.store.one(
        "SELECT 1 FROM multipart_parts WHERE session_id = ? AND part_number = ?",
        (session_id, number),
    )
    if known_part is not None:
        # Committed at once (not with the request's unit of work, which a failure rolls back).
        with ctx.store.transaction(standalone=True):
            _check_open(ctx, session_id)
            ctx.store.execute(
                "DELETE FROM multipart_parts WHERE session_id = ? AND part_number = ?",
                (session_id, number),
            )
    path = os.path.join(directory, DATA)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        received, _ = drain(
            ctx.body_stream(),
            expected,
            lambda: invalid_parameters(rule + "."),
            _At(fd, (number - 1) * part_size),  # type: ignore[arg-type]
            hashed=False,
        )
        if received != expected if known else received > expected:
            raise invalid_parameters(rule + f", got {received}.")
        datasync(fd)
        # The file may be new, or made by a part that failed before this sync.
        sync_entry_once(fd, path)
    except OSError as exc:
        if is_disk_full(exc):
            raise insufficient_storage() from None
        raise
    finally:
        os.close(fd)
    _record_in_place(ctx, session_id, number, received)
    return received


def _placed(ctx: RequestContext, session_id: str, number: int, placed: InPlaceBody) -> int:
    """Finish a part the HTTP server wrote in place as it arrived (see :func:`part_precheck`):
    make it durable, then record it. :returns: the part's size."""
    placed.close()
    if not placed.complete:  # the server answers a failed write itself; never seen here
        raise ApiError(500, "internal_error", "The part was not stored.")
    try:
        placed.finish()
    except OSError as exc:
        if is_disk_full(exc):
            raise insufficient_storage() from None
        raise
    _record_in_place(ctx, session_id, number, placed.received)
    return placed.received


def _record_in_place(ctx: RequestContext, session_id: str, number: int, received: int) -> None:
    """Record a part written (and synced) in place, with a random version tag."""
    # The state check and the row are one step against a concurrent complete or abort.
    with ctx.store.transaction():
        _check_open(ctx, session_id)
        _record_part(ctx, session_id, number, received, secrets.token_hex(16))


def _gone() -> ApiError:
    return ApiError(
        409,
        "conflict",
        "The blob store no longer has this multipart upload; abort it and start again.",
    )


def _unreachable() -> ApiError:
    return ApiError(503, "service_unavailable", "The blob store cannot be reached; try again.")


def _blob_call(call: Callable[[], T]) -> T:
    """Run a blob store call of a remote session: a missing upload -> 409, an unreachable
    store -> 503."""
    try:
        return call()
    except FileNotFoundError:
        raise _gone() from None
    except OSError as exc:
        log.warning("blob store call failed: %s", exc)
        raise _unreachable() from None


def _part_rule(number: int, expected: int, known: bool) -> str:
    return f"Part {number} must be {'exactly' if known else 'at most'} {expected} bytes"


class _Concat:
    """A read-only stream over the part files, in order."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.current: IO[bytes] | None = None

    def read(self, n: int = -1) -> bytes:
        while True:
            if self.current is None:
                if not self.paths:
                    return b""
                self.current = open(self.paths.pop(0), "rb")  # noqa: SIM115
            data = self.current.read(n)
            if data:
                return data
            self.current.close()
            self.current = None

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


def complete_upload(ctx: RequestContext, account_id: str, session_id: str) -> Response:
    account, row = _session(ctx, account_id, session_id)
    # The claim commits at once (parallel completes and parts see it); the file, its activity,
    # the session's removal and the stored answer are the request's one unit of work.
    with ctx.store.transaction(standalone=True):
        claimed = ctx.store.execute(
            "UPDATE multipart SET state = 'completing', owner = ? WHERE id = ? AND state = 'open'",
            (ctx.core.instance_id, session_id),
        ).rowcount
    if not claimed:
        raise _busy(session_id)

    def reopen() -> None:
        ctx.store.execute(
            "UPDATE multipart SET state = 'open', owner = NULL WHERE id = ?"
            " AND state = 'completing'",
            (session_id,),
        )

    ctx.store.after_rollback(reopen)  # a crash instead: start-up recovery reopens it
    return _complete(ctx, account, row, session_id)


def _complete(
    ctx: RequestContext, account: sqlite3.Row, row: sqlite3.Row, session_id: str
) -> Response:
    acc = int(account["id"])
    size, part_size = int(row["size"]), int(row["part_size"])
    parts = {
        int(p["part_number"]): int(p["size"])
        for p in ctx.store.all(
            "SELECT part_number, size FROM multipart_parts WHERE session_id = ?", (session_id,)
        )
    }
    if size == UNKNOWN_SIZE:
        size = _size_from_parts(parts, part_size)
    count = part_count(size, part_size)
    missing = [n for n in range(1, count + 1) if n not in parts]
    if missing:
        shown = ", ".join(str(n) for n in missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise invalid_parameters(f"Cannot complete the upload: missing parts {shown} of {count}.")
    total = sum(parts.values())
    if total != size:
        raise invalid_parameters(
            f"Cannot complete the upload: received {total} bytes, expected {size}."
        )
    storage = storage_backend(ctx, account)
    directory = _dir(ctx, session_id)
    if row["upload_id"]:
        obj = _complete_remote(ctx, storage, row, size, count)
    elif _part_files(directory):
        obj = _upload_stream(
            ctx,
            storage,
            row,
            _Concat([os.path.join(directory, str(n)) for n in range(1, count + 1)]),
        )
    else:
        obj = _complete_in_place(ctx, storage, row, size, count)
    if obj.size != size:
        raise ApiError(500, "internal_error", "The assembled file has the wrong size.")
    _remove(ctx, session_id)
    return json_response(serialize(ctx, acc, obj), 201)


def _upload_stream(
    ctx: RequestContext, storage: StorageBackend, row: sqlite3.Row, stream: Any
) -> StorageObject:
    """Hand a session's bytes to the backend as a normal upload (copied)."""
    try:
        return storage.upload(
            str(row["parent_id"]),
            str(row["name"]),
            stream,
            bool(row["overwrite"]),
            ctx.settings.max_upload_bytes,
        )
    finally:
        stream.close()


def _complete_in_place(
    ctx: RequestContext, storage: StorageBackend, row: sqlite3.Row, size: int, count: int
) -> StorageObject:
    """Insert the file of a session whose parts are in place in its ``data`` file: that file
    itself for a ``local`` account with blobs in the data dir (no byte copied; its etag is
    the SHA-256 of the parts' version tags, in order), else streamed to the backend."""
    path = os.path.join(_dir(ctx, str(row["id"])), DATA)
    tags = [
        str(p["etag"] or "")
        for p in ctx.store.all(
            "SELECT etag FROM multipart_parts WHERE session_id = ? AND part_number <= ?"
            " ORDER BY part_number",
            (row["id"], count),
        )
    ]
    local = isinstance(storage, LocalStorage) and not storage.blob_store.remote
    if local and os.path.getsize(path) == size:
        digest = hashlib.sha256("".join(tags).encode()).hexdigest()
        try:
            return cast(LocalStorage, storage).upload_file(
                str(row["parent_id"]), str(row["name"]), path, size, digest, bool(row["overwrite"])
            )
        except OSError as exc:  # no hard links here: copy the bytes instead
            log.info("multipart complete copies the file (no hard link: %s)", exc)
    return _upload_stream(ctx, storage, row, _Head(open(path, "rb"), size))  # noqa: SIM115


class _Head:
    """The first ``size`` bytes of a file (a session's file may hold bytes past the end of a
    session without a total size)."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        self.file = file
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        data = self.file.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.file.close()


def _complete_remote(
    ctx: RequestContext, storage: object, row: sqlite3.Row, size: int, count: int
) -> StorageObject:
    """Assemble a remote session's parts into its blob in the store, then insert the file.

    A complete that failed after the assembly (or died) left the blob assembled and the
    session open: the upload is gone from the store then, and the blob is used as it is.
    """
    if not isinstance(storage, LocalStorage):
        raise ApiError(500, "internal_error", "A remote multipart session of another service.")
    remote = storage.blob_store
    blob = str(row["blob"])
    key = blob_key(storage.account_id, blob)
    parts = [
        (int(p["part_number"]), str(p["etag"]))
        for p in ctx.store.all(
            "SELECT part_number, etag FROM multipart_parts WHERE session_id = ?"
            " AND part_number <= ? ORDER BY part_number",
            (row["id"], count),
        )
    ]
    try:
        remote.multipart_complete(key, str(row["upload_id"]), parts)
    except FileNotFoundError:
        if not _blob_call(lambda: remote.exists(key)):
            raise _gone() from None
    except OSError as exc:
        log.warning("blob store call failed: %s", exc)
        raise _unreachable() from None
    return storage.adopt_blob(
        str(row["parent_id"]), str(row["name"]), blob, size, bool(row["overwrite"])
    )


def _size_from_parts(parts: dict[int, int], part_size: int) -> int:
    """:returns: the total size of a session created without one, from its parts 1..N.

    :raises ApiError: 400 when no part arrived, or a part before the last one is short.
    """
    if not parts:
        raise invalid_parameters("Cannot complete the upload: no part was uploaded.")
    last = max(parts)
    short = [n for n in range(1, last) if n in parts and parts[n] != part_size]
    if short:
        raise invalid_parameters(
            f"Cannot complete the upload: part {short[0]} has {parts[short[0]]} bytes; every "
            f"part but the last must have {part_size}."
        )
    return part_size * (last - 1) + parts[last]


def _remove(ctx: RequestContext, session_id: str, completed: bool = True) -> None:
    with ctx.store.transaction():
        row = ctx.store.one("SELECT * FROM multipart WHERE id = ?", (session_id,))
        ctx.store.execute("DELETE FROM multipart_parts WHERE session_id = ?", (session_id,))
        ctx.store.execute("DELETE FROM multipart WHERE id = ?", (session_id,))
        # Parts go once the removal commits; a crash first leaves a folder without a
        # session, which start-up recovery removes (the sweep: S3 uploads and blobs).
        directory = _dir(ctx, session_id)
        ctx.store.after_commit(lambda: shutil.rmtree(directory, ignore_errors=True))
        if row is not None and row["upload_id"] and not completed:
            settings = ctx.settings
            ctx.store.after_commit(lambda: drop_multipart(blob_store(settings), row))


def remove_account_sessions(ctx: RequestContext, account_id: int) -> None:
    """Delete every multipart session (and its parts on disk) of an account."""
    for row in ctx.store.all("SELECT id FROM multipart WHERE account_id = ?", (account_id,)):
        _remove(ctx, str(row["id"]), completed=False)


def abort_upload(ctx: RequestContext, account_id: str, session_id: str) -> Response:
    _session(ctx, account_id, session_id)
    with ctx.store.transaction():
        state = ctx.store.one("SELECT state FROM multipart WHERE id = ?", (session_id,))
        if state is None:  # completed (or aborted) meanwhile
            raise not_found(f"Multipart upload not found: {session_id[:100]}")
        if state["state"] != "open":
            raise _busy(session_id)
        _remove(ctx, session_id, completed=False)
    return no_content()


ROUTES = [
    Route(A, ("POST",), init_upload),
    Route(A + "/<session_id>", ("GET",), get_upload),
    Route(A + "/<session_id>", ("PUT",), put_part, body=BODY_UPLOAD, precheck=part_precheck),
    Route(A + "/<session_id>", ("DELETE",), abort_upload),
    Route(A + "/<session_id>/complete", ("POST",), complete_upload),
]
