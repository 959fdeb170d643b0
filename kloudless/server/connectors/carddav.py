"""The ``carddav`` connector: the contacts API over an address book of a CardDAV server
(Radicale, Nextcloud, Baikal, iCloud, Fastmail, ...), plus pass-through.

Connecting (``POST /v1/accounts`` with ``service: carddav``, the consent page, ``kloudless
accounts create --service carddav``) takes the server URL (root, principal, address book home
or an address book itself), a user name and a password. The address book is discovered from the
URL and pinned in the account's config: the one named by ``addressbook`` (a collection name),
else the first by name, else a new one named "Contacts". ``caldav`` accounts offer the same
contacts API over the first address book of their server, found on first use.

Mapping:

* a contact is one vCard resource of the address book; its id is ``con_`` + base64url of the
  resource name (``<UID>.vcf`` for contacts made here). Its etag is the server's. Every write is
  conditional (``If-Match`` with the etag read, ``If-None-Match: *`` for new cards), so a card
  changed on the server in between answers 412 instead of being overwritten. vCards are read
  and written by :mod:`~kloudless.server.connectors.vcard_mapping`: unknown properties survive,
  new cards are vCard 3.0, 4.0 cards stay 4.0, photos are embedded in the 3.0 form that
  servers parsing with vobject (Radicale) keep intact.
* groups are vCard ``CATEGORIES`` (what Nextcloud and Radicale clients use): a group is a
  category name. Group ids and empty groups are kept in this server's database
  (``dav_contact_groups``); renaming or deleting a group rewrites the member cards.
* upstream changes (cards added, changed or removed by other CardDAV clients) are found with
  ``sync-collection`` (RFC 6578) from a token taken when the account is connected, or by
  comparing etags where the server has no sync support; they are recorded in the activity
  stream before it is read. Changes made through this API are known by their etags and not
  reported twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import sqlite3
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kloudless.server.activity import ActivityRecorder
from kloudless.server.connectors import vcard_mapping as vcard
from kloudless.server.connectors.base import AccountEnv, Connector, PassthroughRequest
from kloudless.server.connectors.carddav_client import (
    AddressBook,
    Card,
    CardDAVClient,
    SyncUnsupported,
)
from kloudless.server.connectors.contacts_base import (
    ContactPhoto,
    ContactQuery,
    ContactRecord,
    ContactsBackend,
    GroupRecord,
    check_etag,
    ensure_schema,
    find_row,
    search_text,
    sort_key,
)
from kloudless.server.connectors.webdav_auth import (
    check_address,
    clean_settings,
    credentials,
    stored_config,
)
from kloudless.server.connectors.webdav_client import WebDAVClient, client_for
from kloudless.server.connectors.webdav_passthrough import forward_request
from kloudless.server.errors import ApiError, invalid_parameters, naming_conflict, not_found
from kloudless.server.intents import Intent
from kloudless.server.outbound import DEFAULT_POLICY, OutboundPolicy, policy_for
from kloudless.server.store import Store, now_iso, register_migration

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

__all__ = ["CARDDAV", "CardDAVConnector", "CardDAVContacts", "connect", "contacts_for"]

MIGRATION_VERSION = 501
SCHEMA = """
CREATE TABLE dav_contact_groups (
    id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL, created TEXT NOT NULL);
CREATE UNIQUE INDEX dav_contact_groups_name ON dav_contact_groups(account_id, name);
CREATE TABLE dav_contact_items (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL, etag TEXT NOT NULL,
    PRIMARY KEY (account_id, name));
CREATE TABLE dav_contact_sync (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    book TEXT NOT NULL, token TEXT)
"""
register_migration(MIGRATION_VERSION, SCHEMA)

#: Most cards one listing reads.
MAX_CARDS = 10000
_REV = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})(?:T(\d{2}):?(\d{2}):?(\d{2}))?")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode().rstrip("=")


def contact_id(name: str) -> str:
    """:returns: the contact id of a card resource name."""
    return "con_" + _b64(name)


def card_name(object_id: str) -> str:
    """:returns: the resource name in a contact id. :raises ApiError: 404 for foreign ids."""
    if object_id.startswith("con_") and len(object_id) > 4:
        try:
            raw = object_id[4:]
            name = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            name = ""
        if name and "/" not in name and name not in (".", "..") and contact_id(name) == object_id:
            return name
    raise not_found(f"Contact not found: {object_id[:100]}")


def _is_group_card(card: Any) -> bool:
    # Apple-style group vCards are not contacts.
    for prop in ("kind", "x-addressbookserver-kind"):
        lines = card.contents.get(prop)
        if lines and str(lines[0].value).strip().lower() == "group":
            return True
    return False


def _modified(card: Any) -> str | None:
    lines = card.contents.get("rev")
    match = _REV.match(str(lines[0].value).strip()) if lines else None
    if match is None:
        return None
    y, mo, d, h, mi, s = (g or "00" for g in match.groups())
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}.000000Z"


class CardDAVContacts(ContactsBackend):
    """:class:`ContactsBackend` of one account over one CardDAV address book.

    :param store: the server store (group ids, sync state).
    :param account_id: the account.
    :param client: the CardDAV client of the account.
    :param book: the address book.
    :param connect_token: the sync token taken when the account was connected, if any.
    :param activity: records the changes made through this backend.
    :param intent: the intent slot of a keyed request (see :mod:`kloudless.server.intents`):
        writes record what they are about to change upstream before changing it, so that the
        retry of a request whose answer was lost finds its change instead of repeating it.
    """

    def __init__(
        self,
        store: Store,
        account_id: int,
        client: CardDAVClient,
        book: AddressBook,
        connect_token: str | None = None,
        activity: ActivityRecorder | None = None,
        intent: Intent | None = None,
    ) -> None:
        self.store = store
        self.account_id = int(account_id)
        self.dav = client
        self.book = book
        self.connect_token = connect_token
        self.activity = activity
        self.intent = intent
        ensure_schema(store, MIGRATION_VERSION)

    # -- groups by name --------------------------------------------------------------------------
    def _group_rows(self) -> list[sqlite3.Row]:
        return self.store.all(
            "SELECT * FROM dav_contact_groups WHERE account_id = ? ORDER BY name, id",
            (self.account_id,),
        )

    def _group_ids(self, names: list[str]) -> list[str]:
        """:returns: the ids of category names (unknown names get an id)."""
        ids = []
        for name in names:
            row = self.store.one(
                "SELECT id FROM dav_contact_groups WHERE account_id = ? AND name = ?",
                (self.account_id, name),
            )
            if row is None:
                self.store.execute(
                    "INSERT OR IGNORE INTO dav_contact_groups (id, account_id, name, created)"
                    " VALUES (?, ?, ?, ?)",
                    ("grp_" + secrets.token_urlsafe(12), self.account_id, name, now_iso()),
                )
                row = self.store.one(
                    "SELECT id FROM dav_contact_groups WHERE account_id = ? AND name = ?",
                    (self.account_id, name),
                )
            assert row is not None
            ids.append(str(row["id"]))
        return ids

    def _group_row(self, group_id: str) -> sqlite3.Row:
        return find_row(
            self.store, "dav_contact_groups", group_id, self.account_id, "Contact group"
        )

    def _group_names(self, group_ids: list[str]) -> list[str]:
        names = []
        for group_id in group_ids:
            row = self.store.one(
                "SELECT name FROM dav_contact_groups WHERE id = ? AND account_id = ?",
                (group_id, self.account_id),
            )
            if row is None:
                raise invalid_parameters(f"No such contact group: {group_id[:100]}")
            names.append(str(row["name"]))
        return names

    # -- cards -----------------------------------------------------------------------------------
    def _record(self, card: Card, parsed: Any | None = None) -> ContactRecord:
        assert card.text is not None
        parsed = parsed if parsed is not None else vcard.parse_card(card.text)
        return vcard.record_of(
            parsed,
            id=contact_id(card.name),
            etag=card.etag,
            groups=self._group_ids(vcard.categories(parsed)),
            modified=_modified(parsed),
            raw={
                "vcard": card.text,
                "href": self.dav.card_url(self.book, card.name),
                "etag": card.etag,
            },
        )

    def _all(self) -> list[tuple[Card, Any]]:
        """:returns: every contact card of the book with its parsed vCard (unreadable cards
        and group cards are left out)."""
        names = [c.name for c in self.dav.list_cards(self.book)][:MAX_CARDS]
        out = []
        for card in self.dav.read_cards(self.book, names):
            try:
                parsed = vcard.parse_card(card.text or "")
            except ApiError:
                continue
            if not _is_group_card(parsed):
                out.append((card, parsed))
        return out

    def _read(self, object_id: str) -> tuple[Card, Any]:
        name = card_name(object_id)
        try:
            card = self.dav.get_card(self.book, name)
        except ApiError as exc:
            if exc.status == 404:
                raise not_found(f"Contact not found: {object_id[:100]}") from None
            raise
        try:
            parsed = vcard.parse_card(card.text or "")
        except ApiError as exc:
            raise ApiError(
                502, "bad_gateway", f"The CardDAV server holds an unreadable vCard: {exc.message}"
            ) from None
        if _is_group_card(parsed):
            raise not_found(f"Contact not found: {object_id[:100]}")
        return card, parsed

    def _known(self, name: str, etag: str | None) -> None:
        if etag is None:
            self.store.execute(
                "DELETE FROM dav_contact_items WHERE account_id = ? AND name = ?",
                (self.account_id, name),
            )
        else:
            self.store.execute(
                "INSERT OR REPLACE INTO dav_contact_items (account_id, name, etag)"
                " VALUES (?, ?, ?)",
                (self.account_id, name, etag),
            )

    def _event(self, type_: str, obj: ContactRecord | GroupRecord) -> None:
        if self.activity is not None:
            self.activity.record(type_, obj)

    # -- writes: the upstream first, then what commits with the request -------------------------
    def _write(self, name: str, parsed: Any, etag: str | None) -> Card:
        """Write a card upstream (conditionally, see :meth:`CardDAVClient.put_card`).

        :returns: the card as the server stored it (servers may normalise cards)."""
        vcard.touch(parsed)
        new_etag = self.dav.put_card(self.book, name, vcard.serialize(parsed), etag)
        card = self.dav.get_card(self.book, name)
        return Card(card.name, card.etag or new_etag, card.text)

    def _commit(
        self, cards: list[Card], event: str | None, again: bool = False
    ) -> list[ContactRecord]:
        """After the upstream writes: remember the cards' new etags (so the sync does not
        report them again) and record ``event`` for each, in one transaction that joins the
        request's unit of work (with its stored answer).

        :param again: the cards come from an earlier attempt of this request (its intent):
            those whose etag is already known had their event committed then.
        """
        with self.store.transaction():
            known = self._known_etags() if again else {}
            records = []
            for card in cards:
                record = self._record(card)
                if event is not None and not (again and known.get(card.name) == card.etag):
                    self._event(event, record)
                self._known(card.name, card.etag)
                records.append(record)
            return records

    def _put(self, name: str, parsed: Any, etag: str | None, event: str | None) -> ContactRecord:
        """:meth:`_write` one card, then :meth:`_commit` it."""
        return self._commit([self._write(name, parsed, etag)], event)[0]

    def _known_etags(self) -> dict[str, str]:
        rows = self.store.all(
            "SELECT name, etag FROM dav_contact_items WHERE account_id = ?", (self.account_id,)
        )
        return {str(r["name"]): str(r["etag"]) for r in rows}

    def _find(self, name: str) -> Card | None:
        """:returns: the card named ``name``, or None when there is none."""
        try:
            return self.dav.get_card(self.book, name)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    # -- intents (keyed requests) ----------------------------------------------------------------
    def _recall(self, op: str) -> dict[str, Any] | None:
        return None if self.intent is None else self.intent.recall(op)

    def _remember(self, op: str, detail: dict[str, Any]) -> None:
        # A standalone commit: called before the request's first local write.
        if self.intent is not None:
            self.intent.remember(op, detail)

    def _precondition(
        self, op: str, key: str, current: str, if_match: str | None, what: str = "contact"
    ) -> bool:
        """Check ``If-Match`` and record the intent to change object ``key`` (version
        ``current``). The retry of a request whose first attempt changed it upstream (then
        lost its answer) is checked against the version the first attempt saw.

        :returns: True for such a retry.
        """
        previous = self._recall(op)
        if previous is not None and previous.get("key") == key:
            before = str(previous.get("before", ""))
            if before == current or if_match is None:
                return True
            try:
                check_etag(if_match, before, what)
                return True
            except ApiError:
                pass
        check_etag(if_match, current, what)
        self._remember(op, {"key": key, "before": current})
        return False

    def list_contacts(self, query: ContactQuery) -> tuple[list[ContactRecord], int]:
        records = [self._record(card, parsed) for card, parsed in self._all()]
        if query.q:
            needle = query.q.casefold()
            records = [r for r in records if needle in search_text(r.fields)]
        if query.updated_after:
            records = [r for r in records if (r.modified or "") > query.updated_after]
        if query.group:
            self._group_row(query.group)
            records = [r for r in records if query.group in r.fields["groups"]]
        field, reverse = query.order.lstrip("-"), query.order.startswith("-")
        if field == "name":
            records.sort(key=lambda r: (sort_key(r.fields), r.id), reverse=reverse)
        else:
            records.sort(key=lambda r: (r.modified or "", r.id), reverse=reverse)
        return records[query.offset : query.offset + query.limit], len(records)

    def get_contact(self, contact_id: str) -> ContactRecord:
        card, parsed = self._read(contact_id)
        return self._record(card, parsed)

    def create_contact(self, fields: Mapping[str, Any]) -> ContactRecord:
        names = self._group_names(list(fields.get("groups") or []))
        previous = self._recall("create_contact")
        if previous is not None:
            found = self._find(str(previous["name"]))
            if found is not None:  # the first attempt created it; its answer was lost
                return self._commit([found], "add", again=True)[0]
            uid = str(previous["uid"])
        else:
            uid = str(uuid.uuid4())
            self._remember("create_contact", {"name": f"{uid}.vcf", "uid": uid})
        parsed = vcard.new_card(uid)
        vcard.change(parsed, fields)
        vcard.set_categories(parsed, names)
        return self._put(f"{uid}.vcf", parsed, None, "add")

    def update_contact(
        self, contact_id: str, changes: Mapping[str, Any], if_match: str | None = None
    ) -> ContactRecord:
        card, parsed = self._read(contact_id)
        self._precondition("update_contact", card.name, card.etag, if_match)
        vcard.change(parsed, changes)
        if "groups" in changes:
            vcard.set_categories(parsed, self._group_names(changes["groups"]))
        return self._put(card.name, parsed, card.etag, "update")

    def delete_contact(self, contact_id: str, if_match: str | None = None) -> ContactRecord:
        name = card_name(contact_id)
        previous = self._recall("delete_contact")
        try:
            card, parsed = self._read(contact_id)
        except ApiError as exc:
            if exc.status != 404 or previous is None or previous.get("key") != name:
                raise
            # The first attempt deleted it upstream and lost its answer.
            gone = ContactRecord(id=contact_id, etag="", fields={})
            with self.store.transaction():
                if name in self._known_etags():  # its event did not commit
                    self._known(name, None)
                    self._event("delete", gone)
            return gone
        self._precondition("delete_contact", name, card.etag, if_match)
        self.dav.delete_card(self.book, card.name, card.etag)
        with self.store.transaction():
            record = self._record(card, parsed)
            self._known(card.name, None)
            self._event("delete", record)
        return record

    def import_vcards(self, text: str) -> list[ContactRecord]:
        cards = vcard.parse_cards(text)
        previous = self._recall("import_vcards")
        planned = previous.get("names") if previous is not None else None
        again = isinstance(planned, list) and len(planned) == len(cards)
        if not again:
            # Fresh resource names: no clash with cards of the same UID, and a retry knows
            # which cards are its own.
            planned = [f"{uuid.uuid4()}.vcf" for _ in cards]
            self._remember("import_vcards", {"names": planned})
        assert isinstance(planned, list)
        written = []
        for name, parsed in zip(planned, cards):
            if vcard.uid_of(parsed) is None:
                parsed.add("uid").value = str(name).removesuffix(".vcf")
            found = self._find(str(name)) if again else None
            written.append(found if found is not None else self._write(str(name), parsed, None))
        return self._commit(written, "add", again=again)

    def export_vcard(self, contact_id: str) -> str:
        _, parsed = self._read(contact_id)
        return vcard.serialize(parsed, data_uri=True)

    # -- groups ----------------------------------------------------------------------------------
    def _members(self) -> dict[str, list[str]]:
        """:returns: category name -> resource names of its member cards."""
        members: dict[str, list[str]] = {}
        for card, parsed in self._all():
            for name in vcard.categories(parsed):
                members.setdefault(name, []).append(card.name)
        return members

    def _group(self, row: sqlite3.Row, members: dict[str, list[str]]) -> GroupRecord:
        names = sorted(members.get(row["name"], []))
        digest = hashlib.sha256("\n".join([row["name"], *names]).encode("utf-8")).hexdigest()
        return GroupRecord(
            id=row["id"],
            name=row["name"],
            etag=digest[:16],
            created=row["created"],
            modified=None,
            count=len(names),
            raw={"category": row["name"], "members": [contact_id(n) for n in names]},
        )

    def list_groups(self) -> list[GroupRecord]:
        members = self._members()
        self._group_ids(sorted(members))
        return [self._group(row, members) for row in self._group_rows()]

    def get_group(self, group_id: str) -> GroupRecord:
        return self._group(self._group_row(group_id), self._members())

    def create_group(self, fields: Mapping[str, Any]) -> GroupRecord:
        name = fields["name"]
        row = self.store.one(
            "SELECT id FROM dav_contact_groups WHERE account_id = ? AND name = ?",
            (self.account_id, name),
        )
        if row is not None:
            raise naming_conflict(f"A contact group named {name!r} exists.", row["id"])
        members = self._members()  # the upstream first: then the local writes
        with self.store.transaction():
            group = self._group(self._group_row(self._group_ids([name])[0]), members)
            self._event("add", group)
        return group

    def _rewrite_members(self, old: str, new: str | None) -> list[Card]:
        """Replace (or remove, for ``new`` None) category ``old`` on every member card
        upstream. :returns: the rewritten cards (not committed yet)."""
        written = []
        for card, parsed in self._all():
            names = vcard.categories(parsed)
            if old not in names:
                continue
            changed = [new if n == old else n for n in names if n != old or new is not None]
            vcard.set_categories(parsed, [n for n in dict.fromkeys(changed) if n])
            written.append(self._write(card.name, parsed, card.etag))
        return written

    def update_group(
        self, group_id: str, fields: Mapping[str, Any], if_match: str | None = None
    ) -> GroupRecord:
        members = self._members()
        group = self._group(self._group_row(group_id), members)
        name = fields["name"]
        clash = self.store.one(
            "SELECT id FROM dav_contact_groups WHERE account_id = ? AND name = ? AND id != ?",
            (self.account_id, name, group_id),
        )
        if clash is not None:
            raise naming_conflict(f"A contact group named {name!r} exists.", clash["id"])
        self._precondition("update_group", group_id, group.etag, if_match, "contact group")
        # Member cards are rewritten one by one (CardDAV has no multi-resource transaction);
        # a retry finds those already rewritten under the new name and rewrites the rest.
        # Then the id follows the new name, with the cards' events, in one transaction.
        written = self._rewrite_members(group.name, name)
        with self.store.transaction():
            self.store.execute(
                "UPDATE dav_contact_groups SET name = ? WHERE id = ?", (name, group_id)
            )
            self._commit(written, "update")
            renamed_members = {name: sorted({*members.get(name, []), *members.get(group.name, [])})}
            renamed = self._group(self._group_row(group_id), renamed_members)
            self._event("update", renamed)
        return renamed

    def delete_group(self, group_id: str, if_match: str | None = None) -> GroupRecord:
        group = self.get_group(group_id)
        self._precondition("delete_group", group_id, group.etag, if_match, "contact group")
        written = self._rewrite_members(group.name, None)
        with self.store.transaction():
            self._commit(written, "update")
            self.store.execute("DELETE FROM dav_contact_groups WHERE id = ?", (group_id,))
            self._event("delete", group)
        return group

    # -- photos ----------------------------------------------------------------------------------
    def get_photo(self, contact_id: str) -> ContactPhoto:
        _, parsed = self._read(contact_id)
        photo = vcard.photo_of(parsed)
        if photo is None:
            raise not_found("The contact has no photo.")
        return photo

    def put_photo(
        self, contact_id: str, photo: ContactPhoto, if_match: str | None = None
    ) -> ContactRecord:
        card, parsed = self._read(contact_id)
        check_etag(if_match, card.etag, "contact")  # a PUT carries no Idempotency-Key
        vcard.set_photo(parsed, photo)
        return self._put(card.name, parsed, card.etag, "update")

    def delete_photo(self, contact_id: str, if_match: str | None = None) -> ContactRecord:
        card, parsed = self._read(contact_id)
        again = self._precondition("delete_photo", card.name, card.etag, if_match)
        if vcard.photo_info(parsed) is None:
            if again:  # the first attempt removed it and lost its answer
                return self._commit([card], "update", again=True)[0]
            raise not_found("The contact has no photo.")
        vcard.set_photo(parsed, None)
        return self._put(card.name, parsed, card.etag, "update")

    # -- upstream changes ------------------------------------------------------------------------
    def sync_upstream(self) -> None:
        state = self.store.one(
            "SELECT token FROM dav_contact_sync WHERE account_id = ?", (self.account_id,)
        )
        token = state["token"] if state is not None else self.connect_token
        known = {
            str(r["name"]): str(r["etag"])
            for r in self.store.all(
                "SELECT name, etag FROM dav_contact_items WHERE account_id = ?",
                (self.account_id,),
            )
        }
        baseline = state is None and token is None
        try:
            changed, removed, new_token = self.dav.sync(self.book, token)
            new_token_or_none: str | None = new_token
        except SyncUnsupported:
            current = self.dav.list_cards(self.book)
            names = {c.name for c in current}
            changed = [c for c in current if known.get(c.name) != c.etag]
            removed = [n for n in known if n not in names]
            new_token_or_none = None
            baseline = state is None
        changed = [c for c in changed if known.get(c.name) != c.etag]
        events: list[tuple[str, ContactRecord]] = []
        if not baseline:
            texts = self.dav.read_cards(self.book, [c.name for c in changed])
            for card in texts:
                try:
                    parsed = vcard.parse_card(card.text or "")
                except ApiError:
                    continue
                if not _is_group_card(parsed):
                    kind = "update" if card.name in known else "add"
                    events.append((kind, self._record(card, parsed)))
            events.extend(
                ("delete", ContactRecord(id=contact_id(n), etag="", fields={}))
                for n in removed
                if n in known
            )
        with self.store.transaction():
            again = self.store.one(
                "SELECT token FROM dav_contact_sync WHERE account_id = ?", (self.account_id,)
            )
            if (again["token"] if again else None) != (state["token"] if state else None):
                return  # another request synced meanwhile and reported these changes
            for card in changed:
                self._known(card.name, card.etag)
            for name in removed:
                self._known(name, None)
            self.store.execute(
                "INSERT OR REPLACE INTO dav_contact_sync (account_id, book, token)"
                " VALUES (?, ?, ?)",
                (self.account_id, self.book.url, new_token_or_none or ""),
            )
            for kind, contact in events:
                self._event(kind, contact)


# -- connecting ---------------------------------------------------------------------------------


def _choose_book(dav: CardDAVClient, wanted: str | None) -> AddressBook:
    books = dav.address_books()
    if wanted is not None:
        for book in books:
            if book.name == wanted:
                return book
        raise invalid_parameters(f"No address book named {wanted!r} was found at this URL.")
    if books:
        return books[0]
    return dav.make_book("contacts", "Contacts")


def connect(
    settings: dict[str, Any],
    secret: bytes | None = None,
    policy: OutboundPolicy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Validate CardDAV settings against the server and build the account config.

    :param settings: ``url`` (or ``domain``), ``username``, ``password``; optional
        ``addressbook`` (an address book collection name).
    :param secret: the server secret; when given the password is sealed.
    :param policy: the server's outbound policy (the URL's address is checked first, and every
        connection again).
    :returns: the config to store (credentials, the address book's URL, a sync token).
    :raises ApiError: 400 for bad settings, a refused address or a URL without address books; 401
        ``service_unauthorized`` for wrong credentials; 503/504 when unreachable.
    """
    url, username, password = clean_settings(settings)
    wanted = settings.get("addressbook")
    if wanted is not None and (not isinstance(wanted, str) or not wanted or "/" in wanted):
        raise invalid_parameters("'addressbook' must be an address book collection name.")
    check_address(url, policy)
    with WebDAVClient(url, username, password, timeout=(10.0, 15.0), policy=policy) as client:
        dav = CardDAVClient(client)
        try:
            book = _choose_book(dav, wanted)
        except ApiError as exc:
            if exc.status in (404, 501):
                raise invalid_parameters("No CardDAV address book was found at this URL.") from None
            raise
        token = None
        try:
            token = dav.sync(book, None)[2]
        except SyncUnsupported:
            pass
    config = stored_config(url, username, password, secret)
    config.update(addressbook_url=book.url, addressbook_sync=book.supports_sync)
    if token:
        config["sync_token"] = token
    return config


#: Address books found for ``caldav`` accounts (which do not pin one), by account URL and user.
_FOUND_BOOKS: dict[tuple[str, str], AddressBook | None] = {}


def contacts_for(env: AccountEnv) -> CardDAVContacts:
    """:returns: the contacts backend of a ``carddav`` or ``caldav`` account.

    :raises ApiError: 501 when a ``caldav`` account's server has no address book.
    """
    config = env.config
    url, username, password = credentials(config, env.store.server_secret())
    dav = CardDAVClient(client_for(url, username, password, policy_for(env.settings)))
    book_url = config.get("addressbook_url")
    if isinstance(book_url, str):
        book = AddressBook(
            url=book_url,
            name=book_url.rstrip("/").rsplit("/", 1)[-1],
            display_name=None,
            supports_sync=bool(config.get("addressbook_sync")),
        )
    else:
        key = (url, username)
        if key not in _FOUND_BOOKS:
            try:
                books = dav.address_books()
            except ApiError as exc:
                if exc.status not in (404, 501):
                    raise
                books = []
            if len(_FOUND_BOOKS) > 256:  # a cache, not state: bounded, and rebuilt on demand
                _FOUND_BOOKS.clear()
            _FOUND_BOOKS[key] = books[0] if books else None
        found = _FOUND_BOOKS[key]
        if found is None:
            raise ApiError(
                501, "not_implemented", "The account's server offers no CardDAV address book."
            )
        book = found
    return CardDAVContacts(
        env.store, env.account_id, dav, book, config.get("sync_token"), env.activity, env.intent
    )


class CardDAVConnector(Connector):
    """Contacts over a CardDAV server, with pass-through."""

    service = "carddav"
    service_name = "CardDAV"
    apis = ("crm", "events")
    #: Contacts change upstream too (see :meth:`CardDAVContacts.sync_upstream`).
    upstream_contacts = True

    def contacts(self, env: AccountEnv) -> ContactsBackend | None:
        return contacts_for(env)

    def passthrough(self, env: AccountEnv, request: PassthroughRequest) -> Response | None:
        url, username, password = credentials(env.config, env.store.server_secret())
        client = client_for(url, username, password, policy_for(env.settings))
        return forward_request(request, client, env.settings.max_upload_bytes)

    def validate_config(
        self,
        config: dict[str, Any],
        store: Store | None = None,
        policy: OutboundPolicy = DEFAULT_POLICY,
    ) -> dict[str, Any]:
        """Check the settings against the server (see :func:`connect`)."""
        return connect(config, store.server_secret() if store is not None else None, policy)


CARDDAV = CardDAVConnector()
