"""The ``local`` connector's contacts: address book rows in SQLite, photos in the blob store.

Tables (migration 500) reference ``accounts`` with ``ON DELETE CASCADE``:

* ``crm_contacts``: one row per contact holding its vCard text (without the photo), the
  columns listings sort and search on, and the photo's blob name;
* ``crm_groups``: groups (names unique per account, case-insensitively);
* ``crm_members``: which contact is in which group.

Photos are blobs of the blob store (:mod:`kloudless.server.blobs`; by default files under
``<data_dir>/accounts/<id>/contact-photos/``, with ``--blob-store s3://...`` objects of the bucket
under ``accounts/<id>/contact-photos/``) with random names, written to a temp file, fsync'ed and
put into the store before the row that names them commits; a replaced or
deleted photo's file is removed only after its transaction commits, so a crash never leaves a row
naming a missing file. Every change runs in one store transaction, which the API layer also uses
to append the activity event (so a change and its event commit together).

Etags are random per version (a new one on every change of the contact or of its groups).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from kloudless.server.activity import ActivityRecorder
from kloudless.server.blobs import (
    BlobStore,
    FileBlobStore,
    ReferencedNames,
    reclaim_unreferenced,
)
from kloudless.server.connectors import vcard_mapping as vcard
from kloudless.server.connectors.contacts_base import (
    SORT_SEPARATOR,
    ContactPhoto,
    ContactQuery,
    ContactRecord,
    ContactsBackend,
    GroupRecord,
    check_etag,
    search_text,
    sort_key,
)
from kloudless.server.connectors.local_storage import account_dir
from kloudless.server.errors import ApiError, invalid_parameters, naming_conflict, not_found
from kloudless.server.store import Store, now_iso, register_migration

log = logging.getLogger("kloudless.server")

__all__ = ["LocalContacts"]

MIGRATION_VERSION = 500

# No ';' inside this script except as statement separators (the store splits on it).
SCHEMA = """
CREATE TABLE crm_contacts (
    id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    uid TEXT NOT NULL,
    vcard TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    search TEXT NOT NULL,
    etag TEXT NOT NULL,
    photo_blob TEXT, photo_type TEXT, photo_size INTEGER,
    created TEXT NOT NULL, modified TEXT NOT NULL);
CREATE INDEX crm_contacts_name ON crm_contacts(account_id, sort_key, id);
CREATE INDEX crm_contacts_modified ON crm_contacts(account_id, modified, id);
CREATE TABLE crm_groups (
    id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL, etag TEXT NOT NULL,
    created TEXT NOT NULL, modified TEXT NOT NULL);
CREATE UNIQUE INDEX crm_groups_name ON crm_groups(account_id, name COLLATE NOCASE);
CREATE TABLE crm_members (
    group_id TEXT NOT NULL REFERENCES crm_groups(id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL REFERENCES crm_contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, contact_id));
CREATE INDEX crm_members_contact ON crm_members(contact_id)
"""

register_migration(MIGRATION_VERSION, SCHEMA)


def _binary_sort_keys(conn: sqlite3.Connection) -> None:
    """Migration 502: contact sort keys separate their parts with ``\x01`` instead of NUL
    (which PostgreSQL text cannot hold: creating a contact failed there), and PostgreSQL
    compares them bytewise (``COLLATE "C"``), as SQLite does, not by the database's locale
    (which ignores control characters)."""
    if isinstance(conn, sqlite3.Connection):
        # In Python: SQLite's replace() stops at a NUL.
        rows = conn.execute("SELECT id, sort_key FROM crm_contacts").fetchall()
        conn.executemany(
            "UPDATE crm_contacts SET sort_key = ? WHERE id = ?",
            [(str(r[1]).replace("\x00", SORT_SEPARATOR), r[0]) for r in rows if "\x00" in r[1]],
        )
    else:
        conn.execute('ALTER TABLE crm_contacts ALTER COLUMN sort_key TYPE TEXT COLLATE "C"')


register_migration(502, _binary_sort_keys)

#: Stores whose schema has been brought up to date since this module was imported.
_MIGRATED: weakref.WeakSet[Store] = weakref.WeakSet()
#: The blob store folder of an account's contact photos (``accounts/<id>/contact-photos/``).
PHOTO_FOLDER = "contact-photos"
_ORDER = {
    "name": "sort_key ASC, id ASC",
    "-name": "sort_key DESC, id DESC",
    "modified": "modified ASC, id ASC",
    "-modified": "modified DESC, id DESC",
}


def _new_id(prefix: str) -> str:
    # Random, URL-safe and opaque; never derived from user input.
    return prefix + secrets.token_urlsafe(12)


def _etag() -> str:
    return secrets.token_hex(8)


def reclaim_orphan_photos(store: Store, blobs: BlobStore, grace: float) -> int:
    """Remove photo blobs no contact names, once older than ``grace`` seconds: a kill between
    a photo's put and its row's commit, or between a commit and the removal of the photo it
    replaced, leaves one (the sweep does this together with the storage blobs).

    :returns: the number removed.
    """
    return reclaim_unreferenced(blobs, {PHOTO_FOLDER: referenced_photos(store)}, grace)


def referenced_photos(store: Store) -> ReferencedNames:
    """:returns: the photo blob names of an account that its contacts name (for
    :func:`~kloudless.server.blobs.reclaim_unreferenced`)."""

    def referenced(account_id: int) -> set[str]:
        if (
            store.one("SELECT 1 FROM schema_versions WHERE version = ?", (MIGRATION_VERSION,))
            is None
        ):
            return set()  # no contacts tables yet: no contact names a photo
        rows = store.all(
            "SELECT photo_blob FROM crm_contacts WHERE account_id = ? AND photo_blob IS NOT NULL",
            (account_id,),
        )
        return {str(r["photo_blob"]) for r in rows}

    return referenced


class LocalContacts(ContactsBackend):
    """Contacts of one ``local`` account.

    :param store: the server store. :param data_dir: the server data dir.
    :param account_id: the account. :param activity: records its changes (in their
        transactions).
    """

    def __init__(
        self,
        store: Store,
        data_dir: str,
        account_id: int,
        activity: ActivityRecorder | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.store = store
        self.account_id = int(account_id)
        self.activity = activity
        #: Where the photos are (default: files in the data dir).
        self.blob_store = blobs if blobs is not None else FileBlobStore(data_dir)
        self.base = account_dir(data_dir, self.account_id)
        self.photos = os.path.join(self.base, PHOTO_FOLDER)
        self.tmp = os.path.join(self.base, "tmp")
        if store not in _MIGRATED:
            # The store may have been opened before this module registered its migration.
            store.migrate()
            _MIGRATED.add(store)

    def _event(self, type_: str, obj: ContactRecord | GroupRecord) -> None:
        """Record a change; called inside its transaction, so both commit together."""
        if self.activity is not None:
            self.activity.record(type_, obj)

    # -- rows ----------------------------------------------------------------------------------
    def _row(self, contact_id: str) -> sqlite3.Row:
        row = self.store.one(
            "SELECT * FROM crm_contacts WHERE id = ? AND account_id = ?",
            (contact_id, self.account_id),
        )
        if row is None:
            raise not_found(f"Contact not found: {contact_id[:100]}")
        return row

    def _group_row(self, group_id: str) -> sqlite3.Row:
        row = self.store.one(
            "SELECT * FROM crm_groups WHERE id = ? AND account_id = ?",
            (group_id, self.account_id),
        )
        if row is None:
            raise not_found(f"Contact group not found: {group_id[:100]}")
        return row

    def _groups_of(self, contact_id: str) -> list[str]:
        rows = self.store.all(
            "SELECT m.group_id FROM crm_members m JOIN crm_groups g ON g.id = m.group_id"
            " WHERE m.contact_id = ? ORDER BY g.name COLLATE NOCASE, g.id",
            (contact_id,),
        )
        return [str(r["group_id"]) for r in rows]

    def _record(self, row: sqlite3.Row, groups: list[str] | None = None) -> ContactRecord:
        card = vcard.parse_card(row["vcard"])
        fields = vcard.fields_of(card)
        fields["groups"] = self._groups_of(row["id"]) if groups is None else groups
        photo = vcard.photo_info(card)
        if row["photo_blob"]:
            photo = {"content_type": row["photo_type"], "size": int(row["photo_size"])}
        return ContactRecord(
            id=row["id"],
            etag=row["etag"],
            fields=fields,
            created=row["created"],
            modified=row["modified"],
            photo=photo,
            raw={
                "vcard": row["vcard"],
                "uid": row["uid"],
                "unknown_properties": vcard.unknown_properties(card),
            },
        )

    def _group(self, row: sqlite3.Row) -> GroupRecord:
        count = self.store.one(
            "SELECT COUNT(*) AS n FROM crm_members WHERE group_id = ?", (row["id"],)
        )
        return GroupRecord(
            id=row["id"],
            name=row["name"],
            etag=row["etag"],
            created=row["created"],
            modified=row["modified"],
            count=int(count["n"]) if count else 0,
            raw=dict(row),
        )

    # -- contacts ------------------------------------------------------------------------------
    def list_contacts(self, query: ContactQuery) -> tuple[list[ContactRecord], int]:
        where = ["c.account_id = ?"]
        params: list[Any] = [self.account_id]
        if query.q:
            where.append("instr(c.search, ?) > 0")
            params.append(query.q.casefold())
        if query.updated_after:
            where.append("c.modified > ?")
            params.append(query.updated_after)
        if query.group:
            self._group_row(query.group)
            where.append("c.id IN (SELECT contact_id FROM crm_members WHERE group_id = ?)")
            params.append(query.group)
        clause = " AND ".join(where)
        total_row = self.store.one(
            f"SELECT COUNT(*) AS n FROM crm_contacts c WHERE {clause}", params
        )
        rows = self.store.all(
            f"SELECT c.* FROM crm_contacts c WHERE {clause} ORDER BY {_ORDER[query.order]}"
            " LIMIT ? OFFSET ?",
            [*params, query.limit, query.offset],
        )
        return [self._record(r) for r in rows], int(total_row["n"]) if total_row else 0

    def get_contact(self, contact_id: str) -> ContactRecord:
        return self._record(self._row(contact_id))

    def _check_groups(self, group_ids: list[str]) -> None:
        for group_id in group_ids:
            if (
                self.store.one(
                    "SELECT 1 FROM crm_groups WHERE id = ? AND account_id = ?",
                    (group_id, self.account_id),
                )
                is None
            ):
                raise invalid_parameters(f"No such contact group: {group_id[:100]}")

    def _set_groups(self, contact_id: str, group_ids: list[str]) -> None:
        old = set(self._groups_of(contact_id))
        self.store.execute("DELETE FROM crm_members WHERE contact_id = ?", (contact_id,))
        for group_id in group_ids:
            self.store.execute(
                "INSERT INTO crm_members (group_id, contact_id) VALUES (?, ?)",
                (group_id, contact_id),
            )
        # A group's etag covers its membership.
        for group_id in old.symmetric_difference(group_ids):
            self.store.execute(
                "UPDATE crm_groups SET etag = ?, modified = ? WHERE id = ?",
                (_etag(), now_iso(), group_id),
            )

    def _insert(self, card: Any, group_ids: list[str]) -> str:
        """Insert a card (its embedded photo moves to the blob store). :returns: the id."""
        photo = vcard.photo_of(card)
        if photo is not None:
            vcard.set_photo(card, None)
        contact_id = _new_id("con_")
        fields = vcard.fields_of(card)
        uid = vcard.uid_of(card)
        if uid is None:
            uid = contact_id
            card.add("uid").value = uid
        now = now_iso()
        self.store.execute(
            "INSERT INTO crm_contacts (id, account_id, uid, vcard, sort_key, search, etag,"
            " created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                contact_id,
                self.account_id,
                uid,
                vcard.serialize(card),
                sort_key(fields),
                search_text(fields),
                _etag(),
                now,
                now,
            ),
        )
        self._set_groups(contact_id, group_ids)
        if photo is not None:
            self._store_photo(contact_id, None, photo)
        return contact_id

    def create_contact(self, fields: Mapping[str, Any]) -> ContactRecord:
        card = vcard.new_card()
        full = {**vcard.fields_of(card), **fields}
        vcard.apply_fields(card, fields, full)
        vcard.touch(card)
        groups = list(fields.get("groups") or [])
        with self.store.transaction():
            self._check_groups(groups)
            record = self.get_contact(self._insert(card, groups))
            self._event("add", record)
            return record

    def import_vcards(self, text: str) -> list[ContactRecord]:
        cards = vcard.parse_cards(text)
        with self.store.transaction():
            ids = [self._insert(card, self._import_groups(card)) for card in cards]
            records = [self.get_contact(i) for i in ids]
            for record in records:
                self._event("add", record)
            return records

    def _import_groups(self, card: Any) -> list[str]:
        """Turn an imported card's ``CATEGORIES`` into group memberships (groups are made)."""
        ids = []
        for name in vcard.categories(card)[:100]:
            name = name.replace(";", " ")[:255].strip()
            row = self.store.one(
                "SELECT id FROM crm_groups WHERE account_id = ? AND name = ? COLLATE NOCASE",
                (self.account_id, name),
            )
            if row is None:
                group = self._insert_group(name)
                self._event("add", group)
                ids.append(group.id)
            else:
                ids.append(str(row["id"]))
        vcard.set_categories(card, [])
        return list(dict.fromkeys(ids))

    def update_contact(
        self, contact_id: str, changes: Mapping[str, Any], if_match: str | None = None
    ) -> ContactRecord:
        with self.store.transaction():
            row = self._row(contact_id)
            check_etag(if_match, row["etag"], "contact")
            card = vcard.parse_card(row["vcard"])
            fields = {**vcard.fields_of(card), **changes}
            vcard.apply_fields(card, changes, fields)
            vcard.touch(card)
            if "groups" in changes:
                self._check_groups(changes["groups"])
                self._set_groups(contact_id, changes["groups"])
            self._save(row, card)
            record = self.get_contact(contact_id)
            self._event("update", record)
            return record

    def _save(self, row: sqlite3.Row, card: Any, **photo: Any) -> None:
        fields = vcard.fields_of(card)
        sets = {
            "vcard": vcard.serialize(card),
            "sort_key": sort_key(fields),
            "search": search_text(fields),
            "etag": _etag(),
            "modified": now_iso(),
            **photo,
        }
        self.store.execute(
            f"UPDATE crm_contacts SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
            [*sets.values(), row["id"]],
        )

    def delete_contact(self, contact_id: str, if_match: str | None = None) -> ContactRecord:
        with self.store.transaction():
            row = self._row(contact_id)
            check_etag(if_match, row["etag"], "contact")
            record = self._record(row)
            for group_id in record.fields["groups"]:
                self.store.execute(
                    "UPDATE crm_groups SET etag = ?, modified = ? WHERE id = ?",
                    (_etag(), now_iso(), group_id),
                )
            self.store.execute("DELETE FROM crm_contacts WHERE id = ?", (contact_id,))
            self._drop_blob_after_commit(row["photo_blob"])
            self._event("delete", record)
        return record

    def export_vcard(self, contact_id: str) -> str:
        row = self._row(contact_id)
        card = vcard.parse_card(row["vcard"])
        names = [self._group_row(g)["name"] for g in self._groups_of(contact_id)]
        if names:
            vcard.set_categories(card, names)
        if row["photo_blob"]:
            vcard.set_photo(card, self.get_photo(contact_id))
        return vcard.serialize(card, data_uri=True)

    # -- groups --------------------------------------------------------------------------------
    def list_groups(self) -> list[GroupRecord]:
        rows = self.store.all(
            "SELECT * FROM crm_groups WHERE account_id = ? ORDER BY name COLLATE NOCASE, id",
            (self.account_id,),
        )
        return [self._group(r) for r in rows]

    def get_group(self, group_id: str) -> GroupRecord:
        return self._group(self._group_row(group_id))

    def _insert_group(self, name: str) -> GroupRecord:
        existing = self.store.one(
            "SELECT id FROM crm_groups WHERE account_id = ? AND name = ? COLLATE NOCASE",
            (self.account_id, name),
        )
        if existing is not None:
            raise naming_conflict(f"A contact group named {name!r} exists.", existing["id"])
        group_id, now = _new_id("grp_"), now_iso()
        self.store.execute(
            "INSERT INTO crm_groups (id, account_id, name, etag, created, modified)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (group_id, self.account_id, name, _etag(), now, now),
        )
        return self.get_group(group_id)

    def create_group(self, fields: Mapping[str, Any]) -> GroupRecord:
        with self.store.transaction():
            group = self._insert_group(fields["name"])
            self._event("add", group)
            return group

    def update_group(
        self, group_id: str, fields: Mapping[str, Any], if_match: str | None = None
    ) -> GroupRecord:
        with self.store.transaction():
            row = self._group_row(group_id)
            check_etag(if_match, row["etag"], "contact group")
            clash = self.store.one(
                "SELECT id FROM crm_groups WHERE account_id = ? AND name = ? COLLATE NOCASE"
                " AND id != ?",
                (self.account_id, fields["name"], group_id),
            )
            if clash is not None:
                raise naming_conflict(
                    f"A contact group named {fields['name']!r} exists.", clash["id"]
                )
            self.store.execute(
                "UPDATE crm_groups SET name = ?, etag = ?, modified = ? WHERE id = ?",
                (fields["name"], _etag(), now_iso(), group_id),
            )
            group = self.get_group(group_id)
            self._event("update", group)
            return group

    def delete_group(self, group_id: str, if_match: str | None = None) -> GroupRecord:
        with self.store.transaction():
            row = self._group_row(group_id)
            check_etag(if_match, row["etag"], "contact group")
            record = self._group(row)
            # Members stay; their etags change because their groups did.
            self.store.execute(
                "UPDATE crm_contacts SET etag = lower(hex(randomblob(8))), modified = ?"
                " WHERE id IN (SELECT contact_id FROM crm_members WHERE group_id = ?)",
                (now_iso(), group_id),
            )
            self.store.execute("DELETE FROM crm_groups WHERE id = ?", (group_id,))
            self._event("delete", record)
        return record

    # -- photos --------------------------------------------------------------------------------
    def _key(self, blob: str) -> str:
        if not blob or "/" in blob or "\\" in blob or blob.startswith("."):
            raise ApiError(500, "internal_error", "Corrupt photo reference.")
        return f"accounts/{self.account_id}/{PHOTO_FOLDER}/{blob}"

    def _dirs(self) -> None:
        folders = [os.path.dirname(self.base), self.base, self.tmp]
        if self.blob_store.local_path(self._key("x")) == os.path.join(self.photos, "x"):
            folders.append(self.photos)
        for path in folders:
            if os.path.islink(path):
                raise ApiError(500, "internal_error", "The account folder may not be a symlink.")
            os.makedirs(path, exist_ok=True)

    def _drop_blob_after_commit(self, blob: str | None) -> None:
        if not blob:
            return
        key = self._key(blob)

        def drop() -> None:
            try:
                self.blob_store.delete(key)
            except OSError as exc:  # pragma: no cover - an unreachable blob store
                log.warning("removing contact photo %s failed (the sweep retries): %s", blob, exc)

        self.store.after_commit(drop)

    def _delete_quietly(self, blob: str) -> None:
        """Remove a photo blob no committed row names (what fails, the orphan sweep removes:
        :func:`reclaim_orphan_photos`)."""
        with contextlib.suppress(OSError):
            self.blob_store.delete(self._key(blob))

    @contextlib.contextmanager
    def _new_blob(self, data: bytes) -> Iterator[str]:
        """Write ``data`` to a new blob (fsync'ed, put into the store); removed again when the
        block fails. :returns: the blob name."""
        self._dirs()
        fd, temp = tempfile.mkstemp(dir=self.tmp, prefix="ph-")
        blob = secrets.token_hex(16)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            try:
                self.blob_store.put_file(self._key(blob), temp)
            except OSError as exc:
                if not self.blob_store.remote:
                    raise  # a full disk is a 507 (the app's error handler)
                log.warning("storing a contact photo failed: %s", exc)
                raise ApiError(
                    503, "service_unavailable", "The blob store cannot be reached; try again."
                ) from None
            # The unit of work may still roll back after the block (a later write fails).
            self.store.after_rollback(lambda: self._delete_quietly(blob))
            yield blob
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            self._delete_quietly(blob)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)  # uploaded (remote stores): the local copy goes

    def _store_photo(self, contact_id: str, old_blob: str | None, photo: ContactPhoto) -> None:
        with self._new_blob(photo.data) as blob:
            self.store.execute(
                "UPDATE crm_contacts SET photo_blob = ?, photo_type = ?, photo_size = ?"
                " WHERE id = ?",
                (blob, photo.content_type, len(photo.data), contact_id),
            )
            self._drop_blob_after_commit(old_blob)

    def get_photo(self, contact_id: str) -> ContactPhoto:
        row = self._row(contact_id)
        if not row["photo_blob"]:
            photo = vcard.photo_of(vcard.parse_card(row["vcard"]))
            if photo is None:
                raise not_found("The contact has no photo.")
            return photo
        try:
            with self.blob_store.open(self._key(row["photo_blob"])) as handle:
                return ContactPhoto(handle.read(), row["photo_type"])
        except FileNotFoundError:
            raise not_found("The contact's photo file is missing.") from None
        except OSError as exc:
            log.warning("reading a contact photo failed: %s", exc)
            raise ApiError(500, "internal_error", "The contact's photo cannot be read.") from None

    def put_photo(
        self, contact_id: str, photo: ContactPhoto, if_match: str | None = None
    ) -> ContactRecord:
        with self.store.transaction():
            row = self._row(contact_id)
            check_etag(if_match, row["etag"], "contact")
            card = vcard.parse_card(row["vcard"])
            vcard.set_photo(card, None)  # a linked photo is replaced too
            self._save(row, card)
            self._store_photo(contact_id, row["photo_blob"], photo)
            record = self.get_contact(contact_id)
            self._event("update", record)
            return record

    def delete_photo(self, contact_id: str, if_match: str | None = None) -> ContactRecord:
        with self.store.transaction():
            row = self._row(contact_id)
            check_etag(if_match, row["etag"], "contact")
            card = vcard.parse_card(row["vcard"])
            if not row["photo_blob"] and vcard.photo_info(card) is None:
                raise not_found("The contact has no photo.")
            vcard.set_photo(card, None)
            self._save(row, card, photo_blob=None, photo_type=None, photo_size=None)
            self._drop_blob_after_commit(row["photo_blob"])
            record = self.get_contact(contact_id)
            self._event("update", record)
            return record
