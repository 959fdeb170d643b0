"""Folder snapshots of WebDAV accounts, for detecting changes made directly on the upstream.

For each listed folder the connector keeps ``{member name: [kind, signature]}`` (signature: the
ETag, else ``getlastmodified`` and size). The next listing compares against it.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from kloudless.server.store import register_migration

SNAPSHOT_MIGRATION = 200
SNAPSHOT_SCHEMA = """
    CREATE TABLE IF NOT EXISTS dav_folder_snapshots (
        account_id INTEGER NOT NULL, folder TEXT NOT NULL, members TEXT NOT NULL,
        PRIMARY KEY (account_id, folder));
"""
# A numbered migration when this module is imported before the Store opens; the backend also
# creates the table on first use (idempotent) because the registry imports connectors lazily.
register_migration(SNAPSHOT_MIGRATION, SNAPSHOT_SCHEMA)
_SCHEMA_READY: set[str] = set()


def _parent(path: str) -> str:
    return posixpath.dirname(path.rstrip("/")) or "/"


class Snapshots:
    """The snapshots of one account in the server's store.

    :param store: the server's :class:`~kloudless.server.store.Store`.
    :param account_id: the account.
    """

    def __init__(self, store: Any, account_id: int) -> None:
        self.store = store
        self.account_id = int(account_id)
        if store.path not in _SCHEMA_READY:
            store.execute(SNAPSHOT_SCHEMA.strip().rstrip(";"))
            _SCHEMA_READY.add(store.path)

    def load(self, folder: str) -> dict[str, list[str]] | None:
        """:returns: the members recorded for ``folder``, or None if it was never listed."""
        row = self.store.one(
            "SELECT members FROM dav_folder_snapshots WHERE account_id = ? AND folder = ?",
            (self.account_id, folder),
        )
        return None if row is None else dict(json.loads(row["members"]))

    def save(self, folder: str, members: dict[str, list[str]]) -> None:
        """Record the members of ``folder``."""
        self.store.execute(
            "INSERT OR REPLACE INTO dav_folder_snapshots (account_id, folder, members)"
            " VALUES (?, ?, ?)",
            (self.account_id, folder, json.dumps(members, sort_keys=True)),
        )

    def note(self, path: str, kind: str, signature: str) -> None:
        """Record one member (changed through the API) if its folder has a snapshot."""
        folder = _parent(path)
        with self.store.transaction():  # serialises snapshot updates (and joins a unit of work)
            members = self.load(folder)
            if members is None:
                return
            members[posixpath.basename(path)] = [kind, signature]
            self.save(folder, members)

    def forget(self, path: str, subtree: bool) -> None:
        """Drop ``path`` from its folder's snapshot, and with ``subtree`` the snapshots below."""
        with self.store.transaction():
            folder = _parent(path)
            members = self.load(folder)
            if members is not None and posixpath.basename(path) in members:
                del members[posixpath.basename(path)]
                self.save(folder, members)
            if subtree:
                escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                self.store.execute(
                    "DELETE FROM dav_folder_snapshots WHERE account_id = ? AND"
                    " (folder = ? OR folder LIKE ? ESCAPE '\\')",
                    (self.account_id, path, escaped + "/%"),
                )

    def delete_all(self) -> None:
        """Drop every snapshot of the account (when it is deleted)."""
        self.store.execute(
            "DELETE FROM dav_folder_snapshots WHERE account_id = ?", (self.account_id,)
        )
