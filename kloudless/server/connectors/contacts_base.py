"""The contacts backend interface every contacts-capable connector implements.

A :class:`ContactsBackend` is bound to one account, so ids of other accounts are simply not
found. The local backend keeps contacts in SQLite (:mod:`~kloudless.server.connectors.
local_contacts`); the CardDAV backend (:mod:`~kloudless.server.connectors.carddav`) maps the same
calls onto an address book of a CardDAV server. Both hold each contact as a vCard (mapped by
:mod:`~kloudless.server.connectors.vcard_mapping`), so properties the API has no field for are
kept through every change.

Input is validated once, here, by :func:`clean_contact_input` and :func:`clean_group_input`;
backends receive the cleaned dicts. Backends raise :class:`~kloudless.server.errors.ApiError`
for user-facing failures: 404 for unknown ids, 412 ``precondition_failed`` when an ``If-Match``
etag no longer matches (:func:`check_etag`), 400 for values the upstream cannot take.

Contact fields (the Kloudless CRM names, plus the address-book ones):

* ``first_name``, ``last_name``, ``name`` (the formatted name; derived from the first and last
  names when not given), ``nickname``, ``title``, ``department``, ``organization``;
* ``emails`` ``[{address, type, primary}]``, ``phones`` ``[{number, type, primary}]``,
  ``addresses`` ``[{street, city, region, postal_code, country, type, primary}]``, ``urls``
  (strings), ``birthday`` (``YYYY-MM-DD`` or ``--MM-DD``), ``notes``, ``groups`` (group ids);
* the CRM shorthands ``phone`` (the primary phone that is not a fax), ``fax`` (the first fax),
  ``mailing_address`` (the primary address) and ``description`` (the notes): accepted on writes
  when the richer field is not sent, always present in answers.
"""

from __future__ import annotations

import abc
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kloudless.server.activity import ActivityRecorder
from kloudless.server.errors import ApiError, invalid_parameters, not_found
from kloudless.server.store import Store

__all__ = [
    "CONTACT_FIELDS",
    "ContactPhoto",
    "ContactQuery",
    "ContactRecord",
    "ContactsBackend",
    "GroupRecord",
    "check_etag",
    "clean_contact_input",
    "clean_group_input",
    "precondition_failed",
]

#: Writable contact fields (the CRM shorthands are folded into the rich ones on input).
CONTACT_FIELDS = (
    "first_name",
    "last_name",
    "name",
    "nickname",
    "title",
    "department",
    "organization",
    "emails",
    "phones",
    "addresses",
    "urls",
    "birthday",
    "notes",
    "groups",
)
#: The Kloudless CRM shorthands, accepted on input when their rich field is absent.
SHORTHANDS = ("phone", "fax", "mailing_address", "description")
ADDRESS_PARTS = ("street", "city", "region", "postal_code", "country")

#: Limits on what one contact may hold (far beyond real address books, well below harm).
MAX_TEXT = 1024
MAX_NOTES = 32 * 1024
MAX_ITEMS = 50
MAX_GROUPS = 100
MAX_ID_LENGTH = 512
_TYPE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_BIRTHDAY = re.compile(r"^(\d{4}|--)-?(\d{2})-?(\d{2})$")


#: Stores known to hold the contacts tables (since this module was imported).
_MIGRATED: weakref.WeakSet[Store] = weakref.WeakSet()


def ensure_schema(store: Store, version: int) -> None:
    """Bring ``store`` up to date when its migration ``version`` is missing (a store opened
    before the contacts modules registered theirs). Only a read when it is there, so it never
    begins a request's unit of work (CardDAV records its intent after this, standalone)."""
    if store in _MIGRATED:
        return
    if store.one("SELECT 1 FROM schema_versions WHERE version = ?", (version,)) is None:
        store.migrate()
    _MIGRATED.add(store)


def find_row(store: Store, table: str, object_id: str, account_id: int, what: str) -> Any:
    """:returns: the row of ``table`` with this id and account.

    :param what: what the row is, for the 404 message (``"Contact"``).
    :raises ApiError: 404 when there is none.
    """
    row = store.one(
        f"SELECT * FROM {table} WHERE id = ? AND account_id = ?", (object_id, account_id)
    )
    if row is None:
        raise not_found(f"{what} not found: {object_id[:100]}")
    return row


def precondition_failed(message: str) -> ApiError:
    """:returns: a 412 ``precondition_failed`` error (an ``If-Match`` etag that changed)."""
    return ApiError(412, "precondition_failed", message)


def check_etag(if_match: str | None, current: str, what: str) -> None:
    """Compare an ``If-Match`` header with an object's current etag (the gdata edit conflict).

    :param if_match: the header value (``*``, one or more quoted or bare etags), or None.
    :param current: the object's etag (bare).
    :raises ApiError: 412 ``precondition_failed`` when no given etag matches.
    """
    if if_match is None or not if_match.strip():
        return
    wanted = [t.strip() for t in if_match.split(",")]
    if "*" in wanted:
        return
    for tag in wanted:
        tag = tag[2:] if tag.startswith("W/") else tag
        if tag.strip('"') == current:
            return
    raise precondition_failed(f"The {what} changed since it was read (etag {current}).")


@dataclass
class ContactRecord:
    """A contact as a backend describes it; the API adds ``api``, ``type``, ``href``.

    :ivar fields: every field of :data:`CONTACT_FIELDS` (lists empty, strings possibly None).
    :ivar photo: ``{"content_type", "size"}`` of an embedded photo, ``{"url"}`` of a linked
        one, or None.
    :ivar raw: the connector's native record (the vCard text and upstream details).
    """

    id: str
    etag: str
    fields: dict[str, Any]
    created: str | None = None
    modified: str | None = None
    photo: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class GroupRecord:
    """A contact group: its id, name, etag, and how many contacts it holds."""

    id: str
    name: str
    etag: str
    created: str | None = None
    modified: str | None = None
    count: int = 0
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class ContactPhoto:
    """A contact's embedded photo."""

    data: bytes
    content_type: str


@dataclass
class ContactQuery:
    """What a listing asks for.

    :ivar q: text searched (case-insensitively) in names, emails, phones and organization.
    :ivar updated_after: only contacts modified after this instant (ISO-8601, UTC).
    :ivar order: ``name``, ``-name``, ``modified`` or ``-modified``.
    :ivar group: only members of this group id.
    """

    q: str | None = None
    updated_after: str | None = None
    order: str = "name"
    group: str | None = None
    offset: int = 0
    limit: int = 100


def _text(value: Any, name: str, limit: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_parameters(f"'{name}' must be a string or null.")
    if len(value) > limit:
        raise invalid_parameters(f"'{name}' is longer than {limit} characters.")
    if any(ord(c) < 32 and c not in "\t\n" for c in value) or "\x7f" in value:
        raise invalid_parameters(f"'{name}' may not contain control characters.")
    if "\n" in value and name not in ("notes", "description", "street"):
        raise invalid_parameters(f"'{name}' may not contain line breaks.")
    return value or None


def _kind(value: Any, name: str, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not _TYPE.match(value):
        raise invalid_parameters(f"'{name}' must be a word of letters, digits, '-' or '_'.")
    return value.lower()


def _items(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_parameters(f"'{name}' must be a list.")
    if len(value) > MAX_ITEMS:
        raise invalid_parameters(f"'{name}' may hold at most {MAX_ITEMS} items.")
    return value


def _one_primary(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Exactly one primary item when there are any: the first marked one, else the first.
    marked = next((i for i, item in enumerate(items) if item["primary"]), 0)
    for index, item in enumerate(items):
        item["primary"] = index == marked
    return items


def _emails(value: Any) -> list[dict[str, Any]]:
    out = []
    for index, item in enumerate(_items(value, "emails")):
        if isinstance(item, str):
            item = {"address": item}
        if not isinstance(item, dict):
            raise invalid_parameters(f"emails[{index}] must be an object with 'address'.")
        address = _text(item.get("address"), f"emails[{index}].address", 320)
        if not address or "@" not in address or any(c.isspace() for c in address):
            raise invalid_parameters(f"emails[{index}].address must be an e-mail address.")
        out.append(
            {
                "address": address,
                "type": _kind(item.get("type"), f"emails[{index}].type", "other"),
                "primary": bool(item.get("primary")),
            }
        )
    return _one_primary(out)


def _phones(value: Any) -> list[dict[str, Any]]:
    out = []
    for index, item in enumerate(_items(value, "phones")):
        if isinstance(item, str):
            item = {"number": item}
        if not isinstance(item, dict):
            raise invalid_parameters(f"phones[{index}] must be an object with 'number'.")
        number = _text(item.get("number"), f"phones[{index}].number", 64)
        if not number:
            raise invalid_parameters(f"phones[{index}].number is required.")
        out.append(
            {
                "number": number,
                "type": _kind(item.get("type"), f"phones[{index}].type", "other"),
                "primary": bool(item.get("primary")),
            }
        )
    return _one_primary(out)


def _address(item: Any, name: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise invalid_parameters(f"{name} must be an object.")
    unknown = set(item) - {*ADDRESS_PARTS, "type", "primary"}
    if unknown:
        raise invalid_parameters(f"{name} has unknown keys: {', '.join(sorted(unknown))[:200]}.")
    out: dict[str, Any] = {part: _text(item.get(part), f"{name}.{part}") for part in ADDRESS_PARTS}
    if not any(out.values()):
        raise invalid_parameters(f"{name} needs at least one of {', '.join(ADDRESS_PARTS)}.")
    out["type"] = _kind(item.get("type"), f"{name}.type", "home")
    out["primary"] = bool(item.get("primary"))
    return out


def _birthday(value: Any) -> str | None:
    text = _text(value, "birthday", 16)
    if text is None:
        return None
    match = _BIRTHDAY.match(text)
    month, day = (int(match.group(2)), int(match.group(3))) if match else (0, 0)
    if not match or not (1 <= month <= 12 and 1 <= day <= 31):
        raise invalid_parameters("'birthday' must be YYYY-MM-DD (or --MM-DD without a year).")
    year = match.group(1)
    return f"{year}-{month:02d}-{day:02d}" if year != "--" else f"--{month:02d}-{day:02d}"


def _group_ids(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_GROUPS:
        raise invalid_parameters(f"'groups' must be a list of at most {MAX_GROUPS} group ids.")
    if not all(isinstance(g, str) and 0 < len(g) <= MAX_ID_LENGTH for g in value):
        raise invalid_parameters("'groups' must hold group ids (strings).")
    return list(dict.fromkeys(value))


def clean_contact_input(body: Mapping[str, Any], partial: bool) -> dict[str, Any]:
    """Validate a contact body (``POST``: whole, ``PATCH``: ``partial``).

    The CRM shorthands are folded in: ``phone``/``fax`` become ``phones`` items and
    ``mailing_address`` an ``addresses`` item (when those are not sent), ``description`` is
    ``notes``. ``raw``/``raw_type`` and read-only fields (``id``, ``etag``, ...) are ignored.

    :returns: the cleaned fields (only those sent, when ``partial``).
    :raises ApiError: 400 ``invalid_parameters`` for a bad value or an empty contact.
    """
    out: dict[str, Any] = {}
    for name in ("first_name", "last_name", "name", "nickname", "title", "department"):
        if name in body:
            out[name] = _text(body[name], name)
    if "organization" in body:
        out["organization"] = _text(body["organization"], "organization")
    if "notes" in body or "description" in body:
        key = "notes" if "notes" in body else "description"
        out["notes"] = _text(body[key], key, MAX_NOTES)
    if "emails" in body:
        out["emails"] = _emails(body["emails"])
    if "phones" in body:
        out["phones"] = _phones(body["phones"])
    elif "phone" in body or "fax" in body:
        shorthand = []
        if _text(body.get("phone"), "phone", 64):
            shorthand.append({"number": body["phone"], "type": "work", "primary": True})
        if _text(body.get("fax"), "fax", 64):
            shorthand.append({"number": body["fax"], "type": "fax"})
        out["phones"] = _phones(shorthand)
    if "addresses" in body:
        addresses = [
            _address(a, f"addresses[{i}]") for i, a in enumerate(_items(body["addresses"], "x"))
        ]
        out["addresses"] = _one_primary(addresses)
    elif "mailing_address" in body:
        value = body["mailing_address"]
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in ADDRESS_PARTS}
        out["addresses"] = [] if value is None else [_address(value, "mailing_address")]
        if out["addresses"]:
            out["addresses"][0].update(type="work", primary=True)
    if "urls" in body:
        urls = _items(body["urls"], "urls")
        out["urls"] = [_text(u, f"urls[{i}]", 2048) for i, u in enumerate(urls)]
        if not all(out["urls"]):
            raise invalid_parameters("'urls' must hold non-empty strings.")
    if "birthday" in body:
        out["birthday"] = _birthday(body["birthday"])
    if "groups" in body:
        out["groups"] = _group_ids(body["groups"])
    if not partial:
        named = any(out.get(k) for k in ("first_name", "last_name", "name", "organization"))
        if not named and not out.get("emails") and not out.get("phones"):
            raise invalid_parameters(
                "A contact needs a name, an organization, an e-mail address or a phone number."
            )
    return out


def clean_group_input(body: Mapping[str, Any]) -> dict[str, Any]:
    """:returns: ``{"name": ...}``. :raises ApiError: 400 for a missing or bad name."""
    name = _text(body.get("name"), "name", 255)
    if not name or not name.strip():
        raise invalid_parameters("'name' is required: a non-empty string.")
    if "," in name or ";" in name:
        # Groups travel as vCard CATEGORIES, a comma-separated list.
        raise invalid_parameters("A group name may not contain ',' or ';'.")
    return {"name": name.strip()}


def derived_name(fields: Mapping[str, Any]) -> str | None:
    """:returns: the formatted name of a contact: its ``name``, else first and last names,
    else its organization, e-mail or phone."""
    if fields.get("name"):
        return str(fields["name"])
    parts = [fields.get("first_name"), fields.get("last_name")]
    joined = " ".join(p for p in parts if p)
    if joined:
        return joined
    if fields.get("organization"):
        return str(fields["organization"])
    for key, sub in (("emails", "address"), ("phones", "number")):
        if fields.get(key):
            return str(fields[key][0][sub])
    return None


def search_text(fields: Mapping[str, Any]) -> str:
    """:returns: the lower-cased text a ``q`` query searches (names, emails, phones, org)."""
    parts = [fields.get(k) for k in ("first_name", "last_name", "name", "nickname")]
    parts.append(fields.get("organization"))
    parts.extend(e["address"] for e in fields.get("emails") or ())
    parts.extend(p["number"] for p in fields.get("phones") or ())
    return "\n".join(p for p in parts if p).casefold()


#: Separates the parts of :func:`sort_key`: below every printable character, so a name sorts
#: before every longer name it begins; not NUL, which PostgreSQL text cannot hold.
SORT_SEPARATOR = "\x01"


def sort_key(fields: Mapping[str, Any]) -> str:
    """:returns: the key contacts are ordered by ``name`` with (last, then first name), in
    plain code point order."""
    last, first = fields.get("last_name") or "", fields.get("first_name") or ""
    sep = SORT_SEPARATOR
    return f"{last}{sep}{first}{sep}{derived_name(fields) or ''}".casefold()


class ContactsBackend(abc.ABC):
    """Contacts, groups and photos of one account. Ids are opaque, URL-safe strings.

    Every change is recorded through :attr:`activity` (``add``, ``update`` or ``delete`` with
    the :class:`ContactRecord` or :class:`GroupRecord`): inside the change's own transaction
    when the state is in the store, right after the upstream write otherwise.
    """

    #: Records the account's changes (the connector's ``AccountEnv.activity``).
    activity: ActivityRecorder | None = None

    #: Capabilities reported by ``GET accounts/{id}?retrieve_full=true``.
    capabilities: dict[str, bool] = {
        "can_crud_crm_contacts": True,
        "can_crud_crm_contact_groups": True,
        "can_crud_crm_contact_photos": True,
        "can_crm_batch": True,
        "can_search_crm_contacts": True,
    }
    #: Largest photo accepted (bytes).
    max_photo_bytes: int = 1024 * 1024

    @abc.abstractmethod
    def list_contacts(self, query: ContactQuery) -> tuple[list[ContactRecord], int]:
        """:returns: ``(one page of matching contacts, how many match in all)``."""

    @abc.abstractmethod
    def get_contact(self, contact_id: str) -> ContactRecord:
        """:returns: the contact. :raises ApiError: 404."""

    @abc.abstractmethod
    def create_contact(self, fields: Mapping[str, Any]) -> ContactRecord:
        """:param fields: cleaned by :func:`clean_contact_input`. :returns: the new contact."""

    @abc.abstractmethod
    def update_contact(
        self, contact_id: str, changes: Mapping[str, Any], if_match: str | None = None
    ) -> ContactRecord:
        """Change the given fields only; others (and unknown vCard properties) are kept.

        :raises ApiError: 404; 412 when ``if_match`` no longer matches.
        """

    @abc.abstractmethod
    def delete_contact(self, contact_id: str, if_match: str | None = None) -> ContactRecord:
        """:returns: the contact as it was. :raises ApiError: 404; 412."""

    @abc.abstractmethod
    def import_vcards(self, text: str) -> list[ContactRecord]:
        """Create one contact per vCard in ``text``, keeping every property.

        :raises ApiError: 400 for text that holds no readable vCard.
        """

    @abc.abstractmethod
    def export_vcard(self, contact_id: str) -> str:
        """:returns: the contact's vCard text."""

    # -- groups ------------------------------------------------------------------------------
    @abc.abstractmethod
    def list_groups(self) -> list[GroupRecord]:
        """:returns: every group, by name."""

    @abc.abstractmethod
    def get_group(self, group_id: str) -> GroupRecord:
        """:returns: the group. :raises ApiError: 404."""

    @abc.abstractmethod
    def create_group(self, fields: Mapping[str, Any]) -> GroupRecord:
        """:raises ApiError: 409 ``naming_conflict`` when a group has that name."""

    @abc.abstractmethod
    def update_group(
        self, group_id: str, fields: Mapping[str, Any], if_match: str | None = None
    ) -> GroupRecord:
        """Rename a group (its members follow). :raises ApiError: 404, 409, 412."""

    @abc.abstractmethod
    def delete_group(self, group_id: str, if_match: str | None = None) -> GroupRecord:
        """Delete a group; its contacts stay, without it. :raises ApiError: 404, 412."""

    # -- photos ------------------------------------------------------------------------------
    @abc.abstractmethod
    def get_photo(self, contact_id: str) -> ContactPhoto:
        """:raises ApiError: 404 when the contact has no embedded photo."""

    @abc.abstractmethod
    def put_photo(
        self, contact_id: str, photo: ContactPhoto, if_match: str | None = None
    ) -> ContactRecord:
        """Set or replace the photo (checked by the API layer). :returns: the contact."""

    @abc.abstractmethod
    def delete_photo(self, contact_id: str, if_match: str | None = None) -> ContactRecord:
        """:raises ApiError: 404 when there is no photo. :returns: the contact."""

    def sync_upstream(self) -> None:
        """Look for changes made upstream, outside this API, since the last look, and record
        each as an ``add``, ``update`` or ``delete`` event (a deleted contact known by its id
        only) in the transaction that saves the new sync state. Backends without an upstream
        have nothing to do."""
        return  # nothing changes upstream of a backend without one
