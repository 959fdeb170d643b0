"""VEVENT <-> API fields, and the CalDAV backend against a real Radicale server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import icalendar
import pytest

from kloudless.server.connectors.caldav import CalDAVCalendar, decode_id, encode_id
from kloudless.server.connectors.caldav_mapping import (
    apply_fields,
    calendar_text,
    event_fields,
    find_vevent,
    new_vevent,
    parse_calendar,
    touch,
)
from kloudless.server.connectors.calendar_base import (
    CalendarConflict,
    CalendarForbidden,
    CalendarInvalid,
    CalendarNotFound,
)
from kloudless.server.connectors.webdav_errors import ServiceNotAvailable, ServiceUnauthorized

from .servers import LOOPBACK_POLICY, DavServer


def roundtrip(fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    cal, vevent = new_vevent()
    apply_fields(vevent, fields)
    text = calendar_text(cal)
    return event_fields(find_vevent(parse_calendar(text))), text


# -- pure mapping ---------------------------------------------------------------------------------


def test_offset_times_come_back_exactly() -> None:
    fields, text = roundtrip(
        {"name": "Meet", "start": "2017-05-20T08:00:00+07:00", "end": "2017-05-20T09:00:00+07:00"}
    )
    assert "DTSTART:20170520T010000Z" in text  # stored in UTC for other clients
    assert (fields["start"], fields["end"]) == (
        "2017-05-20T08:00:00+07:00",
        "2017-05-20T09:00:00+07:00",
    )
    assert fields["name"] == "Meet" and fields["all_day"] is False
    assert fields["recurrence_type"] == "solo" and fields["recurrence"] is None


def test_time_zone_uses_tzid_and_vtimezone() -> None:
    fields, text = roundtrip(
        {
            "start": "2024-07-01T09:00:00",
            "end": "2024-07-01T10:30:00",
            "start_time_zone": "Europe/Berlin",
        }
    )
    assert "DTSTART;TZID=Europe/Berlin:20240701T090000" in text
    assert "BEGIN:VTIMEZONE" in text
    assert fields["start_time_zone"] == "Europe/Berlin" and fields["end_time_zone"] is None
    assert fields["start"] == "2024-07-01T09:00:00"


def test_all_day_event() -> None:
    fields, text = roundtrip({"start": "2024-03-01", "end": "2024-03-03"})
    assert "DTSTART;VALUE=DATE:20240301" in text and "DTEND;VALUE=DATE:20240303" in text
    assert fields["all_day"] is True and fields["start"] == "2024-03-01"


def test_events_written_by_other_clients_are_derived() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:abc\r\n"
        "DTSTAMP:20240101T000000Z\r\nDTSTART;TZID=America/New_York:20240105T100000\r\n"
        "DURATION:PT90M\r\nSUMMARY:Standup\r\nRRULE:FREQ=DAILY;COUNT=5\r\n"
        "EXDATE;TZID=America/New_York:20240107T100000\r\n"
        "ORGANIZER;CN=Boss:mailto:boss@example.com\r\n"
        "ATTENDEE;CN=Ann;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT:MAILTO:ann@example.com\r\n"
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    vevent = find_vevent(parse_calendar(text))
    fields = event_fields(vevent)
    assert fields["start"] == "2024-01-05T10:00:00-05:00"
    assert fields["end"] == "2024-01-05T11:30:00-05:00"
    assert fields["start_time_zone"] == "America/New_York"
    assert fields["ical_uid"] == "abc" and fields["modified"] == "2024-01-01T00:00:00Z"
    assert fields["recurrence_type"] == "recurring"
    assert fields["recurrence"][0] == "RRULE:FREQ=DAILY;COUNT=5"
    assert fields["recurrence"][1].startswith("EXDATE;TZID=America/New_York:20240107T100000")
    assert fields["organizer"] == {"name": "Boss", "email": "boss@example.com"}
    assert fields["attendees"] == [
        {"name": "Ann", "email": "ann@example.com", "status": "needs_action", "required": True}
    ]
    # An edit keeps what the API does not know (the alarm).
    apply_fields(vevent, {"name": "Daily standup"})
    touch(vevent)
    again = parse_calendar(calendar_text(parse_calendar(text)))
    assert again.walk("VALARM")
    assert "BEGIN:VALARM" in vevent.to_ical().decode() and str(vevent["SEQUENCE"]) == "1"


def test_stale_kept_times_are_ignored() -> None:
    cal, vevent = new_vevent()
    apply_fields(vevent, {"start": "2024-01-01T10:00:00+02:00", "end": "2024-01-01T11:00:00+02:00"})
    del vevent["DTSTART"]
    vevent.add(
        "DTSTART", datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)
    )  # another client moved it
    fields = event_fields(vevent)
    assert fields["start"] == "2024-01-01T09:00:00Z"
    assert fields["end"] == "2024-01-01T11:00:00+02:00"  # DTEND unchanged and still matches


def test_people_and_recurrence_roundtrip() -> None:
    people = {
        "attendees": [
            {"name": "A", "email": "a@x.org"},
            {"email": "b@x.org", "status": "accepted"},
        ],
        "organizer": {"name": "O", "email": "o@x.org"},
        "creator": {"name": "C", "email": "c@x.org"},
        "owner": {"email": "w@x.org"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3", "EXDATE:20240108T100000Z"],
        "description": "line one\nline two, with; punctuation",
        "location": "Room 1",
    }
    fields, _ = roundtrip(
        {"start": "2024-01-01T10:00:00Z", "end": "2024-01-01T11:00:00Z", **people}
    )
    for key in people:
        assert fields[key] == people[key], key


def test_invalid_input_is_refused() -> None:
    _, vevent = new_vevent()
    with pytest.raises(CalendarInvalid):
        apply_fields(vevent, {"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"})
    for recurrence in (["FREQ=DAILY"], [{"rrule": "x"}], ["RRULE:FREQ=NEVER"], ["RRULE:X\r\nY:1"]):
        with pytest.raises(CalendarInvalid):
            apply_fields(vevent, {"recurrence": recurrence})
    with pytest.raises(CalendarInvalid):
        apply_fields(vevent, {"attendees": [{"name": "no email"}]})
    with pytest.raises(ValueError):
        parse_calendar("not ical")
    with pytest.raises(ValueError):
        find_vevent(parse_calendar("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"))


def test_ids() -> None:
    assert decode_id("evt_", encode_id("evt_", "a b@ü.ics"), "Event") == "a b@ü.ics"
    for bad in ("evt_", "cal_abc", "evt_!!", "evt_Lw", "evt_" + encode_id("", "x/y")):
        with pytest.raises(CalendarNotFound):
            decode_id("evt_", bad, "Event")


# -- the backend against Radicale ---------------------------------------------------------------


@pytest.fixture
def backend(caldav_server: DavServer) -> Iterator[CalDAVCalendar]:
    # A fresh user collection path per test keeps tests apart: Radicale's owner_only rights
    # let the user create calendars under /<user>/.
    cal = CalDAVCalendar(
        caldav_server.url, caldav_server.username, caldav_server.password, policy=LOOPBACK_POLICY
    )
    yield cal
    cal.close()


def _calendar(backend: CalDAVCalendar) -> str:
    return backend.create_calendar({"name": f"Test {uuid.uuid4().hex[:6]}"}).id


def test_calendars_crud(backend: CalDAVCalendar) -> None:
    primary = backend.primary_calendar_id()
    assert backend.primary_calendar_id() == primary  # stable
    created = backend.create_calendar(
        {"name": "Work", "description": "job", "timezone": "Europe/Paris"}
    )
    assert (created.name, created.description, created.timezone) == ("Work", "job", "Europe/Paris")
    assert created.primary is False and created.raw["href"].endswith("/")
    listed = backend.list_calendars(1, 1000).objects
    assert listed[0].primary and created.id in {c.id for c in listed}
    assert backend.get_calendar("primary").id == primary
    updated = backend.update_calendar(created.id, {"name": "Work 2", "description": None})
    assert updated.name == "Work 2"
    with pytest.raises(CalendarForbidden):
        backend.delete_calendar("primary")
    assert backend.delete_calendar(created.id).id == created.id
    with pytest.raises(CalendarNotFound):
        backend.get_calendar(created.id)
    with pytest.raises(CalendarNotFound):
        backend.get_calendar("cal_bm9wZQ")


def test_events_crud_and_time_range(backend: CalDAVCalendar) -> None:
    cal_id = _calendar(backend)
    early = backend.create_event(
        cal_id, {"name": "early", "start": "2024-01-01T09:00:00Z", "end": "2024-01-01T10:00:00Z"}
    )
    late = backend.create_event(
        cal_id,
        {"name": "late", "start": "2024-02-01T09:00:00+01:00", "end": "2024-02-01T10:00:00+01:00"},
    )
    allday = backend.create_event(
        cal_id, {"name": "day", "start": "2024-01-15", "end": "2024-01-16"}
    )
    weekly = backend.create_event(
        cal_id,
        {
            "name": "weekly",
            "start": "2023-12-04T08:00:00Z",
            "end": "2023-12-04T08:30:00Z",
            "recurrence": ["RRULE:FREQ=WEEKLY"],
        },
    )
    assert late.start == "2024-02-01T09:00:00+01:00" and "BEGIN:VCALENDAR" in late.raw
    assert allday.all_day and weekly.recurrence_type == "recurring"
    everything = backend.list_events(cal_id, 1, 1000)
    assert [e.name for e in everything.objects] == ["weekly", "early", "day", "late"]
    january = backend.list_events(
        cal_id,
        1,
        1000,
        datetime(2024, 1, 10, tzinfo=timezone.utc),
        datetime(2024, 1, 20, tzinfo=timezone.utc),
    )
    assert {e.name for e in january.objects} == {"day", "weekly"}  # weekly recurs into the range
    page1 = backend.list_events(cal_id, 1, 2)
    page2 = backend.list_events(cal_id, 2, 2)
    assert page1.next_page == 2 and page2.next_page is None
    assert [e.id for e in page1.objects + page2.objects] == [e.id for e in everything.objects]

    got = backend.get_event(cal_id, early.id)
    assert (got.name, got.start, got.end) == (
        "early",
        "2024-01-01T09:00:00Z",
        "2024-01-01T10:00:00Z",
    )
    changed = backend.update_event(
        cal_id, early.id, {"name": "moved", "start": "2024-01-01T08:00:00Z"}
    )
    assert (changed.name, changed.start, changed.end) == (
        "moved",
        "2024-01-01T08:00:00Z",
        "2024-01-01T10:00:00Z",
    )
    assert changed.id == early.id and changed.ical_uid == early.ical_uid
    with pytest.raises(CalendarInvalid):
        backend.update_event(cal_id, early.id, {"end": "2023-01-01T00:00:00Z"})
    with pytest.raises(CalendarConflict) as conflict:
        backend.create_event(
            cal_id,
            {
                "start": "2024-01-01T09:00:00Z",
                "end": "2024-01-01T10:00:00Z",
                "ical_uid": early.ical_uid,
            },
        )
    assert conflict.value.conflicting_id == early.id
    assert backend.delete_event(cal_id, early.id).id == early.id
    with pytest.raises(CalendarNotFound):
        backend.get_event(cal_id, early.id)
    with pytest.raises(CalendarNotFound):
        backend.get_event(cal_id, "evt_bm9wZQ")


def test_busy_intervals_from_events(backend: CalDAVCalendar) -> None:
    cal_id = _calendar(backend)
    backend.create_event(cal_id, {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T11:00:00Z"})
    busy = backend.busy_intervals(
        cal_id, datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 2, tzinfo=timezone.utc)
    )
    assert busy == [
        (
            datetime(2024, 5, 1, 10, tzinfo=timezone.utc),
            datetime(2024, 5, 1, 11, tzinfo=timezone.utc),
        )
    ]


def test_events_of_other_clients_are_listed(backend: CalDAVCalendar) -> None:
    cal_id = _calendar(backend)
    calendar = backend._calendar(cal_id)
    cal = icalendar.Calendar()
    cal.add("PRODID", "other")
    cal.add("VERSION", "2.0")
    todo = icalendar.Todo()
    todo.add("UID", "todo-1")
    todo.add("SUMMARY", "not an event")
    cal.add_component(todo)
    calendar.save_todo(cal.to_ical().decode())
    calendar.save_event(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:ext-1\r\n"
        "DTSTAMP:20240101T000000Z\r\nDTSTART;VALUE=DATE:20240301\r\nSUMMARY:ext\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    events = backend.list_events(cal_id, 1, 100).objects
    assert [(e.name, e.start, e.end, e.all_day) for e in events] == [
        ("ext", "2024-03-01", "2024-03-02", True)
    ]


def test_wrong_password_and_down(caldav_server: DavServer, closed_port_url: str) -> None:
    bad = CalDAVCalendar(caldav_server.url, caldav_server.username, "wrong", policy=LOOPBACK_POLICY)
    with pytest.raises(ServiceUnauthorized) as info:
        bad.list_calendars(1, 10)
    assert info.value.status == 401 and "wrong" not in info.value.message
    bad.close()
    down = CalDAVCalendar(closed_port_url, "u", "p", timeout=2, policy=LOOPBACK_POLICY)
    with pytest.raises(ServiceNotAvailable):
        down.list_calendars(1, 10)
    down.close()


@pytest.mark.parametrize(
    ("raised", "expected", "status"),
    [
        ("put507", "insufficient_storage", 507),
        ("report500", "bad_gateway", 502),
        ("put412", "naming_conflict", 409),
        ("propfind404", None, 404),
        ("auth403", "service_forbidden", 403),
        ("timeout", "gateway_timeout", 504),
        ("noreason", "bad_gateway", 502),
    ],
)
def test_upstream_error_mapping(raised: str, expected: str | None, status: int) -> None:
    import requests
    from caldav.lib import error as caldav_error

    from kloudless.server.connectors.caldav import upstream_errors

    exceptions: dict[str, Exception] = {
        "put507": caldav_error.PutError("u", "507 Insufficient Storage\n\nbody"),
        "report500": caldav_error.ReportError("u", "500 Internal Server Error\n\n"),
        "put412": caldav_error.PutError("u", "412 Precondition Failed\n\n"),
        "propfind404": caldav_error.PropfindError("u", "404 Not Found\n\n"),
        "auth403": caldav_error.AuthorizationError("u", "403 Forbidden"),
        "timeout": requests.ReadTimeout("slow"),
        "noreason": caldav_error.DAVError("u"),
    }
    with pytest.raises(Exception) as info:
        with upstream_errors("gone"):
            raise exceptions[raised]
    if expected is None:
        assert isinstance(info.value, CalendarNotFound) and info.value.message == "gone"
    else:
        assert (getattr(info.value, "error_code", None), getattr(info.value, "status", None)) == (
            expected,
            status,
        )
