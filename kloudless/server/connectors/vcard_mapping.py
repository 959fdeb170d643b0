"""vCard 3.0/4.0 text <-> contact fields, with ``vobject``.

A contact *is* its vCard: the API fields are read from it (:func:`fields_of`) and changes are
applied to it (:func:`apply_fields`), so every property the API has no field for (``X-*``
extensions, ``GENDER``, ``IMPP``, group prefixes, parameters of untouched properties) survives
reading a contact and writing it back. New contacts are written as vCard 3.0, the version every
CardDAV server accepts; a 4.0 card stays 4.0.

Quirks handled here:

* vobject (and so Radicale, which stores cards through vobject) cuts a vCard 4.0
  ``PHOTO:data:image/png;base64,...`` URI at its comma. Data URIs are turned into the 3.0 form
  (``PHOTO;ENCODING=b;TYPE=PNG:...``) before parsing, and back into a data URI when a 4.0 card is
  exported (``data_uri=True``); cards sent to a CardDAV server keep the 3.0 form, which vobject
  keeps intact.
* Text values are escaped by vobject (``\\,`` ``\\;`` ``\\n``), so commas in names, notes or
  addresses survive servers that parse them.
* Groups are the card's ``CATEGORIES`` (a comma-separated list: group names cannot hold commas).

Primary items: vCard 3.0 ``TYPE=pref``, vCard 4.0 ``PREF=1``. Phone types: ``cell`` is the API's
``mobile``; a ``fax`` type wins over the others.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import vobject

from kloudless.server.connectors.contacts_base import MAX_ITEMS, ContactPhoto, ContactRecord
from kloudless.server.errors import invalid_parameters

__all__ = [
    "PHOTO_TYPES",
    "apply_fields",
    "categories",
    "fields_of",
    "new_card",
    "parse_card",
    "parse_cards",
    "photo_info",
    "photo_of",
    "serialize",
    "set_categories",
    "set_photo",
    "touch",
    "uid_of",
    "unknown_properties",
]

#: Most bytes of vCard text accepted in one request or read from one upstream resource.
MAX_VCARD_BYTES = 4 * 1024 * 1024
#: Most vCards read from one import.
MAX_CARDS = 10000
#: Image types a photo may have: content type -> vCard 3.0 ``TYPE``.
PHOTO_TYPES = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
_TYPE_TO_MIME = {v: k for k, v in PHOTO_TYPES.items()} | {"JPG": "image/jpeg"}
#: Properties the API maps; every other one is "unknown" and kept untouched.
KNOWN = frozenset(
    {
        "version",
        "uid",
        "fn",
        "n",
        "nickname",
        "org",
        "title",
        "email",
        "tel",
        "adr",
        "url",
        "bday",
        "note",
        "categories",
        "photo",
        "rev",
        "prodid",
    }
)
_IGNORED_TYPES = {"pref", "voice", "internet", "x400", "msg"}
_DATA_URI = re.compile(
    r"^(?P<name>(?:[A-Za-z0-9-]+\.)?(?:PHOTO|LOGO))(?P<params>(?:;[^:]*)?):"
    r"data:(?P<mime>[A-Za-z0-9.+/-]*)(?:;[^,;]*)*?;base64,(?P<data>[A-Za-z0-9+/=\s]*)$",
    re.IGNORECASE,
)
_FOLDED = re.compile(r"\r?\n[ \t]")
_BIRTHDAY = re.compile(r"^(\d{4}|--)-?(\d{2})-?(\d{2})")


# -- parsing -------------------------------------------------------------------------------------


def _from_data_uris(text: str) -> str:
    """Rewrite ``PHOTO:data:...;base64,...`` lines into the 3.0 form vobject keeps intact."""
    if "data:" not in text.lower():
        return text
    lines = _FOLDED.sub("", text).splitlines()
    for index, line in enumerate(lines):
        match = _DATA_URI.match(line)
        if match is None:
            continue
        kind = PHOTO_TYPES.get(match.group("mime").lower(), match.group("mime").split("/")[-1])
        params = ";".join(
            p
            for p in match.group("params").split(";")
            if p and not p.upper().startswith(("VALUE=", "MEDIATYPE=", "TYPE=", "ENCODING="))
        )
        prefix = match.group("name") + (";" + params if params else "")
        data = re.sub(r"\s", "", match.group("data"))
        lines[index] = f"{prefix};ENCODING=b;TYPE={kind.upper()}:{data}"
    return "\r\n".join(lines) + "\r\n"


def parse_cards(text: str) -> list[Any]:
    """Parse every vCard in ``text``.

    :returns: the vobject components (only ``VCARD`` ones).
    :raises ApiError: 400 ``invalid_parameters`` when the text is too long, is not vCard text
        or holds no card.
    """
    if len(text) > MAX_VCARD_BYTES:
        raise invalid_parameters(f"The vCard text is longer than {MAX_VCARD_BYTES} characters.")
    if "\x00" in text:
        raise invalid_parameters("The vCard text contains NUL characters.")
    cards = []
    try:
        for component in vobject.readComponents(_from_data_uris(text), validate=False):
            if component.name.upper() != "VCARD":
                continue
            cards.append(component)
            if len(cards) > MAX_CARDS:
                raise invalid_parameters(f"At most {MAX_CARDS} vCards can be read at once.")
    except (vobject.base.VObjectError, ValueError, TypeError, LookupError, AttributeError) as exc:
        raise invalid_parameters(f"Unreadable vCard text: {str(exc)[:200]}") from None
    if not cards:
        raise invalid_parameters("The text holds no vCard (BEGIN:VCARD ... END:VCARD).")
    for card in cards:
        _check_card(card)
    return cards


def parse_card(text: str) -> Any:
    """:returns: the only vCard in ``text``. :raises ApiError: 400 (see :func:`parse_cards`)."""
    cards = parse_cards(text)
    if len(cards) != 1:
        raise invalid_parameters("Exactly one vCard was expected.")
    return cards[0]


def _check_card(card: Any) -> None:
    # Catch what vobject accepts lazily but cannot serialize back (structured values, ...).
    for name, lines in card.contents.items():
        if len(lines) > 10 * MAX_ITEMS:
            raise invalid_parameters(f"The vCard has too many {name.upper()} properties.")
    if "version" not in card.contents:
        card.add("version").value = "3.0"
    try:
        serialize(card)
    except Exception as exc:  # vobject raises a wide range of types for broken values
        raise invalid_parameters(f"Unreadable vCard: {str(exc)[:200]}") from None


def new_card(uid: str | None = None) -> Any:
    """:returns: an empty vCard 3.0 with a UID (a fresh UUID when not given)."""
    card = vobject.vCard()
    card.add("version").value = "3.0"
    card.add("uid").value = uid or str(uuid.uuid4())
    card.add("fn").value = ""
    card.add("n").value = vobject.vcard.Name()
    return card


def uid_of(card: Any) -> str | None:
    """:returns: the card's UID, or None."""
    line = card.contents.get("uid")
    return str(line[0].value) if line and line[0].value else None


def _is_v4(card: Any) -> bool:
    line = card.contents.get("version")
    return bool(line) and str(line[0].value).strip() == "4.0"


# -- reading fields --------------------------------------------------------------------------------


def _value(card: Any, name: str) -> Any:
    lines = card.contents.get(name)
    return lines[0].value if lines else None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    text = str(value).strip()
    return text or None


def _types(line: Any) -> list[str]:
    values: list[str] = []
    for value in line.params.get("TYPE", []):
        values.extend(v.strip().strip('"').lower() for v in str(value).split(","))
    return [v for v in values if v]


def _is_pref(line: Any) -> bool:
    return "pref" in _types(line) or "PREF" in line.params


def _kind(line: Any, default: str, phone: bool = False) -> str:
    types = [t for t in _types(line) if t not in _IGNORED_TYPES]
    if phone and "fax" in types:
        return "fax"
    kind = types[0] if types else default
    if phone and kind == "cell":
        return "mobile"
    return kind if re.match(r"^[a-z0-9_-]{1,32}$", kind) else default


def _listed(card: Any, name: str) -> list[Any]:
    return list(card.contents.get(name, ()))[:MAX_ITEMS]


def _ordered(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    marked = next((i for i, item in enumerate(items) if item["primary"]), 0)
    for index, item in enumerate(items):
        item["primary"] = index == marked
    return items


def _birthday(value: Any) -> str | None:
    text = _str(value)
    match = _BIRTHDAY.match(text or "")
    if match is None:
        return None
    year, month, day = match.groups()
    return f"{year}-{month}-{day}" if year != "--" else f"--{month}-{day}"


def fields_of(card: Any) -> dict[str, Any]:
    """:returns: the API fields of a card (every field of ``CONTACT_FIELDS`` but ``groups``)."""
    name = _value(card, "n")
    org = _value(card, "org")
    org_units = org if isinstance(org, list) else ([org] if org else [])
    emails = [
        {
            "address": str(line.value).strip(),
            "type": _kind(line, "other"),
            "primary": _is_pref(line),
        }
        for line in _listed(card, "email")
        if _str(line.value)
    ]
    phones = [
        {
            "number": str(line.value).strip(),
            "type": _kind(line, "other", phone=True),
            "primary": _is_pref(line),
        }
        for line in _listed(card, "tel")
        if _str(line.value)
    ]
    addresses = []
    for line in _listed(card, "adr"):
        value = line.value
        if not isinstance(value, vobject.vcard.Address):
            continue
        parts = {
            "street": _str(value.street),
            "city": _str(value.city),
            "region": _str(value.region),
            "postal_code": _str(value.code),
            "country": _str(value.country),
        }
        if any(parts.values()):
            addresses.append({**parts, "type": _kind(line, "home"), "primary": _is_pref(line)})
    return {
        "first_name": _str(name.given) if isinstance(name, vobject.vcard.Name) else None,
        "last_name": _str(name.family) if isinstance(name, vobject.vcard.Name) else None,
        "name": _str(_value(card, "fn")),
        "nickname": _str(_value(card, "nickname")),
        "title": _str(_value(card, "title")),
        "organization": _str(org_units[0]) if org_units else None,
        "department": _str(org_units[1]) if len(org_units) > 1 else None,
        "emails": _ordered(emails),
        "phones": _ordered(phones),
        "addresses": _ordered(addresses),
        "urls": [u for u in (_str(line.value) for line in _listed(card, "url")) if u],
        "birthday": _birthday(_value(card, "bday")),
        "notes": _str(_value(card, "note")),
    }


def categories(card: Any) -> list[str]:
    """:returns: the card's ``CATEGORIES`` (its group names), in order, without repeats."""
    names: list[str] = []
    for line in card.contents.get("categories", ()):
        value = line.value if isinstance(line.value, list) else str(line.value).split(",")
        names.extend(str(v).strip() for v in value if str(v).strip())
    return list(dict.fromkeys(names))


def unknown_properties(card: Any) -> list[str]:
    """:returns: the names of the properties the API has no field for (kept as they are)."""
    return sorted(
        {line.name.upper() for line in card.getChildren() if line.name.lower() not in KNOWN}
    )


# -- writing fields --------------------------------------------------------------------------------


def _replace(card: Any, name: str, values: Iterable[tuple[Any, dict[str, list[str]]]]) -> None:
    card.contents.pop(name, None)
    for value, params in values:
        line = card.add(name)
        line.value = value
        for key, param in params.items():
            line.params[key] = param


def _params(card: Any, kind: str, primary: bool, phone: bool = False) -> dict[str, list[str]]:
    if phone and kind == "mobile":
        kind = "cell"
    types = [] if kind == "other" else [kind]
    if not primary:
        return {"TYPE": types} if types else {}
    if _is_v4(card):
        return {"TYPE": types, "PREF": ["1"]} if types else {"PREF": ["1"]}
    return {"TYPE": [*types, "pref"]}


def _set_single(card: Any, name: str, value: Any) -> None:
    card.contents.pop(name, None)
    if value:
        card.add(name).value = value


def change(card: Any, changes: Mapping[str, Any]) -> None:
    """Apply cleaned API ``changes`` (new contacts: all their fields) to the card, the one way
    both backends map API input onto a vCard; properties not named stay as they are."""
    apply_fields(card, changes, {**fields_of(card), **changes})


def record_of(
    card: Any,
    *,
    id: str,
    etag: str,
    groups: list[str],
    raw: Mapping[str, Any],
    created: str | None = None,
    modified: str | None = None,
    photo: dict[str, Any] | None = None,
) -> ContactRecord:
    """:returns: the contact a parsed vCard is, the one way both backends map a vCard onto the
    API's fields: its fields, ``groups`` (ids), its photo (``photo`` when the backend keeps it
    apart from the card) and ``raw`` (the backend's native record) plus the card's
    ``unknown_properties``."""
    fields = fields_of(card)
    fields["groups"] = groups
    return ContactRecord(
        id=id,
        etag=etag,
        fields=fields,
        created=created,
        modified=modified,
        photo=photo if photo is not None else photo_info(card),
        raw={**raw, "unknown_properties": unknown_properties(card)},
    )


def apply_fields(card: Any, changes: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
    """Write cleaned API ``changes`` into the card; properties not named stay as they are.

    :param fields: the contact's resulting fields (to derive the formatted name).
    """
    from kloudless.server.connectors.contacts_base import derived_name

    before = fields_of(card)
    fields = dict(fields)
    if "name" not in changes and before["name"] == derived_name({**before, "name": None}):
        # The formatted name was the derived one: it follows the name parts it came from.
        fields["name"] = None
    if "first_name" in changes or "last_name" in changes:
        old = _value(card, "n")
        name = old if isinstance(old, vobject.vcard.Name) else vobject.vcard.Name()
        card.contents.pop("n", None)
        name.given = fields.get("first_name") or ""
        name.family = fields.get("last_name") or ""
        card.add("n").value = name
    elif "n" not in card.contents:
        card.add("n").value = vobject.vcard.Name()
    card.contents.pop("fn", None)
    card.add("fn").value = derived_name(fields) or ""
    for key, prop in (("nickname", "nickname"), ("title", "title"), ("notes", "note")):
        if key in changes:
            _set_single(card, prop, changes[key])
    if "organization" in changes or "department" in changes:
        old = _value(card, "org")
        units = list(old) if isinstance(old, list) else ([old] if old else [])
        units = (units + ["", ""])[:2] + units[2:]
        units[0] = fields.get("organization") or ""
        units[1] = fields.get("department") or ""
        while units and not units[-1]:
            units.pop()
        _set_single(card, "org", units)
    if "emails" in changes:
        _replace(
            card,
            "email",
            ((e["address"], _params(card, e["type"], e["primary"])) for e in changes["emails"]),
        )
    if "phones" in changes:
        _replace(
            card,
            "tel",
            (
                (p["number"], _params(card, p["type"], p["primary"], True))
                for p in changes["phones"]
            ),
        )
    if "addresses" in changes:
        _replace(
            card,
            "adr",
            (
                (
                    vobject.vcard.Address(
                        street=a["street"] or "",
                        city=a["city"] or "",
                        region=a["region"] or "",
                        code=a["postal_code"] or "",
                        country=a["country"] or "",
                    ),
                    _params(card, a["type"], a["primary"]),
                )
                for a in changes["addresses"]
            ),
        )
    if "urls" in changes:
        _replace(card, "url", ((u, {}) for u in changes["urls"]))
    if "birthday" in changes:
        _set_single(card, "bday", changes["birthday"])


def set_categories(card: Any, names: list[str]) -> None:
    """Replace the card's ``CATEGORIES`` (group names)."""
    card.contents.pop("categories", None)
    if names:
        card.add("categories").value = list(names)


def touch(card: Any) -> None:
    """Set ``REV`` to now (servers and clients use it to see changes)."""
    card.contents.pop("rev", None)
    card.add("rev").value = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# -- photos ----------------------------------------------------------------------------------------


def _photo_line(card: Any) -> Any:
    lines = card.contents.get("photo")
    return lines[0] if lines else None


def _photo_bytes(line: Any) -> bytes | None:
    value = line.value
    if isinstance(value, bytes):
        return value
    encoding = str((line.params.get("ENCODING") or [""])[0]).lower()
    if encoding in ("b", "base64") and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError):
            return None
    return None


def _photo_type(line: Any) -> str:
    for kind in line.params.get("TYPE", []):
        mime = _TYPE_TO_MIME.get(str(kind).upper())
        if mime:
            return mime
    return "application/octet-stream"


def photo_info(card: Any) -> dict[str, Any] | None:
    """:returns: ``{"content_type", "size"}`` of an embedded photo, ``{"url"}`` of a linked
    one, or None."""
    line = _photo_line(card)
    if line is None:
        return None
    data = _photo_bytes(line)
    if data is not None:
        return {"content_type": _photo_type(line), "size": len(data)}
    url = _str(line.value)
    if not url or url.lower().startswith("data:"):
        return None  # no photo, or a data URI cut by a server (see the module notes)
    return {"url": url}


def photo_of(card: Any) -> ContactPhoto | None:
    """:returns: the embedded photo, or None (no photo, or a photo given by URL)."""
    line = _photo_line(card)
    data = None if line is None else _photo_bytes(line)
    if line is None or data is None:
        return None
    return ContactPhoto(data, _photo_type(line))


def set_photo(card: Any, photo: ContactPhoto | None) -> None:
    """Embed ``photo`` (vCard 3.0 form, see the module notes), or remove the photo."""
    card.contents.pop("photo", None)
    if photo is None:
        return
    line = card.add("photo")
    line.value = photo.data
    line.encoding_param = "b"
    line.type_param = PHOTO_TYPES.get(photo.content_type, "JPEG")


# -- serializing -----------------------------------------------------------------------------------


def _fold(line: str) -> str:
    return "\r\n ".join(line[i : i + 74] for i in range(0, len(line), 74))


def _to_data_uris(text: str) -> str:
    out = []
    for line in _FOLDED.sub("", text).split("\r\n"):
        upper = line.upper()
        if upper.startswith(("PHOTO;", "LOGO;")) and "ENCODING=B" in upper:
            head, _, data = line.partition(":")
            parts = head.split(";")
            kind = next((p[5:] for p in parts if p.upper().startswith("TYPE=")), "JPEG")
            mime = _TYPE_TO_MIME.get(kind.upper(), "image/" + kind.lower())
            keep = [p for p in parts[1:] if not p.upper().startswith(("TYPE=", "ENCODING="))]
            line = _fold(";".join([parts[0], *keep]) + f":data:{mime};base64,{data}")
        out.append(line)
    return "\r\n".join(out)


def serialize(card: Any, data_uri: bool = False) -> str:
    """:param data_uri: write embedded photos of vCard 4.0 cards as ``data:`` URIs (exports);
        leave them in the 3.0 form for CardDAV servers (see the module notes).
    :returns: the card's text (CRLF line ends)."""
    text = card.serialize(validate=False)
    if data_uri and _is_v4(card):
        text = _to_data_uris(text)
    return str(text)
