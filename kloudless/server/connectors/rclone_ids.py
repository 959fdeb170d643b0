"""Stable opaque ids for the path-based objects of rclone accounts.

rclone addresses objects by path. The API's ids must survive renames and moves made through the
API, so each path seen gets a random id (``F`` + 20 characters for files, ``D`` + 20 for folders)
in the ``rclone_ids`` table; a rename or move through the API moves the path of the object (and
of everything below a folder) and keeps the ids. An object renamed upstream is a new path: it
gets a new id (the change detection reports a delete and an add). ``root`` is the root folder.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from kloudless.server.store import register_migration

ROOT = "root"
MIGRATION = 700
SCHEMA = """
    CREATE TABLE IF NOT EXISTS rclone_ids (
        account_id INTEGER NOT NULL, id TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL,
        PRIMARY KEY (account_id, id));
    CREATE UNIQUE INDEX IF NOT EXISTS rclone_ids_path ON rclone_ids (account_id, path);
"""
register_migration(MIGRATION, SCHEMA)
_READY: set[str] = set()
_READY_LOCK = threading.Lock()
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _new_id(kind: str) -> str:
    letter = "F" if kind == "file" else "D"
    return letter + "".join(secrets.choice(_ALPHABET) for _ in range(20))


def kind_of(object_id: str) -> str | None:
    """:returns: ``file``/``folder`` for an id of this module's shape, ``folder`` for root,
    else None."""
    if object_id == ROOT:
        return "folder"
    if len(object_id) == 21 and object_id[0] in "FD" and object_id[1:].isalnum():
        return "file" if object_id[0] == "F" else "folder"
    return None


def _like_prefix(path: str) -> str:
    escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "/%"


class IdMap:
    """The ids of one account.

    :param store: the server's store.
    :param account_id: the account.
    """

    def __init__(self, store: Any, account_id: int) -> None:
        self.store = store
        self.account_id = int(account_id)
        with _READY_LOCK:
            if store.path not in _READY:
                # The registry may import this module after the store opened: create lazily.
                for statement in SCHEMA.strip().split(";"):
                    if statement.strip():
                        store.execute(statement)
                _READY.add(store.path)

    def id_for(self, path: str, kind: str) -> str:
        """:returns: the id of the object at ``path`` (``""`` is the root), made on first sight.

        A path that changed kind (a file where a folder was) gets a new id.
        """
        if path == "":
            return ROOT
        row = self.store.one(
            "SELECT id, kind FROM rclone_ids WHERE account_id = ? AND path = ?",
            (self.account_id, path),
        )
        if row is not None and row["kind"] == kind:
            return str(row["id"])
        with self.store.transaction():
            if row is not None:
                self.store.execute(
                    "DELETE FROM rclone_ids WHERE account_id = ? AND path = ?",
                    (self.account_id, path),
                )
            self.store.execute(
                "INSERT OR IGNORE INTO rclone_ids (account_id, id, path, kind) VALUES (?, ?, ?, ?)",
                (self.account_id, _new_id(kind), path, kind),
            )
            row = self.store.one(
                "SELECT id FROM rclone_ids WHERE account_id = ? AND path = ?",
                (self.account_id, path),
            )
        return str(row["id"])

    def path_of(self, object_id: str) -> tuple[str, str] | None:
        """:returns: ``(path, kind)`` of an id, or None when unknown."""
        if object_id == ROOT:
            return "", "folder"
        if kind_of(object_id) is None:
            return None
        row = self.store.one(
            "SELECT path, kind FROM rclone_ids WHERE account_id = ? AND id = ?",
            (self.account_id, object_id),
        )
        return None if row is None else (str(row["path"]), str(row["kind"]))

    def kind_at(self, path: str) -> str | None:
        """:returns: the kind recorded for ``path``, or None."""
        row = self.store.one(
            "SELECT kind FROM rclone_ids WHERE account_id = ? AND path = ?", (self.account_id, path)
        )
        return None if row is None else str(row["kind"])

    def child_folders(self, path: str) -> list[str]:
        """:returns: the paths of the folders known directly below ``path``."""
        prefix = f"{path}/" if path else ""
        rows = self.store.all(
            "SELECT path FROM rclone_ids WHERE account_id = ? AND kind = 'folder' AND"
            " path LIKE ? ESCAPE '\\' AND instr(substr(path, ?), '/') = 0",
            (self.account_id, _like_prefix(path) if path else "%", len(prefix) + 1),
        )
        return [str(r["path"]) for r in rows]

    def moved(self, old: str, new: str) -> None:
        """Record a rename or move made through the API: ``old`` (and everything below it) is
        now at ``new``; ids at ``new`` left from earlier objects are dropped."""
        with self.store.transaction():
            self.forget(new)
            self.store.execute(
                "UPDATE rclone_ids SET path = ? WHERE account_id = ? AND path = ?",
                (new, self.account_id, old),
            )
            self.store.execute(
                "UPDATE rclone_ids SET path = ? || substr(path, ?) WHERE account_id = ? AND"
                " path LIKE ? ESCAPE '\\'",
                (new, len(old) + 1, self.account_id, _like_prefix(old)),
            )

    def forget(self, path: str) -> None:
        """Drop the ids of ``path`` and of everything below it."""
        self.store.execute(
            "DELETE FROM rclone_ids WHERE account_id = ? AND (path = ? OR path LIKE ? ESCAPE '\\')",
            (self.account_id, path, _like_prefix(path)),
        )

    def delete_all(self) -> None:
        """Drop every id of the account (when it is deleted)."""
        self.store.execute("DELETE FROM rclone_ids WHERE account_id = ?", (self.account_id,))
