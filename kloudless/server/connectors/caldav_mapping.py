"""Map iCalendar ``VEVENT`` components to and from the calendar API's event fields.

Pure functions over :mod:`icalendar` (no I/O), used by the CalDAV connector.

Times
    ``start``/``end`` become ``DTSTART``/``DTEND``: a date is an all-day ``VALUE=DATE``; a
    date-time with ``start_time_zone`` (IANA) is written with ``TZID`` (and a ``VTIMEZONE``); a
    date-time with an offset and no zone is written in UTC; one without offset nor zone is read
    as UTC (as :func:`~kloudless.server.connectors.calendar_base.event_interval` does). So that
    values come back exactly as the client sent them (``+07:00`` stays ``+07:00``), the client's
    strings are kept in ``X-KLOUDLESS-TIMES``; they are used on read only while they still denote
    the instants of ``DTSTART``/``DTEND`` (an edit by another client makes them stale, and the
    values are then derived from the iCalendar properties).

Other fields
    ``name`` ↔ ``SUMMARY``, ``description`` ↔ ``DESCRIPTION``, ``location`` ↔ ``LOCATION``,
    ``ical_uid`` ↔ ``UID``, ``created`` ↔ ``CREATED``, ``modified`` ↔ ``LAST-MODIFIED``
    (``DTSTAMP`` when absent), ``organizer`` ↔ ``ORGANIZER`` (``{"name", "email"}``),
    ``attendees`` ↔ ``ATTENDEE`` (``name``/``CN``, ``email``, ``status``/``PARTSTAT`` in lower
    case with ``_``, ``required``/``ROLE``), ``recurrence`` ↔ ``RRULE``/``RDATE``/``EXDATE``/
    ``EXRULE`` given as iCalendar lines (``"RRULE:FREQ=WEEKLY;COUNT=4"``), ``creator``/``owner``
    ↔ ``X-KLOUDLESS-CREATOR``/``X-KLOUDLESS-OWNER`` (base64url JSON, as some servers split
    unknown properties on commas). Properties the API does not know
    (alarms, categories, ...) are kept on update.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

import icalendar
from dateutil.rrule import rrulestr

from kloudless.server.availability import (
    format_utc,
    parse_time_value,
    resolve_timezone,
    to_utc,
)
from kloudless.server.connectors.calendar_base import CalendarInvalid, event_interval

__all__ = [
    "RECURRENCE_PROPS",
    "apply_fields",
    "calendar_text",
    "event_fields",
    "find_vevent",
    "new_vevent",
    "parse_calendar",
]

#: Recurrence properties passed through as lines in ``recurrence``.
RECURRENCE_PROPS = ("RRULE", "RDATE", "EXDATE", "EXRULE")
X_TIMES = "X-KLOUDLESS-TIMES"
X_CREATOR = "X-KLOUDLESS-CREATOR"
X_OWNER = "X-KLOUDLESS-OWNER"
PRODID = "-//kloudless//local API server//EN"
_TIME_KEYS = ("start", "end", "start_time_zone", "end_time_zone")


# -- parsing ------------------------------------------------------------------------------------


def parse_calendar(text: str | bytes) -> icalendar.Calendar:
    """Parse iCalendar text.

    :raises ValueError: if the text is not a ``VCALENDAR``.
    """
    try:
        cal = icalendar.Calendar.from_ical(text)
    except Exception as exc:  # icalendar raises ValueError and others for bad input
        raise ValueError(f"invalid iCalendar data: {exc}") from exc
    if not isinstance(cal, icalendar.Calendar):
        raise ValueError("the iCalendar data is not a VCALENDAR")
    return cal


def find_vevent(cal: icalendar.Calendar) -> icalendar.Event:
    """:returns: the master ``VEVENT`` (the one without ``RECURRENCE-ID``).

    :raises ValueError: if there is no ``VEVENT``.
    """
    events = [c for c in cal.walk("VEVENT") if isinstance(c, icalendar.Event)]
    if not events:
        raise ValueError("the calendar object has no VEVENT")
    for event in events:
        if "RECURRENCE-ID" not in event:
            return event
    return events[0]


def calendar_text(cal: icalendar.Calendar) -> str:
    """:returns: the iCalendar text of ``cal`` (with a ``VTIMEZONE`` for each zone it uses)."""
    try:
        cal.add_missing_timezones()
    except Exception:  # an unknown zone: leave it to the server
        pass
    return cal.to_ical().decode("utf-8")


# -- times --------------------------------------------------------------------------------------


def _zone_name(value: datetime) -> str | None:
    tz = value.tzinfo
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if isinstance(key, str) and key:
        return key
    return None


def _is_utc(value: datetime) -> bool:
    return value.utcoffset() == timedelta(0) and _zone_name(value) in (None, "UTC", "Etc/UTC")


def to_ical_time(text: str, zone_name: str | None) -> date | datetime:
    """Turn an API time (``start``/``end`` with its zone) into a ``DTSTART``/``DTEND`` value.

    :raises CalendarInvalid: unparsable value or unknown zone.
    """
    try:
        value = parse_time_value(text)
        zone: tzinfo | None = resolve_timezone(zone_name)
    except ValueError as exc:
        raise CalendarInvalid(f"Invalid event time: {exc}") from exc
    if not isinstance(value, datetime):
        return value
    if zone is not None:
        if value.tzinfo is None:
            return value.replace(tzinfo=zone)
        return value.astimezone(zone)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def from_ical_time(value: date | datetime) -> tuple[str, str | None]:
    """Turn a ``DTSTART``/``DTEND`` value into an API time string and its zone name."""
    if not isinstance(value, datetime):
        return value.isoformat(), None
    if value.tzinfo is None:  # floating time
        return value.isoformat(), None
    if _is_utc(value):
        return format_utc(to_utc(value)), None
    return value.isoformat(), _zone_name(value)


def _instant(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return to_utc(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)


def _event_times(vevent: icalendar.Event) -> dict[str, Any]:
    if "DTSTART" not in vevent:
        raise ValueError("the VEVENT has no DTSTART")
    start = vevent.decoded("DTSTART")
    if "DTEND" in vevent:
        end = vevent.decoded("DTEND")
    elif "DURATION" in vevent:
        end = start + vevent.decoded("DURATION")
    elif isinstance(start, datetime):
        end = start
    else:
        end = start + timedelta(days=1)
    start_text, start_zone = from_ical_time(start)
    end_text, end_zone = from_ical_time(end)
    derived = {
        "start": start_text,
        "end": end_text,
        "start_time_zone": start_zone,
        "end_time_zone": end_zone,
    }
    kept = _kept_times(vevent)
    if kept is None:
        return derived
    # Use the client's own strings for each side while they still denote DTSTART/DTEND.
    result = dict(derived)
    try:
        instants = event_interval(
            kept["start"], kept["end"], kept.get("start_time_zone"), kept.get("end_time_zone")
        )
    except CalendarInvalid:
        return derived
    for index, (side, value) in enumerate((("start", start), ("end", end))):
        is_datetime = "T" in str(kept[side]).upper()
        if is_datetime == isinstance(value, datetime) and instants[index] == _instant(value):
            result[side] = kept[side]
            result[f"{side}_time_zone"] = kept.get(f"{side}_time_zone")
    return result


def _pack_times(times: Mapping[str, Any]) -> str:
    # "key=value" pairs separated by spaces: no commas or semicolons, which some servers split
    # on in unknown properties; ISO times and IANA zone names contain no spaces.
    return " ".join(f"{k}={times[k]}" for k in _TIME_KEYS if times.get(k))


def _kept_times(vevent: icalendar.Event) -> dict[str, Any] | None:
    raw = vevent.get(X_TIMES)
    if raw is None:
        return None
    kept: dict[str, Any] = {}
    for pair in str(raw).split():
        key, _, value = pair.partition("=")
        if key in _TIME_KEYS and value:
            kept[key] = value
    if not all(isinstance(kept.get(k), str) for k in ("start", "end")):
        return None
    return kept


# -- people ---------------------------------------------------------------------------------------


def _email(address: Any) -> str:
    text = str(address)
    return text[7:] if text.lower().startswith("mailto:") else text


def _address(person: Mapping[str, Any], what: str) -> icalendar.vCalAddress:
    email = person.get("email")
    if not isinstance(email, str) or not email:
        raise CalendarInvalid(f"Each {what} needs an 'email' string.")
    address = icalendar.vCalAddress(f"mailto:{email}")
    name = person.get("name")
    if isinstance(name, str) and name:
        address.params["CN"] = name
    return address


def _person(address: Any) -> dict[str, Any]:
    person: dict[str, Any] = {}
    params = getattr(address, "params", {})
    if params.get("CN"):
        person["name"] = str(params["CN"])
    person["email"] = _email(address)
    return person


def _attendee(address: Any) -> dict[str, Any]:
    person = _person(address)
    params = getattr(address, "params", {})
    if params.get("PARTSTAT"):
        person["status"] = str(params["PARTSTAT"]).lower().replace("-", "_")
    if params.get("ROLE"):
        person["required"] = str(params["ROLE"]).upper() != "OPT-PARTICIPANT"
    return person


def _attendee_address(person: Mapping[str, Any]) -> icalendar.vCalAddress:
    address = _address(person, "attendee")
    status = person.get("status")
    if isinstance(status, str) and status:
        address.params["PARTSTAT"] = status.upper().replace("_", "-")
    required = person.get("required")
    if isinstance(required, bool):
        address.params["ROLE"] = "REQ-PARTICIPANT" if required else "OPT-PARTICIPANT"
    return address


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


# -- recurrence -----------------------------------------------------------------------------------


def _recurrence_lines(vevent: icalendar.Event) -> list[str]:
    lines = []
    for line in vevent.content_lines():
        name = line.split(":", 1)[0].split(";", 1)[0].upper()
        if name in RECURRENCE_PROPS:
            lines.append(str(line))
    return lines


def _recurrence_props(lines: list[Any]) -> icalendar.Event:
    for line in lines:
        if not isinstance(line, str) or "\n" in line or "\r" in line:
            raise CalendarInvalid("'recurrence' must be a list of iCalendar lines (strings).")
        name = line.split(":", 1)[0].split(";", 1)[0].upper()
        if name not in RECURRENCE_PROPS or ":" not in line:
            raise CalendarInvalid(
                "Each 'recurrence' entry must be an iCalendar RRULE, RDATE, EXDATE or EXRULE line,"
                " e.g. 'RRULE:FREQ=WEEKLY;COUNT=4'."
            )
    text = "BEGIN:VEVENT\r\n" + "".join(f"{line}\r\n" for line in lines) + "END:VEVENT\r\n"
    try:
        parsed = icalendar.Event.from_ical(text)
        assert isinstance(parsed, icalendar.Event)
        for name in RECURRENCE_PROPS:  # decode now so bad values fail here, not on the server
            for value in _as_list(parsed.get(name)):
                value.to_ical()
        for rule in _as_list(parsed.get("RRULE")) + _as_list(parsed.get("EXRULE")):
            rrulestr(rule.to_ical().decode(), dtstart=datetime(2000, 1, 1), forceset=True)
    except Exception as exc:
        raise CalendarInvalid(f"Invalid recurrence line: {exc}") from exc
    return parsed


# -- VEVENT <-> fields ----------------------------------------------------------------------------


def new_vevent(uid: str | None = None) -> tuple[icalendar.Calendar, icalendar.Event]:
    """Start a new event.

    :param uid: the ``UID`` (a random one when omitted).
    :returns: a new ``VCALENDAR`` and its one ``VEVENT`` (with ``UID``, ``DTSTAMP``, ``CREATED``).
    """
    cal = icalendar.Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    vevent = icalendar.Event()
    vevent.add("UID", uid or f"{uuid.uuid4()}@kloudless")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    vevent.add("DTSTAMP", now)
    vevent.add("CREATED", now)
    cal.add_component(vevent)
    return cal, vevent


def _set(vevent: icalendar.Event, name: str, value: Any) -> None:
    if name in vevent:
        del vevent[name]
    if value is not None and value != "":
        vevent.add(name, value)


def apply_fields(vevent: icalendar.Event, changes: Mapping[str, Any]) -> None:
    """Write cleaned API fields (see ``clean_event_input``) into ``vevent``.

    Only the given keys change; the times are rewritten whenever one of ``start``, ``end`` or
    their zones is given (the others taken from the event).

    :raises CalendarInvalid: for values iCalendar cannot hold or an end before the start.
    """
    if any(key in changes for key in _TIME_KEYS):
        current = _event_times(vevent) if "DTSTART" in vevent else {}
        times = {key: changes.get(key, current.get(key)) for key in _TIME_KEYS}
        if not times.get("start") or not times.get("end"):
            raise CalendarInvalid("'start' and 'end' are required.")
        event_interval(
            times["start"], times["end"], times["start_time_zone"], times["end_time_zone"]
        )
        start = to_ical_time(times["start"], times["start_time_zone"])
        end = to_ical_time(times["end"], times["end_time_zone"] or times["start_time_zone"])
        if not isinstance(start, datetime) and start == end:
            end = start + timedelta(days=1)  # a one-day all-day event (end is exclusive)
        for name in ("DTSTART", "DTEND", "DURATION", X_TIMES):
            if name in vevent:
                del vevent[name]
        vevent.add("DTSTART", start)
        vevent.add("DTEND", end)
        vevent.add(X_TIMES, _pack_times(times))
    for key, name in (
        ("name", "SUMMARY"),
        ("description", "DESCRIPTION"),
        ("location", "LOCATION"),
    ):
        if key in changes:
            _set(vevent, name, changes[key])
    if "ical_uid" in changes and changes["ical_uid"]:
        _set(vevent, "UID", changes["ical_uid"])
    if "organizer" in changes:
        organizer = changes["organizer"]
        _set(vevent, "ORGANIZER", _address(organizer, "organizer") if organizer else None)
    if "attendees" in changes:
        if "ATTENDEE" in vevent:
            del vevent["ATTENDEE"]
        for person in changes["attendees"] or []:
            vevent.add("ATTENDEE", _attendee_address(person))
    for key, name in (("creator", X_CREATOR), ("owner", X_OWNER)):
        if key in changes:
            value = changes[key]
            _set(vevent, name, _pack_json(value) if value else None)
    if "recurrence" in changes:
        parsed = _recurrence_props(changes["recurrence"] or [])
        for name in RECURRENCE_PROPS:
            if name in vevent:
                del vevent[name]
            for value in _as_list(parsed.get(name)):
                vevent.add(name, value)


def touch(vevent: icalendar.Event) -> None:
    """Mark an edit: new ``LAST-MODIFIED``/``DTSTAMP``, ``SEQUENCE`` + 1."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    _set(vevent, "LAST-MODIFIED", now)
    _set(vevent, "DTSTAMP", now)
    sequence = int(vevent.get("SEQUENCE", 0) or 0)
    _set(vevent, "SEQUENCE", sequence + 1)


def _utc_text(vevent: icalendar.Event, name: str) -> str | None:
    if name not in vevent:
        return None
    try:
        value = vevent.decoded(name)
    except Exception:
        return None
    if not isinstance(value, datetime):
        return None
    return format_utc(to_utc(value if value.tzinfo else value.replace(tzinfo=timezone.utc)))


def _pack_json(value: Any) -> str:
    # base64url JSON: servers may split unknown properties on commas and semicolons.
    return base64.urlsafe_b64encode(json.dumps(value).encode("utf-8")).decode("ascii")


def _json_prop(vevent: icalendar.Event, name: str) -> dict[str, Any] | None:
    if name not in vevent:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(str(vevent[name]).encode("ascii")))
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def _text(vevent: icalendar.Event, name: str) -> str | None:
    return str(vevent[name]) if name in vevent else None


def event_fields(vevent: icalendar.Event) -> dict[str, Any]:
    """Read the API fields of a ``VEVENT``.

    :returns: keys of :class:`~kloudless.server.connectors.calendar_base.EventRecord` except
        ``id``, ``calendar_id`` and ``raw``.
    :raises ValueError: if the event has no usable ``DTSTART``.
    """
    times = _event_times(vevent)
    recurrence = _recurrence_lines(vevent)
    organizer = vevent.get("ORGANIZER")
    return {
        **times,
        "name": _text(vevent, "SUMMARY"),
        "description": _text(vevent, "DESCRIPTION"),
        "location": _text(vevent, "LOCATION"),
        "all_day": not isinstance(vevent.decoded("DTSTART"), datetime),
        "attendees": [_attendee(a) for a in _as_list(vevent.get("ATTENDEE"))],
        "organizer": _person(organizer) if organizer is not None else None,
        "creator": _json_prop(vevent, X_CREATOR),
        "owner": _json_prop(vevent, X_OWNER),
        "recurrence": recurrence or None,
        "recurrence_type": "recurring" if recurrence else "solo",
        "ical_uid": _text(vevent, "UID"),
        "created": _utc_text(vevent, "CREATED"),
        "modified": _utc_text(vevent, "LAST-MODIFIED") or _utc_text(vevent, "DTSTAMP"),
    }
