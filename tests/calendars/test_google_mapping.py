"""The Google Calendar field mapping, as pure functions (google_calendar_mapping)."""

from __future__ import annotations

import json

import pytest

from kloudless.server.connectors.calendar_base import CalendarInvalid
from kloudless.server.connectors.google_calendar_mapping import (
    TIMES_PROPERTY,
    event_body,
    event_record,
    time_value,
)


@pytest.mark.parametrize(
    ("text", "zone", "recurring", "expected"),
    [
        ("2024-07-03", None, False, {"date": "2024-07-03"}),
        ("2024-07-01T09:00:00Z", None, False, {"dateTime": "2024-07-01T09:00:00Z"}),
        ("2024-07-01T09:00:00+07:00", None, False, {"dateTime": "2024-07-01T09:00:00+07:00"}),
        (
            "2024-07-01T09:00:00",
            "Europe/Berlin",
            False,
            {"dateTime": "2024-07-01T09:00:00", "timeZone": "Europe/Berlin"},
        ),
        ("2024-07-01T09:00:00", None, False, {"dateTime": "2024-07-01T09:00:00Z"}),
        (
            "2024-07-01T09:00:00Z",
            None,
            True,
            {"dateTime": "2024-07-01T09:00:00Z", "timeZone": "UTC"},
        ),
    ],
)
def test_times_are_sent_as_google_reads_them(
    text: str, zone: str | None, recurring: bool, expected: dict[str, str]
) -> None:
    assert time_value(text, zone, recurring) == expected


def test_the_clients_strings_come_back_while_they_match_googles_instants() -> None:
    body = event_body({"start": "2024-07-01T09:00:00+07:00", "end": "2024-07-01T10:00:00+07:00"})
    # Google answers in the calendar's zone.
    answer = dict(
        body,
        id="e1",
        start={"dateTime": "2024-06-30T19:00:00-07:00"},
        end={"dateTime": "2024-06-30T20:00:00-07:00"},
    )
    record = event_record(answer, "c")
    assert (record.start, record.end) == ("2024-07-01T09:00:00+07:00", "2024-07-01T10:00:00+07:00")
    # Moved at Google by an hour: Google's values, not the stale strings.
    moved = dict(
        answer,
        start={"dateTime": "2024-06-30T20:00:00-07:00"},
        end={"dateTime": "2024-06-30T21:00:00-07:00"},
    )
    record = event_record(moved, "c")
    assert (record.start, record.end) == ("2024-06-30T20:00:00-07:00", "2024-06-30T21:00:00-07:00")
    assert json.loads(body["extendedProperties"]["private"][TIMES_PROPERTY])[0] == (
        "2024-07-01T09:00:00+07:00"
    )


def test_attendees_both_ways() -> None:
    body = event_body(
        {
            "start": "2024-01-01",
            "end": "2024-01-02",
            "attendees": [
                {"name": "Ann", "email": "ann@example.com", "status": "accepted"},
                {"email": "bob@example.com", "required": False},
            ],
        }
    )
    assert body["attendees"] == [
        {"email": "ann@example.com", "displayName": "Ann", "responseStatus": "accepted"},
        {"email": "bob@example.com", "optional": True},
    ]
    answer = dict(
        body,
        id="e",
        attendees=[*body["attendees"], {"email": "c@x.org", "responseStatus": "needsAction"}],
    )
    assert event_record(answer, "c").attendees == [
        {"name": "Ann", "email": "ann@example.com", "status": "accepted"},
        {"email": "bob@example.com", "required": False},
        {"email": "c@x.org"},
    ]
    with pytest.raises(CalendarInvalid):
        event_body({"start": "2024-01-01", "end": "2024-01-02", "attendees": [{"name": "x"}]})
    with pytest.raises(CalendarInvalid):
        event_body({"start": "2024-01-02", "end": "2024-01-01"})


def test_an_update_keeps_what_the_api_does_not_map() -> None:
    current = {
        "id": "e",
        "etag": '"1"',
        "summary": "old",
        "colorId": "5",
        "reminders": {"useDefault": False},
        "start": {"dateTime": "2024-01-01T10:00:00Z"},
        "end": {"dateTime": "2024-01-01T11:00:00Z"},
        "recurrence": ["RRULE:FREQ=DAILY"],
    }
    body = event_body({"name": "new", "recurrence": None}, current)
    assert (body["summary"], body["colorId"], body["reminders"]) == (
        "new",
        "5",
        {"useDefault": False},
    )
    assert body["recurrence"] == [] and "etag" not in body
    assert body["start"] == {"dateTime": "2024-01-01T10:00:00Z"}
