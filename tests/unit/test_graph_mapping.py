"""RRULE <-> Graph patternedRecurrence, and Graph times and zones (pure functions)."""

from __future__ import annotations

from datetime import date, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kloudless.server.connectors import graph_mapping, graph_recurrence
from kloudless.server.connectors.calendar_base import CalendarConflict, CalendarInvalid
from kloudless.server.connectors.graph_client import GraphError
from kloudless.server.connectors.outlook_calendar import OutlookCalendar
from kloudless.server.errors import ApiError

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = date(2024, 6, 3)


@pytest.mark.parametrize(
    ("rule", "pattern", "back"),
    [
        ("FREQ=DAILY;INTERVAL=3", {"type": "daily", "interval": 3}, None),
        (
            "FREQ=WEEKLY;BYDAY=MO,WE",
            {"type": "weekly", "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "monday"},
            None,
        ),
        (
            "FREQ=WEEKLY;INTERVAL=2;WKST=SU",
            {"type": "weekly", "interval": 2, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday"},
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;WKST=SU",
        ),
        ("FREQ=MONTHLY", {"type": "absoluteMonthly", "dayOfMonth": 3}, "FREQ=MONTHLY;BYMONTHDAY=3"),
        (
            "FREQ=MONTHLY;BYDAY=2TU",
            {"type": "relativeMonthly", "daysOfWeek": ["tuesday"], "index": "second"},
            None,
        ),
        (
            "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1",
            {"type": "relativeMonthly", "daysOfWeek": ["friday"], "index": "last"},
            "FREQ=MONTHLY;BYDAY=-1FR",
        ),
        (
            "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=25",
            {"type": "absoluteYearly", "month": 12, "dayOfMonth": 25},
            None,
        ),
        (
            "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",
            {"type": "relativeYearly", "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"},
            None,
        ),
    ],
)
def test_rules_map_both_ways(rule: str, pattern: dict[str, Any], back: str | None) -> None:
    graph = graph_recurrence.to_graph([f"RRULE:{rule}"], MONDAY, BERLIN, "Europe/Berlin")
    expected = {"interval": 1, **pattern}
    assert graph["pattern"] == expected
    assert graph["range"] == {
        "startDate": "2024-06-03",
        "recurrenceTimeZone": "Europe/Berlin",
        "type": "noEnd",
    }
    assert graph_recurrence.from_graph(graph, False, BERLIN) == [f"RRULE:{back or rule}"]


def test_ranges_map_both_ways() -> None:
    counted = graph_recurrence.to_graph(
        ["RRULE:FREQ=DAILY;COUNT=4"], MONDAY, BERLIN, "Europe/Berlin"
    )
    assert counted["range"]["type"] == "numbered" and counted["range"]["numberOfOccurrences"] == 4
    until = graph_recurrence.to_graph(
        ["RRULE:FREQ=DAILY;UNTIL=20240630T215959Z"], MONDAY, BERLIN, "Europe/Berlin"
    )
    assert until["range"] == {
        "startDate": "2024-06-03",
        "recurrenceTimeZone": "Europe/Berlin",
        "type": "endDate",
        "endDate": "2024-06-30",
    }
    # Back: the end of the end date in the event's zone, in UTC (timed); a date (all-day).
    assert graph_recurrence.from_graph(until, False, BERLIN) == [
        "RRULE:FREQ=DAILY;UNTIL=20240630T215959Z"
    ]
    assert graph_recurrence.from_graph(until, True, BERLIN) == ["RRULE:FREQ=DAILY;UNTIL=20240630"]


@pytest.mark.parametrize(
    "lines",
    [
        ["RRULE:FREQ=HOURLY"],
        ["RRULE:FREQ=DAILY;BYHOUR=9"],
        ["RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15"],
        ["RRULE:FREQ=MONTHLY;BYDAY=5MO"],
        ["RRULE:FREQ=WEEKLY;BYDAY=1MO"],
        ["RRULE:FREQ=YEARLY;BYWEEKNO=20"],
        ["RRULE:FREQ=DAILY", "RRULE:FREQ=WEEKLY"],
        ["RRULE:FREQ=DAILY", "EXDATE:20240605T070000Z"],
        ["RDATE:20240605T070000Z"],
    ],
)
def test_rules_that_do_not_map(lines: list[str]) -> None:
    with pytest.raises(CalendarInvalid, match="does not map to Outlook"):
        graph_recurrence.to_graph(lines, MONDAY, timezone.utc, "UTC")


def test_bad_rules_are_invalid() -> None:
    for lines in (["RRULE:FREQ=DAILY;COUNT=2;UNTIL=20240601"], ["RRULE:FREQ=DAILY;INTERVAL=0"]):
        with pytest.raises(CalendarInvalid):
            graph_recurrence.to_graph(lines, MONDAY, timezone.utc, "UTC")


def test_windows_and_iana_zone_names() -> None:
    assert graph_mapping.zone_name("W. Europe Standard Time") == "Europe/Berlin"
    assert graph_mapping.zone_name("Pacific Standard Time") == "America/Los_Angeles"
    assert graph_mapping.zone_name("Europe/Paris") == "Europe/Paris"
    assert graph_mapping.zone_name("tzone://Microsoft/Utc") == "UTC"
    assert graph_mapping.zone_name("Nowhere Standard Time") is None


def test_graph_times() -> None:
    assert graph_mapping.to_graph_time("2024-07-02T08:00:00+07:00", None) == {
        "dateTime": "2024-07-02T01:00:00",
        "timeZone": "UTC",
    }
    assert graph_mapping.to_graph_time("2024-07-02T08:00:00+07:00", "Europe/Berlin") == {
        "dateTime": "2024-07-02T03:00:00",
        "timeZone": "Europe/Berlin",
    }
    assert graph_mapping.to_graph_time("2024-07-03", "Asia/Tokyo") == {
        "dateTime": "2024-07-03T00:00:00",
        "timeZone": "Asia/Tokyo",
    }
    seven_digits = {"dateTime": "2024-07-01T07:00:00.1234567", "timeZone": "UTC"}
    moment = graph_mapping.graph_instant(seven_digits)
    assert (moment.hour, moment.microsecond, moment.tzinfo) == (7, 123456, timezone.utc)
    with pytest.raises(ApiError) as unreadable:
        graph_mapping.graph_instant({"dateTime": "yesterday", "timeZone": "UTC"})
    assert unreadable.value.status == 502


def test_an_event_without_the_echo_reads_from_graph_fields() -> None:
    """An event made in Outlook: no extended property; Graph's own fields only."""
    item = {
        "id": "e1",
        "subject": "Lunch",
        "isAllDay": False,
        "start": {"dateTime": "2024-07-01T10:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2024-07-01T11:00:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "Tokyo Standard Time",
        "originalEndTimeZone": "Tokyo Standard Time",
        "attendees": [
            {
                "emailAddress": {"name": "Ann", "address": "ann@example.com"},
                "type": "required",
                "status": {"response": "tentativelyAccepted"},
            },
            {"emailAddress": {"address": "room@example.com"}, "type": "resource"},
        ],
        "organizer": {"emailAddress": {"name": "Bob", "address": "bob@example.com"}},
        "type": "occurrence",
        "seriesMasterId": "m1",
        "createdDateTime": "2024-06-01T10:00:00.1234567Z",
    }
    record = graph_mapping.event_record(item, "c1")
    assert (record.start, record.end, record.start_time_zone) == (
        "2024-07-01T19:00:00",
        "2024-07-01T20:00:00",
        "Asia/Tokyo",
    )
    assert record.attendees == [
        {"name": "Ann", "email": "ann@example.com", "status": "tentative"},
        {"email": "room@example.com", "resource": True},
    ]
    assert record.organizer == {"name": "Bob", "email": "bob@example.com"}
    assert record.recurrence_type == "recurring" and graph_mapping.master_id(item) == "m1"
    assert record.created == "2024-06-01T10:00:00Z" and record.description is None


def test_attendees_need_an_address() -> None:
    with pytest.raises(CalendarInvalid, match="email"):
        graph_mapping.event_body(
            {"start": "2024-01-01", "end": "2024-01-02", "attendees": [{"name": "No mail"}]}
        )


@pytest.mark.parametrize(
    ("status", "code", "retry_after", "expected", "wait"),
    [
        (429, "ApplicationThrottled", "12", (429, "too_many_requests"), "12"),
        (503, "ServiceUnavailable", "3", (429, "too_many_requests"), "3"),  # Graph throttling
        (509, "BandwidthLimitExceeded", None, (429, "too_many_requests"), "5"),
        (503, "ServiceUnavailable", None, (503, "service_not_available"), "5"),
        (403, "ErrorAccessDenied", None, (403, "forbidden"), None),
        (404, "ErrorItemNotFound", None, (404, "not_found"), None),
        (409, "ErrorFolderExists", None, (409, "naming_conflict"), None),
        (412, "ErrorIrresolvableConflict", None, (412, "precondition_failed"), None),
        (500, "generalException", None, (502, "bad_gateway"), None),
    ],
)
def test_graph_errors_become_the_apis(
    status: int, code: str, retry_after: str | None, expected: tuple[int, str], wait: str | None
) -> None:
    answer = GraphError(status, code, "...", retry_after).api_error()
    assert (answer.status, answer.error_code) == expected
    assert answer.headers.get("Retry-After") == wait
    if code == "ErrorAccessDenied":
        assert "Calendars.ReadWrite" in answer.message


def test_a_moved_change_key_is_412_whatever_graphs_status() -> None:
    for status in (409, 412):
        answer = OutlookCalendar._error(GraphError(status, "ErrorIrresolvableConflict", "..."))
        assert isinstance(answer, ApiError) and answer.status == 412
    assert isinstance(
        OutlookCalendar._error(GraphError(409, "ErrorFolderExists", "")), CalendarConflict
    )


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2024-07-03T07:00:00", "2024-07-04T07:00:00"),  # midnights in Los Angeles, in UTC
        ("2024-07-03T00:00:00", "2024-07-04T00:00:00"),  # the day as midnights of UTC
    ],
)
def test_all_day_events_read_as_their_dates(start: str, end: str) -> None:
    item = {
        "id": "e2",
        "isAllDay": True,
        "start": {"dateTime": start, "timeZone": "UTC"},
        "end": {"dateTime": end, "timeZone": "UTC"},
        "originalStartTimeZone": "Pacific Standard Time",
    }
    record = graph_mapping.event_record(item, "c1")
    assert (record.start, record.end, record.all_day) == ("2024-07-03", "2024-07-04", True)
    assert record.start_time_zone == "America/Los_Angeles"
