"""Map Microsoft Graph ``event`` and ``calendar`` resources to and from the calendar API's
fields. Pure functions (no I/O), used by :mod:`~.outlook_calendar`.

Events (the table in the guide "Cloud calendars" lists every field):

* ``name`` ↔ ``subject``; ``description`` ↔ ``body`` (``contentType: text``; read as text,
  asked for with ``Prefer: outlook.body-content-type="text"``); ``location`` ↔
  ``location.displayName``; ``ical_uid`` ← ``iCalUId`` (read-only at Graph: a given one is
  ignored); ``created``/``modified`` ← ``createdDateTime``/``lastModifiedDateTime``.
* ``start``/``end`` ↔ ``start``/``end`` (``dateTimeTimeZone``: a local ``dateTime`` without
  offset plus a ``timeZone``): a date-time with ``start_time_zone`` is sent in that zone, one
  with an offset and no zone in UTC, a naive one in UTC; a date (all-day) sets ``isAllDay``
  with midnights. Read back (in UTC, ``Prefer: outlook.timezone="UTC"``), times are put in the
  event's own zone (``originalStartTimeZone``, a Windows or IANA name; Windows names are
  translated with the CLDR table icalendar ships).
* ``attendees`` ↔ ``attendees`` (``{"name", "email"}`` ↔ ``emailAddress``; ``required: false``
  ↔ ``type: optional``; ``status`` ← ``status.response``, read-only at Graph);
  ``organizer`` ← ``organizer.emailAddress`` (read-only: Exchange makes the mailbox owner the
  organizer of the events it creates, so a given organizer is not sent).
* ``recurrence`` ↔ ``recurrence`` (:mod:`~.graph_recurrence`); ``recurrence_type`` is
  ``recurring`` for a series and its occurrences, ``recurring_master_id`` ← ``seriesMasterId``.
* ``creator``/``owner``, and the client's own spelling of ``start``/``end``/``recurrence``, have
  no Graph field: they are kept in one single-value extended property of the event
  (:data:`ECHO_PROPERTY`, JSON). The spellings are used on read only while they still mean
  what Graph has (an edit in Outlook makes them stale; the values are then derived from
  Graph's), so a value comes back exactly as it was sent (``+07:00`` stays ``+07:00``).

Calendars: ``name`` ↔ ``name``, ``primary`` ← ``isDefaultCalendar``; ``description``,
``location`` and ``timezone`` have no Graph field and are kept in the calendar's extended
property :data:`ECHO_PROPERTY`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from kloudless.server.availability import parse_datetime, parse_time_value, resolve_timezone

from ..errors import ApiError
from . import graph_recurrence
from .calendar_base import CalendarInvalid, CalendarRecord, EventRecord, event_interval

#: The extended property holding what Graph has no field for: a named string property in a
#: property set (GUID) of this project's own.
ECHO_PROPERTY = "String {7d7f8f3e-3b59-4c1e-9d0c-6b1f4b6a2c55} Name KloudlessFields"
#: ``$expand`` that makes Graph return :data:`ECHO_PROPERTY` with an item.
EXPAND = f"singleValueExtendedProperties($filter=id eq '{ECHO_PROPERTY}')"
_GRAPH_FORMAT = "%Y-%m-%dT%H:%M:%S"
_STATUS = {
    "accepted": "accepted",
    "declined": "declined",
    "tentativelyAccepted": "tentative",
    "organizer": "accepted",
}


# --- time zones and times ---------------------------------------------------------------------


def zone_name(name: str | None) -> str | None:
    """:returns: the IANA name of a Graph time zone (IANA or Windows name), None if unknown."""
    if not name:
        return None
    try:
        resolve_timezone(name)
        return "UTC" if name.upper() in ("UTC", "ETC/UTC", "GMT") else name
    except ValueError:
        found = WINDOWS_TO_OLSON.get(name)
        if name.lower().endswith("/utc"):  # tzone://Microsoft/Utc
            return "UTC"
        return found


def _zone(name: str | None) -> tzinfo:
    return resolve_timezone(zone_name(name)) or timezone.utc


def to_graph_time(text: str, zone: str | None) -> dict[str, str]:
    """:param text: an API ``start``/``end`` (checked by ``clean_event_input``).
    :param zone: the event's IANA zone (``start_time_zone``), or None.
    :returns: Graph's ``dateTimeTimeZone``: a date is its midnight, an offset date-time is
        converted into ``zone`` (UTC without one), a naive one is taken as it is.
    """
    value = parse_time_value(text)
    name = zone or "UTC"
    if not isinstance(value, datetime):
        return {"dateTime": f"{value.isoformat()}T00:00:00", "timeZone": name}
    if value.tzinfo is not None:
        value = value.astimezone(resolve_timezone(name) or timezone.utc).replace(tzinfo=None)
    return {"dateTime": value.strftime(_GRAPH_FORMAT), "timeZone": name}


def graph_instant(value: Mapping[str, Any] | None) -> datetime:
    """:returns: a ``dateTimeTimeZone`` as an aware datetime.
    :raises ApiError: 502, unreadable (Graph's answer is not what it documents)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("dateTime"), str):
        raise ApiError(502, "bad_gateway", "Microsoft Graph gave an item without its times.")
    text = value["dateTime"]
    head, dot, fraction = text.partition(".")
    try:
        moment = datetime.strptime(head, _GRAPH_FORMAT)
    except ValueError:
        raise ApiError(
            502, "bad_gateway", f"Microsoft Graph gave an unreadable time {text[:40]!r}."
        ) from None
    if dot and fraction[:6].isdigit():
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return moment.replace(tzinfo=_zone(value.get("timeZone")))


def _local_text(moment: datetime, zone: tzinfo, name: str | None, all_day: bool) -> str:
    local = moment.astimezone(zone)
    if all_day:
        # An all-day event is midnights in its zone; should Graph give it as midnights of the
        # zone asked for instead (a floating day), that date is the day.
        if moment.timetz().replace(tzinfo=None) == datetime.min.time():
            return moment.date().isoformat()
        return local.date().isoformat()
    if name in (None, "UTC"):
        return local.strftime(_GRAPH_FORMAT) + "Z"
    return local.replace(tzinfo=None).strftime(_GRAPH_FORMAT)


# --- the echo property --------------------------------------------------------------------------


def echo_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """:returns: the JSON kept in an item's :data:`ECHO_PROPERTY` ({} when absent or bad)."""
    for prop in item.get("singleValueExtendedProperties") or []:
        if isinstance(prop, Mapping) and str(prop.get("id", "")).lower() == ECHO_PROPERTY.lower():
            try:
                value = json.loads(str(prop.get("value") or ""))
            except ValueError:
                return {}
            return value if isinstance(value, dict) else {}
    return {}


def echo_property(values: Mapping[str, Any]) -> list[dict[str, str]]:
    """:returns: ``singleValueExtendedProperties`` setting :data:`ECHO_PROPERTY` to ``values``."""
    return [{"id": ECHO_PROPERTY, "value": json.dumps(dict(values), separators=(",", ":"))}]


# --- people -------------------------------------------------------------------------------------


def _person(value: Any) -> dict[str, Any] | None:
    address = value.get("emailAddress") if isinstance(value, Mapping) else None
    if not isinstance(address, Mapping):
        return None
    person: dict[str, Any] = {}
    if address.get("name"):
        person["name"] = address["name"]
    if address.get("address"):
        person["email"] = address["address"]
    return person or None


def _email_address(person: Mapping[str, Any], what: str) -> dict[str, str]:
    email = person.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise CalendarInvalid(f"Every {what} needs an 'email' for Outlook calendars.")
    address = {"address": email}
    if isinstance(person.get("name"), str) and person["name"]:
        address["name"] = person["name"]
    return address


def _attendee(value: Mapping[str, Any]) -> dict[str, Any] | None:
    person = _person(value)
    if person is None:
        return None
    status = (value.get("status") or {}).get("response") if value.get("status") else None
    if status in _STATUS:
        person["status"] = _STATUS[status]
    if value.get("type") == "optional":
        person["required"] = False
    elif value.get("type") == "resource":
        person["resource"] = True
    return person


def _graph_attendee(person: Mapping[str, Any]) -> dict[str, Any]:
    kind = "optional" if person.get("required") is False else "required"
    if person.get("resource") is True:
        kind = "resource"
    return {"emailAddress": _email_address(person, "attendee"), "type": kind}


# --- events -------------------------------------------------------------------------------------


def event_body(fields: Mapping[str, Any], current: EventRecord | None = None) -> dict[str, Any]:
    """The Graph ``event`` JSON of a create (``current`` None) or an update.

    :param fields: output of ``clean_event_input``; on update only the changed keys.
    :param current: the event as it is (an update sends its times again when one changes, so
        that ``isAllDay`` and both zones stay consistent, and keeps its echo).
    :raises CalendarInvalid: a value that does not map (recurrence, attendee without e-mail).
    """
    merged: dict[str, Any] = {}
    if current is not None:
        merged = {
            "start": current.start,
            "end": current.end,
            "start_time_zone": current.start_time_zone,
            "end_time_zone": current.end_time_zone,
            "recurrence": current.recurrence,
            "creator": current.creator,
            "owner": current.owner,
        }
    merged.update(fields)
    body: dict[str, Any] = {}
    if "name" in fields:
        body["subject"] = fields["name"] or ""
    if "description" in fields:
        body["body"] = {"contentType": "text", "content": fields["description"] or ""}
    if "location" in fields:
        body["location"] = {"displayName": fields["location"] or ""}
    if "attendees" in fields:
        body["attendees"] = [_graph_attendee(a) for a in fields["attendees"] or []]
    times = {"start", "end", "start_time_zone", "end_time_zone", "recurrence"}
    if current is None or times & set(fields):
        start_zone = merged.get("start_time_zone")
        end_zone = merged.get("end_time_zone") or start_zone
        event_interval(merged["start"], merged["end"], start_zone, end_zone)  # checks the order
        all_day = not isinstance(parse_time_value(merged["start"]), datetime)
        start = to_graph_time(merged["start"], start_zone)
        end = to_graph_time(merged["end"], end_zone)
        if all_day:
            end["timeZone"] = start["timeZone"]  # Graph: both midnights in one zone
            if end["dateTime"] == start["dateTime"]:  # the API's one-day all-day event
                first = date.fromisoformat(merged["start"].strip()[:10])
                end["dateTime"] = f"{(first + timedelta(days=1)).isoformat()}T00:00:00"
        body.update(start=start, end=end, isAllDay=all_day)
        if merged.get("recurrence"):
            zone = resolve_timezone(start_zone) or timezone.utc
            first_local = parse_datetime(merged["start"], zone).astimezone(zone).date()
            body["recurrence"] = graph_recurrence.to_graph(
                merged["recurrence"], first_local, zone, start_zone or "UTC"
            )
        elif current is not None:
            body["recurrence"] = None
    echo_keys = ("start", "end", "start_time_zone", "end_time_zone", "recurrence", "creator")
    if current is None or set(fields) & {*echo_keys, "owner"}:
        body["singleValueExtendedProperties"] = echo_property(
            {k: merged.get(k) for k in (*echo_keys, "owner") if merged.get(k) is not None}
        )
    return body


def _timestamp(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = parse_datetime(value.replace(" ", "T"))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc).strftime(_GRAPH_FORMAT) + "Z"


def event_record(item: Mapping[str, Any], calendar_id: str) -> EventRecord:
    """:returns: the API's view of a Graph ``event`` (see the module docstring)."""
    all_day = bool(item.get("isAllDay"))
    start_name = zone_name(item.get("originalStartTimeZone")) or "UTC"
    end_name = zone_name(item.get("originalEndTimeZone")) or start_name
    start_zone = resolve_timezone(start_name) or timezone.utc
    end_zone = resolve_timezone(end_name) or timezone.utc
    start_moment = graph_instant(item.get("start"))
    end_moment = graph_instant(item.get("end"))
    if all_day:
        end_zone, end_name = start_zone, start_name
    start = _local_text(start_moment, start_zone, start_name, all_day)
    end = _local_text(end_moment, end_zone, end_name, all_day)
    start_tz = None if start_name == "UTC" or all_day else start_name
    end_tz = None if end_name == "UTC" or all_day else end_name
    if all_day and start_name != "UTC":
        start_tz = end_tz = start_name
    echo = echo_of(item)
    if _echo_matches(echo, start, end, start_tz, end_tz):
        start, end = echo["start"], echo["end"]
        start_tz, end_tz = echo.get("start_time_zone"), echo.get("end_time_zone")
    pattern = item.get("recurrence") if isinstance(item.get("recurrence"), Mapping) else None
    recurrence: list[Any] | None = None
    if pattern:
        recurrence = graph_recurrence.from_graph(dict(pattern), all_day, start_zone) or None
        kept = echo.get("recurrence")
        if isinstance(kept, list) and kept and _same_rule(kept, pattern, start, start_tz):
            recurrence = kept
    kind = item.get("type")
    attendees = [a for a in map(_attendee, item.get("attendees") or []) if a]
    location = item.get("location") if isinstance(item.get("location"), Mapping) else {}
    body = item.get("body") if isinstance(item.get("body"), Mapping) else {}
    return EventRecord(
        id=str(item.get("id")),
        calendar_id=calendar_id,
        start=start,
        end=end,
        name=item.get("subject"),
        description=(body or {}).get("content") or None,
        location=(location or {}).get("displayName") or None,
        start_time_zone=start_tz,
        end_time_zone=end_tz,
        all_day=all_day,
        attendees=attendees,
        organizer=_person(item.get("organizer")),
        creator=echo.get("creator") if isinstance(echo.get("creator"), dict) else None,
        owner=echo.get("owner") if isinstance(echo.get("owner"), dict) else None,
        recurrence=recurrence,
        recurrence_type="recurring" if pattern or kind in ("occurrence", "exception") else "solo",
        ical_uid=item.get("iCalUId"),
        created=_timestamp(item.get("createdDateTime")),
        modified=_timestamp(item.get("lastModifiedDateTime")),
        raw=dict(item),
    )


def master_id(item: Mapping[str, Any]) -> str | None:
    """:returns: the series an occurrence or exception belongs to (``seriesMasterId``)."""
    value = item.get("seriesMasterId")
    return str(value) if value and item.get("type") in ("occurrence", "exception") else None


def _echo_matches(
    echo: Mapping[str, Any], start: str, end: str, start_tz: str | None, end_tz: str | None
) -> bool:
    if not isinstance(echo.get("start"), str) or not isinstance(echo.get("end"), str):
        return False
    try:
        kept = event_interval(
            echo["start"], echo["end"], echo.get("start_time_zone"), echo.get("end_time_zone")
        )
        now = event_interval(start, end, start_tz, end_tz)
    except CalendarInvalid:
        return False
    same_kind = isinstance(parse_time_value(echo["start"]), datetime) == (
        isinstance(parse_time_value(start), datetime)
    )
    return same_kind and kept == now


def _same_rule(kept: list[Any], pattern: Mapping[str, Any], start: str, tz: str | None) -> bool:
    zone = resolve_timezone(tz) or timezone.utc
    try:
        first = parse_datetime(start, zone).astimezone(zone).date()
        again = graph_recurrence.to_graph(kept, first, zone, tz or "UTC")
    except (CalendarInvalid, ValueError):
        return False
    return graph_recurrence.same_recurrence(again, dict(pattern))


# --- calendars ----------------------------------------------------------------------------------

#: Calendar fields Graph has no property for (kept in the echo property).
CALENDAR_ECHO = ("description", "location", "timezone")


def calendar_body(
    fields: Mapping[str, Any], current: CalendarRecord | None = None
) -> dict[str, Any]:
    """:returns: the Graph ``calendar`` JSON of a create or an update."""
    body: dict[str, Any] = {}
    if "name" in fields:
        body["name"] = fields["name"]
    if current is None or set(fields) & set(CALENDAR_ECHO):
        kept = {k: getattr(current, k) for k in CALENDAR_ECHO} if current else {}
        kept.update({k: fields[k] for k in CALENDAR_ECHO if k in fields})
        body["singleValueExtendedProperties"] = echo_property(
            {k: v for k, v in kept.items() if v is not None}
        )
    return body


def calendar_record(item: Mapping[str, Any]) -> CalendarRecord:
    """:returns: the API's view of a Graph ``calendar``."""
    echo = echo_of(item)

    def kept(key: str) -> str | None:
        value = echo.get(key)
        return value if isinstance(value, str) else None

    return CalendarRecord(
        id=str(item.get("id")),
        name=str(item.get("name") or ""),
        description=kept("description"),
        location=kept("location"),
        timezone=kept("timezone"),
        primary=bool(item.get("isDefaultCalendar")),
        raw=dict(item),
    )
