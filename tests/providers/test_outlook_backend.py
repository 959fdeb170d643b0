"""The Outlook calendar backend against the Graph stand-in (contract tests of the Graph calls:
requests the stand-in checks as Graph does, answers read back through the mapping)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import bootstrap
from kloudless.server.connectors.calendar_base import (
    CalendarConflict,
    CalendarForbidden,
    CalendarInvalid,
    CalendarNotFound,
    clean_calendar_input,
    clean_event_input,
)
from kloudless.server.connectors.graph_client import GraphClient, GraphError
from kloudless.server.connectors.outlook_calendar import OutlookCalendar
from kloudless.server.errors import ApiError
from kloudless.server.outbound import policy_for

from .graph_standin import GraphState
from .standins import Provider

TOKEN = "graph-test-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerApp]:
    # One server for the module: the Graph state is fresh for every test, and the server's
    # own state (page tokens, sync state) is keyed by Graph's ids, new in every test.
    data = tmp_path_factory.mktemp("outlook-data")
    app = create_app(Settings(data_dir=str(data), allow_upstream=["127.0.0.1"]))
    assert bootstrap(app.store) is not None
    yield app
    app.close()


@pytest.fixture
def graph(standin: Provider) -> GraphState:
    standin.reset()
    standin.state.grant.access[TOKEN] = time.time() + 3600
    return standin.graph.state


@pytest.fixture
def outlook(server: ServerApp, standin: Provider, graph: GraphState) -> OutlookCalendar:
    row = server.store.all("SELECT * FROM accounts ORDER BY id LIMIT 1")[0]
    client = GraphClient(standin.api_base, lambda rejected: TOKEN, policy_for(server.settings))
    return OutlookCalendar(server.account_env(row), client)


def event(outlook: OutlookCalendar, calendar: str = "primary", **fields: Any) -> Any:
    body = {"name": "E", "start": "2024-03-01T10:00:00Z", "end": "2024-03-01T11:00:00Z"}
    body.update(fields)
    return outlook.create_event(calendar, clean_event_input(body, partial=False))


def stored(graph: GraphState, event_id: str) -> dict[str, Any]:
    return graph.events[event_id]


# -- calendars -------------------------------------------------------------------------------


def test_calendars_and_the_fields_graph_lacks(outlook: OutlookCalendar, graph: GraphState) -> None:
    primary = outlook.get_calendar("primary")
    assert primary.primary and primary.id == graph.default
    fields = {"name": "Work", "description": "d", "location": "HQ", "timezone": "Europe/Paris"}
    created = outlook.create_calendar(clean_calendar_input(fields, partial=False))
    assert (created.name, created.description, created.location, created.timezone) == (
        "Work",
        "d",
        "HQ",
        "Europe/Paris",
    )
    # Graph has no description: it lives in the calendar's extended property.
    assert graph.calendars[created.id]["name"] == "Work" and graph.calendars[created.id]["props"]
    changed = outlook.update_calendar(created.id, {"name": "Work 2", "location": None})
    assert (changed.name, changed.description, changed.location) == ("Work 2", "d", None)
    # The default calendar comes first even where Graph lists it later.
    graph.calendars[graph.default] = graph.calendars.pop(graph.default)
    graph.max_page = 1  # Graph's own pages of one calendar: the next links are followed
    listing = outlook.list_calendars(1, 10)
    assert [c.id for c in listing.objects] == [primary.id, created.id]
    assert (outlook.list_calendars(2, 1).objects[0].id, outlook.list_calendars(2, 1).next_page) == (
        created.id,
        None,
    )
    graph.max_page = 1000
    with pytest.raises(CalendarConflict):
        outlook.create_calendar({"name": "Work 2"})
    with pytest.raises(CalendarForbidden):
        outlook.delete_calendar("primary")
    assert outlook.delete_calendar(created.id).id == created.id
    with pytest.raises(CalendarNotFound):
        outlook.get_calendar(created.id)


# -- events ----------------------------------------------------------------------------------


def test_event_fields_round_trip(outlook: OutlookCalendar, graph: GraphState) -> None:
    created = event(
        outlook,
        name="Review",
        description="about things",
        location="Room 1",
        attendees=[
            {"name": "Ann", "email": "ann@example.com"},
            {"email": "bo@example.com", "required": False},
        ],
        organizer={"name": "Bob", "email": "bob@example.com"},
        creator={"name": "C", "email": "c@example.com"},
    )
    upstream = stored(graph, created.id)
    assert upstream["subject"] == "Review" and upstream["body"]["content"] == "about things"
    assert upstream["attendees"][1]["type"] == "optional"
    assert upstream["start"] == {"dateTime": "2024-03-01T10:00:00", "timeZone": "UTC"}
    got = outlook.get_event("primary", created.id)
    assert (got.name, got.description, got.location) == ("Review", "about things", "Room 1")
    assert got.attendees == [
        {"name": "Ann", "email": "ann@example.com"},
        {"email": "bo@example.com", "required": False},
    ]
    # Exchange makes the mailbox owner the organizer (a given one is not sent).
    assert got.organizer == {"name": "Ada", "email": "ada@example.com"}
    assert got.creator == {"name": "C", "email": "c@example.com"}
    assert (got.start, got.end, got.ical_uid) == (
        "2024-03-01T10:00:00Z",
        "2024-03-01T11:00:00Z",
        upstream["iCalUId"],
    )
    assert got.etag == upstream["changeKey"] and got.recurrence_type == "solo"
    moved = outlook.update_event("primary", created.id, {"start": "2024-03-01T09:30:00Z"})
    assert (moved.start, moved.end, moved.name) == (
        "2024-03-01T09:30:00Z",
        "2024-03-01T11:00:00Z",
        "Review",
    )
    assert moved.etag != got.etag
    with pytest.raises(CalendarInvalid):
        outlook.update_event("primary", created.id, {"end": "2024-02-01T00:00:00Z"})
    outlook.delete_event("primary", created.id)
    with pytest.raises(CalendarNotFound):
        outlook.get_event("primary", created.id)


def test_time_zones_and_all_day(outlook: OutlookCalendar, graph: GraphState) -> None:
    zoned = event(
        outlook,
        start="2024-07-01T09:00:00",
        end="2024-07-01T10:00:00",
        start_time_zone="Europe/Berlin",
    )
    assert stored(graph, zoned.id)["start"] == {
        "dateTime": "2024-07-01T09:00:00",
        "timeZone": "Europe/Berlin",
    }
    assert (zoned.start, zoned.start_time_zone) == ("2024-07-01T09:00:00", "Europe/Berlin")
    offset = event(outlook, start="2024-07-02T08:00:00+07:00", end="2024-07-02T09:00:00+07:00")
    assert stored(graph, offset.id)["start"]["dateTime"] == "2024-07-02T01:00:00"
    assert offset.start == "2024-07-02T08:00:00+07:00"
    allday = event(outlook, start="2024-07-03", end="2024-07-03")
    upstream = stored(graph, allday.id)
    assert upstream["isAllDay"] is True
    assert upstream["end"] == {"dateTime": "2024-07-04T00:00:00", "timeZone": "UTC"}
    assert (allday.start, allday.end, allday.all_day) == ("2024-07-03", "2024-07-03", True)


def test_edits_in_outlook_make_the_kept_spelling_stale(
    outlook: OutlookCalendar, graph: GraphState
) -> None:
    """An event moved in Outlook (outside the API) reads as Graph has it, in its own zone;
    Windows zone names become IANA ones."""
    created = event(outlook, start="2024-07-02T08:00:00+07:00", end="2024-07-02T09:00:00+07:00")
    upstream = stored(graph, created.id)
    upstream["start"] = {"dateTime": "2024-07-02T10:00:00", "timeZone": "W. Europe Standard Time"}
    upstream["end"] = {"dateTime": "2024-07-02T11:00:00", "timeZone": "W. Europe Standard Time"}
    upstream["originalStartTimeZone"] = upstream["originalEndTimeZone"] = "W. Europe Standard Time"
    got = outlook.get_event("primary", created.id)
    assert (got.start, got.end, got.start_time_zone) == (
        "2024-07-02T10:00:00",
        "2024-07-02T11:00:00",
        "Europe/Berlin",
    )


def test_recurrence_both_ways_and_expanded_instances(
    outlook: OutlookCalendar, graph: GraphState
) -> None:
    weekly = event(
        outlook,
        start="2024-06-03T07:00:00Z",
        end="2024-06-03T07:30:00Z",
        recurrence=["RRULE:FREQ=WEEKLY;COUNT=10"],
    )
    assert stored(graph, weekly.id)["recurrence"] == {
        "pattern": {
            "interval": 1,
            "type": "weekly",
            "daysOfWeek": ["monday"],
            "firstDayOfWeek": "monday",
        },
        "range": {
            "startDate": "2024-06-03",
            "recurrenceTimeZone": "UTC",
            "type": "numbered",
            "numberOfOccurrences": 10,
        },
    }
    assert weekly.recurrence == ["RRULE:FREQ=WEEKLY;COUNT=10"]
    assert weekly.recurrence_type == "recurring"
    # Changed in Outlook: the RRULE is derived from Graph's pattern again.
    stored(graph, weekly.id)["recurrence"]["pattern"]["interval"] = 2
    assert outlook.get_event("primary", weekly.id).recurrence == [
        "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;COUNT=10"
    ]
    window = outlook.list_events(
        "primary",
        1,
        100,
        datetime(2024, 6, 1, tzinfo=timezone.utc),
        datetime(2024, 7, 1, tzinfo=timezone.utc),
    )
    assert [e.start for e in window.objects] == ["2024-06-03T07:00:00Z", "2024-06-17T07:00:00Z"]
    assert {e.recurring_master_id for e in window.objects} == {weekly.id}
    assert outlook.get_event("primary", window.objects[1].id).start == "2024-06-17T07:00:00Z"
    with pytest.raises(CalendarInvalid, match="does not map"):
        event(outlook, recurrence=["RRULE:FREQ=HOURLY"])
    with pytest.raises(CalendarInvalid, match="does not map"):
        event(outlook, recurrence=["RRULE:FREQ=DAILY", "EXDATE:20240302T100000Z"])


def test_pages_follow_next_links(outlook: OutlookCalendar, graph: GraphState) -> None:
    for day in range(1, 6):
        event(
            outlook,
            name=f"d{day}",
            start=f"2024-03-0{day}T10:00:00Z",
            end=f"2024-03-0{day}T11:00:00Z",
        )
    graph.calls.clear()
    first = outlook.list_events("primary", 1, 2)
    second = outlook.list_events("primary", 2, 2)
    third = outlook.list_events("primary", 3, 2)
    assert [e.name for e in first.objects + second.objects + third.objects] == [
        "d1", "d2", "d3", "d4", "d5"
    ]  # fmt: skip
    assert (first.next_page, second.next_page, third.next_page) == (2, 3, None)
    # One Graph call per page: pages 2 and 3 came from Graph's own links, remembered.
    assert len(graph.calls) == 3
    assert "%24skip" not in graph.calls[0] and "%24skip=2" in graph.calls[1], graph.calls


def test_throttling_scopes_and_foreign_links(outlook: OutlookCalendar, graph: GraphState) -> None:
    graph.throttle = 1
    with pytest.raises(ApiError) as throttled:
        outlook.list_calendars(1, 10)
    assert throttled.value.status == 429 and throttled.value.headers["Retry-After"] == "7"
    graph.granted = False
    with pytest.raises(ApiError) as denied:
        outlook.list_calendars(1, 10)
    assert denied.value.status == 403 and "Calendars.ReadWrite" in denied.value.message
    graph.granted = True
    with pytest.raises(ApiError) as elsewhere:
        outlook.client.call("GET", "https://graph.example.net/v1.0/me", absolute=True)
    assert elsewhere.value.status == 502


def test_changed_etag_is_412(outlook: OutlookCalendar, graph: GraphState) -> None:
    created = event(outlook)
    with pytest.raises(GraphError) as stale:
        outlook.client.call(
            "PATCH",
            f"/me/calendars/{graph.default}/events/{created.id}",
            body={"subject": "x"},
            if_match='W/"old"',
        )
    assert stale.value.status == 412
    answer = stale.value.api_error()
    assert (answer.status, answer.error_code) == (412, "precondition_failed")


# -- availability ------------------------------------------------------------------------------


def test_busy_time_from_get_schedule_and_calendar_views(
    outlook: OutlookCalendar, graph: GraphState
) -> None:
    event(outlook, start="2030-05-20T02:00:00Z", end="2030-05-20T03:00:00Z")
    free = event(outlook, start="2030-05-20T04:00:00Z", end="2030-05-20T05:00:00Z")
    stored(graph, free.id)["showAs"] = "free"
    other = outlook.create_calendar({"name": "Side"})
    event(outlook, other.id, start="2030-05-20T06:00:00Z", end="2030-05-20T07:00:00Z")
    low = datetime(2030, 5, 20, tzinfo=timezone.utc)
    high = datetime(2030, 5, 21, tzinfo=timezone.utc)
    graph.calls.clear()
    busy = outlook.busy_across([graph.default, other.id], low, high)
    assert sorted((s.hour, e.hour) for s, e in busy) == [(2, 3), (6, 7)]
    assert any(c.startswith("POST /v1.0/me/calendar/getSchedule") for c in graph.calls)
    assert any(f"{other.id}/calendarView" in c for c in graph.calls)
    # A span longer than one getSchedule call allows is asked in parts.
    graph.calls.clear()
    year = outlook.busy_intervals("primary", low.replace(month=1), low.replace(month=12))
    assert sorted((s.hour, e.hour) for s, e in year) == [(2, 3)]
    assert sum("getSchedule" in c for c in graph.calls) == 6  # 334 days in 62-day parts


# -- upstream changes ----------------------------------------------------------------------------


def test_delta_rounds_report_changes_made_in_outlook(
    outlook: OutlookCalendar, graph: GraphState
) -> None:
    near = datetime.now(timezone.utc).replace(microsecond=0)
    when = {
        "start": near.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": near.replace(year=near.year + 1).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    kept = event(outlook, name="kept", **when)
    assert outlook.sync_upstream() == []  # the first look takes the baseline
    mine = event(outlook, name="mine", **when)  # made through the API: not reported again
    outlook.update_event("primary", kept.id, {"name": "kept 2"})
    assert outlook.sync_upstream() == []
    # Changes made in Outlook: an edit, a new event, a deletion.
    upstream = stored(graph, kept.id)
    upstream["subject"] = "edited in Outlook"
    graph.touch(upstream)
    upstream["lastModifiedDateTime"] = "2099-01-01T00:00:00.0000000Z"
    graph.changed(graph.default, kept.id)
    made = GraphApp_create(graph, "made in Outlook", when)
    del graph.events[mine.id]
    graph.changed(graph.default, mine.id)
    changes = outlook.sync_upstream()
    assert sorted((t, e.id, e.name) for t, e in changes) == sorted(
        [
            ("update", kept.id, "edited in Outlook"),
            ("add", made, "made in Outlook"),
            ("delete", mine.id, None),
        ]
    )
    assert outlook.sync_upstream() == []
    # An expired sync state: the next look starts a new baseline.
    graph.tokens.clear()
    assert outlook.sync_upstream() == []
    assert outlook.sync.token(graph.default) is not None


def GraphApp_create(graph: GraphState, name: str, when: dict[str, str]) -> str:
    """An event made by another client, through the stand-in's own Graph API."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from .graph_standin import GraphApp

    body = {
        "subject": name,
        "start": {"dateTime": when["start"][:-1], "timeZone": "UTC"},
        "end": {"dateTime": when["end"][:-1], "timeZone": "UTC"},
    }
    environ = EnvironBuilder(
        path=f"/v1.0/me/calendars/{graph.default}/events", method="POST", json=body
    ).get_environ()
    answer = GraphApp(graph).handle(Request(environ))
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return str(answer.get_json()["id"])


def test_a_rejected_token_is_refreshed_once(
    outlook: OutlookCalendar, standin: Provider, graph: GraphState
) -> None:
    asked: list[str | None] = []

    def tokens(rejected: str | None) -> str:
        asked.append(rejected)
        return TOKEN if rejected else "expired-token"

    client = GraphClient(standin.api_base, tokens, outlook.client.policy)
    assert client.call("GET", "/me/calendar").body["id"] == graph.default
    assert asked == [None, "expired-token"]
    with pytest.raises(GraphError) as refused:
        GraphClient(standin.api_base, lambda rejected: "bad", outlook.client.policy).call(
            "GET", "/me/calendar"
        )
    answer = refused.value.api_error()
    assert (answer.status, answer.error_code) == (401, "service_unauthorized")


def test_an_edit_in_outlook_between_read_and_write_is_not_lost(
    outlook: OutlookCalendar, graph: GraphState
) -> None:
    created = event(outlook, name="mine")
    graph.edit_before_write = lambda stored: stored.update(subject="theirs")
    with pytest.raises(ApiError) as conflict:
        outlook.update_event("primary", created.id, {"name": "changed"})
    assert (conflict.value.status, conflict.value.error_code) == (412, "precondition_failed")
    assert stored(graph, created.id)["subject"] == "theirs"
