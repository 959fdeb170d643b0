"""Map Google Calendar v3 resources to and from the calendar API's fields (pure functions).

Calendars (``CalendarListEntry`` / ``Calendar``)
    ``id`` ↔ ``id``, ``name`` ↔ ``summaryOverride`` (the user's own name for it) or
    ``summary``, ``description`` ↔ ``description``, ``location`` ↔ ``location``,
    ``timezone`` ↔ ``timeZone``, ``primary`` ↔ ``primary``.

Events (``Event``)
    ``name`` ↔ ``summary``, ``description``, ``location``, ``ical_uid`` ↔ ``iCalUID``,
    ``start``/``end`` ↔ ``start``/``end`` (``date`` for all-day events, else ``dateTime`` in
    RFC 3339 with ``timeZone`` from ``start_time_zone``/``end_time_zone``; a value without an
    offset nor a zone is UTC), ``attendees`` ↔ ``attendees`` (``name`` ↔ ``displayName``,
    ``email``, ``status`` ↔ ``responseStatus`` in snake case, omitted while it is
    ``needsAction``; ``required`` ↔ not ``optional``), ``organizer``/``creator`` ↔
    ``organizer``/``creator`` (read only: Google makes the calendar's owner the organizer),
    ``recurrence`` ↔ ``recurrence`` (the same ``RRULE:``/``EXDATE:`` lines),
    ``recurring_master_id`` ↔ ``recurringEventId``, ``created`` ↔ ``created``, ``modified`` ↔
    ``updated``, the etag ↔ ``etag``.

    Google answers ``dateTime`` in its own form (with the offset of the event's zone), so the
    client's strings are kept in the private extended property ``kloudless_times`` and shown
    again while they still denote the same instants (an edit elsewhere makes them stale; the
    values then come from Google's). Recurring events need a zone at Google: ``UTC`` is sent
    when the client gave none.

Not mapped: ``owner`` (null), ``attachments`` (empty; Google's are Drive links), reminders,
colours, conference data, visibility and transparency (kept as they are on update).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, timezone
from typing import Any

from kloudless.server.availability import parse_datetime, parse_time_value, resolve_timezone

from .calendar_base import CalendarInvalid, CalendarRecord, EventRecord, event_interval

__all__ = [
    "TIMES_PROPERTY",
    "calendar_body",
    "calendar_record",
    "event_body",
    "event_record",
    "time_value",
]

#: The private extended property holding the client's own time strings.
TIMES_PROPERTY = "kloudless_times"
_STATUS_TO_GOOGLE = {
    "needs_action": "needsAction",
    "accepted": "accepted",
    "declined": "declined",
    "tentative": "tentative",
}
_STATUS_FROM_GOOGLE = {v: k for k, v in _STATUS_TO_GOOGLE.items()}


def calendar_record(item: Mapping[str, Any], primary_id: str | None) -> CalendarRecord:
    """:returns: the record of a ``CalendarListEntry`` or ``Calendar``."""
    cid = str(item.get("id", ""))
    return CalendarRecord(
        id=cid,
        name=str(item.get("summaryOverride") or item.get("summary") or ""),
        description=item.get("description"),
        location=item.get("location"),
        timezone=item.get("timeZone"),
        primary=bool(item.get("primary")) or cid == primary_id,
        raw=dict(item),
    )


def calendar_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """:returns: a ``Calendar`` body from cleaned calendar fields."""
    names = {"name": "summary", "description": "description", "location": "location"}
    body = {names[k]: v for k, v in fields.items() if k in names}
    if "timezone" in fields:
        body["timeZone"] = fields["timezone"]
    return body


def _rfc3339(moment: datetime) -> str:
    text = moment.isoformat()
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


def time_value(text: str, zone: str | None, recurring: bool) -> dict[str, Any]:
    """:returns: Google's ``EventDateTime`` for a start or end as the client gave it."""
    value = parse_time_value(text)
    if not isinstance(value, datetime) and isinstance(value, date):
        return {"date": value.isoformat()}
    assert isinstance(value, datetime)
    result: dict[str, Any] = {}
    if value.tzinfo is not None:
        result["dateTime"] = _rfc3339(value)
    elif zone:
        # A wall time in the event's zone: Google reads it in ``timeZone``.
        result["dateTime"] = value.replace(microsecond=0).isoformat()
    else:
        result["dateTime"] = _rfc3339(parse_datetime(text).astimezone(timezone.utc))
    if zone or recurring:
        result["timeZone"] = zone or "UTC"
    return result


def _from_time(value: Mapping[str, Any] | None) -> tuple[str, str | None]:
    value = value or {}
    if value.get("date"):
        return str(value["date"]), None
    return str(value.get("dateTime", "")), value.get("timeZone")


def _person(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not value.get("email"):
        return None
    person: dict[str, Any] = {}
    if value.get("displayName"):
        person["name"] = value["displayName"]
    person["email"] = value["email"]
    return person


def _attendee(value: Mapping[str, Any]) -> dict[str, Any]:
    person = _person(value) or {"email": value.get("email")}
    status = value.get("responseStatus")
    if status and status != "needsAction":
        person["status"] = _STATUS_FROM_GOOGLE.get(str(status), str(status))
    if "optional" in value:
        person["required"] = not value["optional"]
    return person


def _google_attendee(person: Mapping[str, Any]) -> dict[str, Any]:
    email = person.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise CalendarInvalid("Every attendee needs an 'email' address at Google Calendar.")
    result: dict[str, Any] = {"email": email}
    if isinstance(person.get("name"), str):
        result["displayName"] = person["name"]
    status = person.get("status")
    if isinstance(status, str) and status:
        if status not in _STATUS_TO_GOOGLE:
            raise CalendarInvalid(
                f"Attendee 'status' must be one of {', '.join(_STATUS_TO_GOOGLE)}."
            )
        result["responseStatus"] = _STATUS_TO_GOOGLE[status]
    if isinstance(person.get("required"), bool):
        result["optional"] = not person["required"]
    return result


def _client_times(item: Mapping[str, Any]) -> list[Any] | None:
    private = (item.get("extendedProperties") or {}).get("private") or {}
    try:
        times = json.loads(private.get(TIMES_PROPERTY) or "null")
    except ValueError:
        return None
    return times if isinstance(times, list) and len(times) == 4 else None


def _times(item: Mapping[str, Any]) -> tuple[str, str, str | None, str | None]:
    """:returns: ``(start, end, start_tz, end_tz)``: the client's strings while they still
    mean Google's instants, else Google's own values."""
    start, start_tz = _from_time(item.get("start"))
    end, end_tz = _from_time(item.get("end"))
    kept = _client_times(item)
    if kept is not None and start and end:
        try:
            same = event_interval(*kept) == event_interval(start, end, start_tz, end_tz)
        except (CalendarInvalid, TypeError):
            same = False
        if same:
            return kept[0], kept[1], kept[2], kept[3]
    return start, end, start_tz, end_tz


def event_record(item: Mapping[str, Any], calendar_id: str) -> EventRecord:
    """:returns: the record of a Google ``Event`` (a cancelled one has only its id)."""
    start, end, start_tz, end_tz = _times(item)
    recurrence = item.get("recurrence") or None
    return EventRecord(
        id=str(item.get("id", "")),
        calendar_id=calendar_id,
        start=start,
        end=end,
        name=item.get("summary"),
        description=item.get("description"),
        location=item.get("location"),
        start_time_zone=start_tz,
        end_time_zone=end_tz,
        all_day=bool((item.get("start") or {}).get("date")),
        attendees=[_attendee(a) for a in item.get("attendees") or [] if isinstance(a, dict)],
        organizer=_person(item.get("organizer")),
        creator=_person(item.get("creator")),
        recurrence=list(recurrence) if recurrence else None,
        recurrence_type="recurring" if recurrence or item.get("recurringEventId") else "solo",
        recurring_master_id=item.get("recurringEventId"),
        ical_uid=item.get("iCalUID"),
        created=item.get("created"),
        modified=item.get("updated"),
        etag=item.get("etag"),
        raw=dict(item),
    )


def event_body(
    fields: Mapping[str, Any], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """:param fields: cleaned event fields (all of a create, or the changes of an update).
    :param current: the event as Google has it (an update keeps what the API does not map).
    :returns: the ``Event`` body to send.
    :raises CalendarInvalid: the end is before the start, or an attendee has no address.
    """
    body: dict[str, Any] = dict(current or {})
    if current is not None:
        start, end, start_tz, end_tz = _times(current)
    else:
        start, end, start_tz, end_tz = "", "", None, None
    start = fields.get("start", start)
    end = fields.get("end", end)
    start_tz = fields.get("start_time_zone", start_tz)
    end_tz = fields.get("end_time_zone", end_tz)
    event_interval(start, end, start_tz, end_tz)  # raises CalendarInvalid
    names = {"name": "summary", "description": "description", "location": "location"}
    for key, google in names.items():
        if key in fields:
            body[google] = fields[key]
    if "recurrence" in fields:
        body["recurrence"] = list(fields["recurrence"] or [])
    recurring = bool(body.get("recurrence"))
    body["start"] = time_value(start, start_tz, recurring)
    body["end"] = time_value(end, end_tz or start_tz, recurring)
    if "attendees" in fields:
        body["attendees"] = [_google_attendee(p) for p in fields["attendees"] or []]
    if "ical_uid" in fields:
        body["iCalUID"] = fields["ical_uid"]
    for zone in (start_tz, end_tz):
        if zone:
            resolve_timezone(zone)
    extended = dict(body.get("extendedProperties") or {})
    private = dict(extended.get("private") or {})
    private[TIMES_PROPERTY] = json.dumps([start, end, start_tz, end_tz], separators=(",", ":"))
    extended["private"] = private
    body["extendedProperties"] = extended
    for read_only in ("etag", "kind", "htmlLink", "created", "updated", "creator"):
        body.pop(read_only, None)
    return body
