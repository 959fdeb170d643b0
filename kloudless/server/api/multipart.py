"""Multipart (chunked) uploads (spec §5.4, COMMON protocol details).

Sessions live in the ``multipart`` tables and their parts in
``<data_dir>/multipart/<session id>/<part number>``, so they survive restarts. Parts may arrive
in any order and more than once (each PUT replaces the part atomically). ``complete`` checks that
every part is present and the total size matches, then hands the concatenated parts to the
account's storage backend like a normal upload.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import sqlite3
import tempfile
from typing import IO, Any

from werkzeug.wrappers import Response

from ..app import RequestContext, Route, json_response, no_content, parse_int
from ..connectors.base import validate_name
from ..errors import ApiError, invalid_parameters, not_found, too_large
from ..store import now_iso
from .storage import serialize

A = "/accounts/<account_id>/storage/multipart"


def _dir(ctx: RequestContext, session_id: str) -> str:
    return os.path.join(ctx.settings.data_dir, "multipart", session_id)


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
    return {
        "id": row["id"],
        "account": acc,
        "name": row["name"],
        "parent_id": row["parent_id"],
        "size": int(row["size"]),
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
    return account, row


def init_upload(ctx: RequestContext, account_id: str) -> Response:
    account = ctx.account(account_id)
    storage = ctx.storage(account)
    body = ctx.json_body()
    name = validate_name(body.get("name"))
    parent = body.get("parent_id", "root")
    if not isinstance(parent, str) or not parent:
        raise invalid_parameters("'parent_id' must be a folder id.")
    size = body.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise invalid_parameters("'size' (total bytes, an integer >= 0) is required.")
    if size > ctx.settings.max_upload_bytes:
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
    session_id = secrets.token_urlsafe(16)
    os.makedirs(_dir(ctx, session_id), exist_ok=True)
    ctx.store.execute(
        "INSERT INTO multipart VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            session_id,
            int(account["id"]),
            name,
            parent,
            size,
            ctx.settings.multipart_part_size,
            int(overwrite),
            now_iso(),
        ),
    )
    row = ctx.store.one("SELECT * FROM multipart WHERE id = ?", (session_id,))
    assert row is not None
    return json_response(serialize_session(ctx, row), 201)


def get_upload(ctx: RequestContext, account_id: str, session_id: str) -> Response:
    _, row = _session(ctx, account_id, session_id)
    return json_response(serialize_session(ctx, row))


def put_part(ctx: RequestContext, account_id: str, session_id: str) -> Response:
    _, row = _session(ctx, account_id, session_id)
    size, part_size = int(row["size"]), int(row["part_size"])
    count = part_count(size, part_size)
    number = parse_int(ctx.request.args.get("part_number"), "part_number", 0, 1, count)
    if number == 0:
        raise invalid_parameters("Query parameter 'part_number' (1-based) is required.")
    expected = part_size if number < count else size - part_size * (count - 1)
    length = ctx.request.content_length
    if length is not None and length != expected:
        raise invalid_parameters(f"Part {number} must be exactly {expected} bytes, got {length}.")
    directory = _dir(ctx, session_id)
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".part-")
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            stream = ctx.body_stream()
            while True:
                chunk = stream.read(256 * 1024)
                if not chunk:
                    break
                received += len(chunk)
                if received > expected:
                    raise invalid_parameters(f"Part {number} must be exactly {expected} bytes.")
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if received != expected:
            raise invalid_parameters(
                f"Part {number} must be exactly {expected} bytes, got {received}."
            )
        os.replace(temp, os.path.join(directory, str(number)))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    ctx.store.execute(
        "INSERT OR REPLACE INTO multipart_parts VALUES (?, ?, ?)", (session_id, number, received)
    )
    return json_response({"part_number": number, "size": received})


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
    acc = int(account["id"])
    size, part_size = int(row["size"]), int(row["part_size"])
    count = part_count(size, part_size)
    parts = {
        int(p["part_number"]): int(p["size"])
        for p in ctx.store.all(
            "SELECT part_number, size FROM multipart_parts WHERE session_id = ?", (session_id,)
        )
    }
    missing = [n for n in range(1, count + 1) if n not in parts]
    if missing:
        shown = ", ".join(str(n) for n in missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise invalid_parameters(f"Cannot complete the upload: missing parts {shown} of {count}.")
    total = sum(parts.values())
    if total != size:
        raise invalid_parameters(
            f"Cannot complete the upload: received {total} bytes, expected {size}."
        )
    directory = _dir(ctx, session_id)
    stream = _Concat([os.path.join(directory, str(n)) for n in range(1, count + 1)])
    try:
        storage = ctx.storage(account)
        overwrite = bool(row["overwrite"])
        obj = storage.upload(
            str(row["parent_id"]),
            str(row["name"]),
            stream,  # type: ignore
            overwrite,
            ctx.settings.max_upload_bytes,
        )
    finally:
        stream.close()
    if obj.size != size:
        raise ApiError(500, "internal_error", "The assembled file has the wrong size.")
    _remove(ctx, session_id)
    data = serialize(ctx, acc, obj)
    ctx.record_activity(acc, "add", data)
    return json_response(data, 201)


def _remove(ctx: RequestContext, session_id: str) -> None:
    with ctx.store.transaction():
        ctx.store.execute("DELETE FROM multipart_parts WHERE session_id = ?", (session_id,))
        ctx.store.execute("DELETE FROM multipart WHERE id = ?", (session_id,))
    shutil.rmtree(_dir(ctx, session_id), ignore_errors=True)


def remove_account_sessions(ctx: RequestContext, account_id: int) -> None:
    """Delete every multipart session (and its parts on disk) of an account."""
    for row in ctx.store.all("SELECT id FROM multipart WHERE account_id = ?", (account_id,)):
        _remove(ctx, str(row["id"]))


def abort_upload(ctx: RequestContext, account_id: str, session_id: str) -> Response:
    _session(ctx, account_id, session_id)
    _remove(ctx, session_id)
    return no_content()


ROUTES = [
    Route(A, ("POST",), init_upload),
    Route(A + "/<session_id>", ("GET",), get_upload),
    Route(A + "/<session_id>", ("PUT",), put_part),
    Route(A + "/<session_id>", ("DELETE",), abort_upload),
    Route(A + "/<session_id>/complete", ("POST",), complete_upload),
]
