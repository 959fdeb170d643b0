"""The fsync floor of a small upload (benchmark 5c), in this process or behind a bare waitress.

:class:`FsyncFloor` does the durable steps of one small upload and nothing else. Run as a
module, ``python -m benchmarks._floor FOLDER``, this module serves a bare waitress WSGI app on a
free 127.0.0.1 port (no kloudless code is imported) that answers every ``POST`` by reading its
body, doing :meth:`FsyncFloor.step` with it in ``FOLDER`` and sending a small JSON body: the
floor of an upload over HTTP, nothing but HTTP and the syncs. With ``--blob-file`` the bytes go
to a file of their own, synced with its folder before the commit (the durable steps of a file
larger than ``Settings.inline_file_bytes``); with ``--no-sync`` it does the blob file's writes
without any sync (``synchronous=OFF``): what a server that answers before the bytes are on disk
does at least (benchmark 8b). Prints ``READY <base_url>`` and exits when its stdin closes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
from typing import Any, Callable

SMALL = b"k" * 4096
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class FsyncFloor:
    """The durable steps of one small upload, nothing else, in ``folder``: commit one SQLite
    transaction holding the bytes with their row (WAL, ``synchronous=FULL``, as the server's
    store; a file of at most ``Settings.inline_file_bytes``).

    :param blob_file: the steps of a larger file instead: write the bytes to a file of their
        own, ``fdatasync`` them, rename the file into its folder, ``fsync`` the folder, commit
        one row naming the file.
    :param durable: ``False`` skips every sync (no ``fdatasync``, no folder ``fsync``, SQLite's
        ``synchronous=OFF``): the same writes, answered before they are on disk.
    """

    def __init__(self, folder: str, durable: bool = True, blob_file: bool = False) -> None:
        self.folder = os.path.join(folder, "blobs")
        os.makedirs(self.folder)
        self.db = sqlite3.connect(
            os.path.join(folder, "floor.sqlite3"), isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self.durable = durable
        self.blob_file = blob_file
        self.db.execute(
            "CREATE TABLE files (id TEXT PRIMARY KEY, size INTEGER, blob TEXT, data BLOB)"
        )
        self.count = 0
        self._lock = threading.Lock()  # waitress may run two requests on two threads

    def step(self, data: bytes = SMALL) -> str:
        """Write ``data`` durably and commit one row holding or naming it.

        :returns: the row's id.
        """
        with self._lock:
            self.count += 1
            count = self.count
        row_id = f"file-{count}"
        if not self.blob_file:
            with self._lock:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute(
                    "INSERT INTO files VALUES (?, ?, NULL, ?)", (row_id, len(data), data)
                )
                self.db.execute("COMMIT")
            return row_id
        temp = os.path.join(self.folder, f".t-{count}")
        final = os.path.join(self.folder, f"b-{count}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            if self.durable:
                _datasync(fd)
        finally:
            os.close(fd)
        os.rename(temp, final)
        if self.durable:
            dir_fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT INTO files VALUES (?, ?, ?, NULL)", (row_id, len(data), final))
            self.db.execute("COMMIT")
        return row_id

    def close(self) -> None:
        self.db.close()


class FloorApp:
    """The bare WSGI app of the HTTP floor: ``POST`` → :meth:`FsyncFloor.step` → 201 JSON."""

    def __init__(self, floor: FsyncFloor) -> None:
        self.floor = floor

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["REQUEST_METHOD"] != "POST":
            start_response("405 Method Not Allowed", [("Content-Length", "0")])
            return [b""]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(length)
        row_id = self.floor.step(data)
        body = json.dumps({"id": row_id, "type": "file", "size": len(data)}).encode()
        start_response(
            "201 Created",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


def main(argv: list[str]) -> int:
    """:param argv: ``[folder]`` (created; the floor's files go there), then ``--blob-file``
    for the floor of a file in a blob of its own, ``--no-sync`` for the blob file's writes
    without syncs. :returns: never."""
    from ._stub import serve

    durable = "--no-sync" not in argv[1:]
    floor = FsyncFloor(argv[0], durable, blob_file="--blob-file" in argv[1:] or not durable)
    serve(FloorApp(floor), 8, "floor")  # as many threads as the server's default
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
