"""Calendar API (calendars, events, availability) through werkzeug's test client."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client, TestResponse

from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials
from kloudless.server.connectors.calendar_base import (
    CalendarInvalid,
    clean_event_input,
    event_interval,
)
from kloudless.server.connectors.local_calendar import LocalCalendar

from .conftest import assert_error

CAL = "/v1/accounts/me/cal"


@dataclass
class Env:
    app: ServerApp
    client: Client
    token: str
    account_id: int
    other_token: str
    other_account_id: int
    api_key: str

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> TestResponse:
        all_headers = {"Authorization": f"Bearer {token or self.token}"}
        all_headers.update(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        return self.client.open(path, method=method, headers=all_headers, data=data)

    def create_event(self, calendar: str = "primary", **fields: Any) -> dict[str, Any]:
        body = {"name": "E", "start": "2019-01-01T12:30:00Z", "end": "2019-01-01T13:30:00Z"}
        body.update(fields)
        response = self.call("POST", f"{CAL}/calendars/{calendar}/events", body)
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json())

    def activity(self) -> list[dict[str, Any]]:
        response = self.call("GET", "/v1/accounts/me/events?cursor=0&page_size=1000")
        assert response.status_code == 200
        return list(response.get_json()["objects"])


@pytest.fixture
def env(app: ServerApp, creds: Credentials) -> Env:
    # The first-start account (conftest) plus a second account of the same application.
    other_id = app.store.create_account(creds.app_id, name="other@example.com")
    other_token = app.store.create_token(creds.app_id, other_id)
    return Env(
        app, Client(app), creds.token, creds.account_id, other_token, other_id, creds.api_key
    )


# --- calendars ------------------------------------------------------------------------------


def test_primary_calendar_created_once(env: Env) -> None:
    first = env.call("GET", f"{CAL}/calendars/primary")
    assert first.status_code == 200
    data = first.get_json()
    assert data["api"] == "calendar" and data["type"] == "calendar"
    assert data["primary"] is True
    assert data["name"] == env.app.store.get_account(env.account_id)["account"]  # type: ignore[index]
    assert data["account_id"] == env.account_id
    assert data["href"].endswith(f"/v1/accounts/{env.account_id}/cal/calendars/{data['id']}")
    again = env.call("GET", f"{CAL}/calendars/primary/")
    assert again.get_json()["id"] == data["id"]
    by_id = env.call("GET", f"{CAL}/calendars/{data['id']}")
    assert by_id.get_json() == data
    listed = env.call("GET", f"{CAL}/calendars").get_json()
    assert [c["id"] for c in listed["objects"]] == [data["id"]]


def test_primary_calendar_concurrent_first_use(env: Env) -> None:
    ids: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            ids.append(LocalCalendar(env.app.store, env.account_id).primary_calendar_id())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(ids) == 8 and len(set(ids)) == 1


def test_create_list_and_page_calendars(env: Env) -> None:
    created = env.call(
        "POST",
        f"{CAL}/calendars",
        {"name": "Work", "description": "d", "location": "Berlin", "timezone": "Europe/Berlin"},
    )
    assert created.status_code == 201
    work = created.get_json()
    assert (work["name"], work["description"], work["location"], work["timezone"]) == (
        "Work",
        "d",
        "Berlin",
        "Europe/Berlin",
    )
    assert work["primary"] is False
    env.call("POST", f"{CAL}/calendars", {"name": "Home"})
    page1 = env.call("GET", f"{CAL}/calendars?page_size=2").get_json()
    assert page1["type"] == "object_list" and page1["api"] == "calendar"
    assert page1["count"] == 2 and page1["page"] == 1 and page1["next_page"] == 2
    assert page1["objects"][0]["primary"] is True
    assert page1["objects"][1]["name"] == "Work"
    page2 = env.call("GET", f"{CAL}/calendars?page_size=2&page=2").get_json()
    assert [c["name"] for c in page2["objects"]] == ["Home"]
    assert page2["next_page"] is None
    assert_error(env.call("GET", f"{CAL}/calendars?page_size=2&page=3"), 404, "not_found")
    assert_error(env.call("GET", f"{CAL}/calendars?page=0"), 400, "invalid_parameters")
    assert_error(env.call("GET", f"{CAL}/calendars?page_size=1001"), 400, "invalid_parameters")
    assert_error(env.call("GET", f"{CAL}/calendars?page_size=x"), 400, "invalid_parameters")
    huge = f"page={10**30}&page_size=1000"
    assert_error(env.call("GET", f"{CAL}/calendars?{huge}"), 404, "not_found")
    assert_error(env.call("GET", f"{CAL}/calendars/primary/events?{huge}"), 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": 5},
        {"name": "x", "description": 3},
        {"name": "x", "timezone": "Nowhere/Land"},
        {"name": "x", "location": ["a"]},
    ],
)
def test_create_calendar_invalid(env: Env, body: dict[str, Any]) -> None:
    assert_error(env.call("POST", f"{CAL}/calendars", body), 400, "invalid_parameters")


def test_create_calendar_malformed_bodies(env: Env) -> None:
    response = env.call(
        "POST", f"{CAL}/calendars", headers={"Content-Type": "application/json"}, data=b"{nope"
    )
    assert_error(response, 400, "bad_request")
    assert_error(env.call("POST", f"{CAL}/calendars", ["x"]), 400, "invalid_parameters")
    assert_error(env.call("POST", f"{CAL}/calendars"), 400, "invalid_parameters")


def test_patch_calendar(env: Env) -> None:
    cal = env.call("POST", f"{CAL}/calendars", {"name": "Work"}).get_json()
    patched = env.call("PATCH", f"{CAL}/calendars/{cal['id']}", {"name": "Job", "location": "X"})
    assert patched.status_code == 200
    assert patched.get_json()["name"] == "Job"
    assert patched.get_json()["location"] == "X"
    assert env.call("GET", f"{CAL}/calendars/{cal['id']}").get_json()["name"] == "Job"
    primary = env.call("PATCH", f"{CAL}/calendars/primary", {"description": "mine"})
    assert primary.status_code == 200 and primary.get_json()["description"] == "mine"
    assert primary.get_json()["primary"] is True
    bad = env.call("PATCH", f"{CAL}/calendars/{cal['id']}", {"name": None})
    assert_error(bad, 400, "invalid_parameters")
    assert_error(env.call("PATCH", f"{CAL}/calendars/nope", {"name": "a"}), 404, "not_found")


def test_delete_calendar_and_its_events(env: Env) -> None:
    cal = env.call("POST", f"{CAL}/calendars", {"name": "Temp"}).get_json()
    event = env.create_event(cal["id"])
    response = env.call("DELETE", f"{CAL}/calendars/{cal['id']}")
    assert response.status_code == 204 and response.get_data() == b""
    assert_error(env.call("GET", f"{CAL}/calendars/{cal['id']}"), 404, "not_found")
    path = f"{CAL}/calendars/{cal['id']}/events/{event['id']}"
    assert_error(env.call("GET", path), 404, "not_found")
    assert env.app.store.one("SELECT id FROM cal_events WHERE id = ?", (event["id"],)) is None
    assert_error(env.call("DELETE", f"{CAL}/calendars/{cal['id']}"), 404, "not_found")


def test_delete_primary_calendar_is_refused(env: Env) -> None:
    primary = env.call("GET", f"{CAL}/calendars/primary").get_json()
    assert_error(env.call("DELETE", f"{CAL}/calendars/primary"), 403, "forbidden")
    assert_error(env.call("DELETE", f"{CAL}/calendars/{primary['id']}"), 403, "forbidden")
    assert env.call("GET", f"{CAL}/calendars/primary").get_json()["id"] == primary["id"]


def test_unknown_and_overlong_calendar_ids(env: Env) -> None:
    assert_error(env.call("GET", f"{CAL}/calendars/cal_missing"), 404, "not_found")
    assert_error(env.call("GET", f"{CAL}/calendars/{'x' * 600}"), 404, "not_found")
    assert_error(env.call("GET", f"{CAL}/calendars/%00%27"), 404, "not_found")
    assert_error(env.call("GET", f"{CAL}/calendars/cal_missing/events"), 404, "not_found")


def test_calendar_raw_data(env: Env) -> None:
    plain = env.call("GET", f"{CAL}/calendars/primary").get_json()
    assert "raw" not in plain
    raw = env.call("GET", f"{CAL}/calendars/primary", headers={"X-Kloudless-Raw-Data": "true"})
    data = raw.get_json()
    assert data["raw"]["id"] == data["id"]
    assert data["raw"]["is_primary"] == 1
    listed = env.call("GET", f"{CAL}/calendars", headers={"X-Kloudless-Raw-Data": "true"})
    assert "raw" in listed.get_json()["objects"][0]


# --- events ---------------------------------------------------------------------------------


def test_create_event_echoes_fields(env: Env) -> None:
    body: dict[str, Any] = {
        "name": "Planning",
        "description": "Quarterly",
        "location": "Room 1",
        "start": "2019-01-01T08:00:00+07:00",
        "end": "2019-01-01T09:30:00+07:00",
        "attendees": [{"name": "A", "email": "a@example.com", "required": True}],
        "organizer": {"name": "O", "email": "o@example.com"},
        "creator": {"name": "C", "email": "c@example.com"},
        "owner": {"name": "W", "email": "w@example.com"},
        "recurrence": [{"rrule": "RRULE:FREQ=WEEKLY;COUNT=3"}],
        "start_time_zone": "Asia/Bangkok",
        "end_time_zone": "Asia/Bangkok",
        "ical_uid": "uid-1@example.com",
        "id": "ignored",
        "api": "ignored",
    }
    event = env.create_event(**body)
    assert event["api"] == "calendar" and event["type"] == "event"
    assert event["id"] != "ignored" and event["id"].startswith("evt_")
    for key in body:
        if key not in ("id", "api"):
            assert event[key] == body[key], key
    assert event["recurrence_type"] == "recurring"
    assert event["all_day"] is False
    assert event["account_id"] == env.account_id
    primary = env.call("GET", f"{CAL}/calendars/primary").get_json()
    assert event["calendar_id"] == primary["id"]
    assert event["href"].endswith(
        f"/v1/accounts/{env.account_id}/cal/calendars/{primary['id']}/events/{event['id']}"
    )
    assert event["created"].endswith("Z") and event["modified"] == event["created"]
    fetched = env.call("GET", f"{CAL}/calendars/primary/events/{event['id']}").get_json()
    assert fetched == event


def test_create_minimal_and_all_day_events(env: Env) -> None:
    minimal = env.create_event(name=None)
    assert minimal["name"] is None
    assert minimal["recurrence_type"] == "solo"
    assert minimal["attendees"] == [] and minimal["recurrence"] is None
    assert minimal["ical_uid"]
    all_day = env.create_event(start="2019-07-04", end="2019-07-05")
    assert all_day["all_day"] is True
    assert (all_day["start"], all_day["end"]) == ("2019-07-04", "2019-07-05")


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        ({"end": "2019-01-01T13:30:00Z"}, "start"),
        ({"start": "2019-01-01T13:30:00Z"}, "end"),
        ({"start": "yesterday", "end": "2019-01-01T13:30:00Z"}, "start"),
        ({"start": 1546345800, "end": "2019-01-01T13:30:00Z"}, "start"),
        ({"start": "2019-01-01T14:00:00Z", "end": "2019-01-01T13:30:00Z"}, "end"),
        ({"start": "2019-01-02", "end": "2019-01-01"}, "end"),
        ({"start": "2019-01-01", "end": "2019-01-01T13:30:00Z"}, "dates"),
        ({"start": "2019-02-30T10:00:00Z", "end": "2019-03-01T10:00:00Z"}, "start"),
        ({"start": "9999-12-31", "end": "9999-12-31"}, "end"),
        ({"start": "0001-01-01T00:00:00+05:00", "end": "2019-01-01T10:00:00Z"}, "start"),
    ],
)
def test_create_event_bad_times(env: Env, body: dict[str, Any], message_part: str) -> None:
    response = env.call("POST", f"{CAL}/calendars/primary/events", body)
    error = assert_error(response, 400, "invalid_parameters")
    assert message_part in error["message"]


@pytest.mark.parametrize(
    "extra",
    [
        {"name": 5},
        {"description": {"a": 1}},
        {"attendees": "a@example.com"},
        {"attendees": ["a@example.com"]},
        {"organizer": "o@example.com"},
        {"creator": [1]},
        {"recurrence": "RRULE:FREQ=DAILY"},
        {"start_time_zone": "Not/AZone"},
        {"end_time_zone": 7},
        {"ical_uid": ""},
    ],
)
def test_create_event_bad_values(env: Env, extra: dict[str, Any]) -> None:
    body = {"start": "2019-01-01T12:30:00Z", "end": "2019-01-01T13:30:00Z", **extra}
    response = env.call("POST", f"{CAL}/calendars/primary/events", body)
    assert_error(response, 400, "invalid_parameters")
    assert env.call("GET", f"{CAL}/calendars/primary/events").get_json()["count"] == 0


def test_duplicate_ical_uid_conflicts(env: Env) -> None:
    first = env.create_event(ical_uid="same@example.com")
    response = env.call(
        "POST",
        f"{CAL}/calendars/primary/events",
        {
            "start": "2019-01-01T12:30:00Z",
            "end": "2019-01-01T13:30:00Z",
            "ical_uid": "same@example.com",
        },
    )
    error = assert_error(response, 409, "naming_conflict")
    assert error["conflicting_resource_id"] == first["id"]
    second = env.create_event(ical_uid="other@example.com")
    patch = env.call(
        "PATCH", f"{CAL}/calendars/primary/events/{second['id']}", {"ical_uid": "same@example.com"}
    )
    assert_error(patch, 409, "naming_conflict")
    # The same uid in another calendar is fine.
    cal = env.call("POST", f"{CAL}/calendars", {"name": "B"}).get_json()
    assert (
        env.create_event(cal["id"], ical_uid="same@example.com")["ical_uid"] == "same@example.com"
    )


def test_readme_calendar_example(env: Env) -> None:
    # The original README: primary calendar, first page of 5 events, next page, create an event.
    for hour in range(7):
        env.create_event(
            name=f"E{hour}",
            start=f"2019-01-0{hour + 1}T12:00:00Z",
            end=f"2019-01-0{hour + 1}T13:00:00Z",
        )
    calendar = env.call("GET", f"{CAL}/calendars/primary").get_json()
    base = calendar["href"].replace("http://localhost", "")
    first = env.call("GET", base + "/events?page_size=5").get_json()
    assert [e["name"] for e in first["objects"]] == ["E0", "E1", "E2", "E3", "E4"]
    assert first["next_page"] == 2
    second = env.call("GET", base + f"/events?page_size=5&page={first['next_page']}").get_json()
    assert [e["name"] for e in second["objects"]] == ["E5", "E6"]
    assert second["next_page"] is None
    created = env.call(
        "POST",
        base + "/events",
        {"start": "2019-01-01T12:30:00Z", "end": "2019-01-01T13:30:00Z", "name": "Event test"},
    )
    assert created.status_code == 201
    assert (created.get_json()["start"], created.get_json()["end"]) == (
        "2019-01-01T12:30:00Z",
        "2019-01-01T13:30:00Z",
    )


def test_events_ordered_by_utc_start_then_id(env: Env) -> None:
    late = env.create_event(name="late", start="2019-01-01T09:00:00Z", end="2019-01-01T10:00:00Z")
    early = env.create_event(
        name="early", start="2019-01-01T10:00:00+02:00", end="2019-01-01T11:00:00+02:00"
    )
    tie_a = env.create_event(name="tie", start="2019-01-01T12:00:00Z", end="2019-01-01T13:00:00Z")
    tie_b = env.create_event(name="tie", start="2019-01-01T12:00:00Z", end="2019-01-01T12:30:00Z")
    listed = env.call("GET", f"{CAL}/calendars/primary/events").get_json()
    ids = [e["id"] for e in listed["objects"]]
    assert ids[:2] == [early["id"], late["id"]]
    assert ids[2:] == sorted([tie_a["id"], tie_b["id"]])
    # Paging walks the same order without gaps or repeats.
    seen: list[str] = []
    page: int | None = 1
    for _ in range(10):
        if page is None:
            break
        body = env.call("GET", f"{CAL}/calendars/primary/events?page_size=1&page={page}")
        seen += [e["id"] for e in body.get_json()["objects"]]
        page = body.get_json()["next_page"]
    assert seen == ids


def test_event_time_filters(env: Env) -> None:
    morning = env.create_event(name="m", start="2019-01-01T08:00:00Z", end="2019-01-01T09:00:00Z")
    noon = env.create_event(name="n", start="2019-01-01T12:00:00Z", end="2019-01-01T13:00:00Z")
    instant = env.create_event(name="i", start="2019-01-01T15:00:00Z", end="2019-01-01T15:00:00Z")
    day = env.create_event(name="d", start="2019-01-02", end="2019-01-03")
    recurring = env.create_event(
        name="r",
        start="2018-12-01T10:00:00Z",
        end="2018-12-01T11:00:00Z",
        recurrence=[{"rrule": "RRULE:FREQ=DAILY"}],
    )

    def names(query: str) -> list[str]:
        response = env.call("GET", f"{CAL}/calendars/primary/events?{query}")
        assert response.status_code == 200, response.get_json()
        return [e["name"] for e in response.get_json()["objects"]]

    assert names("") == ["r", "m", "n", "i", "d"]
    # Overlap semantics: ends exactly at the filter start -> excluded.
    assert names("start=2019-01-01T09:00:00Z&end=2019-01-01T12:00:00Z") == ["r"]
    assert names("start=2019-01-01T08:30:00Z&end=2019-01-01T12:30:00Z") == ["r", "m", "n"]
    assert names("start=2019-01-01T15:00:00Z&end=2019-01-01T16:00:00Z") == ["r", "i"]
    assert names("start=2019-01-02T12:00:00%2B05:00") == ["r", "d"]
    assert names("start=2019-01-02T12:00:00+05:00") == ["r", "d"]  # '+' decoded as a space
    assert names("start=2019-01-01T16:00:00.5+00") == ["r", "d"]
    assert names("end=2019-01-01T08:00:00Z") == ["r"]
    assert names("start=2019-01-01T16:00:00") == ["r", "d"]  # naive = UTC
    assert names("start=2019-01-03") == ["r"]
    assert {morning["id"], noon["id"], instant["id"], day["id"], recurring["id"]}
    bad = env.call("GET", f"{CAL}/calendars/primary/events?start=soon")
    assert_error(bad, 400, "invalid_parameters")
    reversed_range = "start=2019-01-02T00:00:00Z&end=2019-01-01T00:00:00Z"
    assert_error(
        env.call("GET", f"{CAL}/calendars/primary/events?{reversed_range}"),
        400,
        "invalid_parameters",
    )


def test_time_zone_fields_place_naive_times(env: Env) -> None:
    env.create_event(
        name="berlin",
        start="2019-01-01T10:00:00",
        end="2019-01-01T11:00:00",
        start_time_zone="Europe/Berlin",
    )
    # 10:00 in Berlin (winter) is 09:00Z.
    inside = "start=2019-01-01T09:00:00Z&end=2019-01-01T09:30:00Z"
    assert env.call("GET", f"{CAL}/calendars/primary/events?{inside}").get_json()["count"] == 1
    outside = "start=2019-01-01T10:00:00Z&end=2019-01-01T11:00:00Z"
    assert env.call("GET", f"{CAL}/calendars/primary/events?{outside}").get_json()["count"] == 0


def test_patch_event(env: Env) -> None:
    event = env.create_event(name="Before")
    path = f"{CAL}/calendars/primary/events/{event['id']}"
    patched = env.call(
        "PATCH",
        path,
        {"name": "After", "start": "2017-09-01T12:00:00Z", "end": "2017-09-01T12:30:00Z"},
    )
    assert patched.status_code == 200
    data = patched.get_json()
    assert (data["name"], data["start"], data["end"]) == (
        "After",
        "2017-09-01T12:00:00Z",
        "2017-09-01T12:30:00Z",
    )
    assert data["created"] == event["created"]
    assert data["modified"] >= event["modified"]
    # Only `end`, before the stored start: refused, nothing changes.
    bad = env.call("PATCH", path, {"end": "2017-09-01T11:00:00Z"})
    assert_error(bad, 400, "invalid_parameters")
    assert env.call("GET", path).get_json()["end"] == "2017-09-01T12:30:00Z"
    assert_error(env.call("PATCH", path, {"start": "nope"}), 400, "invalid_parameters")
    assert_error(env.call("PATCH", path, {"attendees": 3}), 400, "invalid_parameters")
    # Clearing values and recurrence.
    cleared = env.call("PATCH", path, {"attendees": None, "recurrence": [{"rrule": "FREQ=DAILY"}]})
    assert cleared.get_json()["attendees"] == []
    assert cleared.get_json()["recurrence_type"] == "recurring"
    solo = env.call("PATCH", path, {"recurrence": None}).get_json()
    assert solo["recurrence"] is None and solo["recurrence_type"] == "solo"
    # Switching to all-day needs both values.
    assert_error(env.call("PATCH", path, {"start": "2017-09-01"}), 400, "invalid_parameters")
    day = env.call("PATCH", path, {"start": "2017-09-01", "end": "2017-09-02"}).get_json()
    assert day["all_day"] is True
    assert_error(
        env.call("PATCH", f"{CAL}/calendars/primary/events/evt_nope", {"name": "x"}),
        404,
        "not_found",
    )


def test_delete_event(env: Env) -> None:
    event = env.create_event()
    path = f"{CAL}/calendars/primary/events/{event['id']}"
    response = env.call("DELETE", path)
    assert response.status_code == 204 and response.get_data() == b""
    assert_error(env.call("GET", path), 404, "not_found")
    assert_error(env.call("DELETE", path), 404, "not_found")


def test_event_in_wrong_calendar_is_not_found(env: Env) -> None:
    event = env.create_event()
    other = env.call("POST", f"{CAL}/calendars", {"name": "Other"}).get_json()
    path = f"{CAL}/calendars/{other['id']}/events/{event['id']}"
    assert_error(env.call("GET", path), 404, "not_found")
    assert_error(env.call("PATCH", path, {"name": "x"}), 404, "not_found")
    assert_error(env.call("DELETE", path), 404, "not_found")
    assert_error(env.call("GET", f"{CAL}/calendars/primary/events/{'e' * 600}"), 404, "not_found")


def test_event_raw_data(env: Env) -> None:
    event = env.create_event(attendees=[{"email": "a@example.com"}])
    path = f"{CAL}/calendars/primary/events/{event['id']}"
    assert "raw" not in env.call("GET", path).get_json()
    raw = env.call("GET", path, headers={"X-Kloudless-Raw-Data": "true"}).get_json()["raw"]
    assert raw["id"] == event["id"]
    assert raw["start_at"] == event["start"]
    assert json.loads(raw["attendees"]) == [{"email": "a@example.com"}]


def test_other_accounts_ids_are_not_found(env: Env) -> None:
    event = env.create_event()
    cal = env.call("POST", f"{CAL}/calendars", {"name": "Mine"}).get_json()
    theirs = env.other_token
    for path in (
        f"{CAL}/calendars/{cal['id']}",
        f"{CAL}/calendars/{event['calendar_id']}/events/{event['id']}",
        f"{CAL}/calendars/{event['calendar_id']}/events",
        f"{CAL}/calendars/primary/events/{event['id']}",
    ):
        assert_error(env.call("GET", path, token=theirs), 404, "not_found")
    assert_error(env.call("DELETE", f"{CAL}/calendars/{cal['id']}", token=theirs), 404, "not_found")
    # Another account's URL with my token.
    other_url = f"/v1/accounts/{env.other_account_id}/cal/calendars/primary"
    assert_error(env.call("GET", other_url), 404, "not_found")
    # Their primary calendar is a different one.
    their_primary = env.call("GET", f"{CAL}/calendars/primary", token=theirs).get_json()
    assert their_primary["id"] != event["calendar_id"]


def test_api_key_with_numeric_account(env: Env) -> None:
    event = env.create_event()
    response = env.client.get(
        f"/v1/accounts/{env.account_id}/cal/calendars/primary/events/{event['id']}",
        headers={"Authorization": f"APIKey {env.api_key}"},
    )
    assert response.status_code == 200
    assert response.get_json()["id"] == event["id"]


def test_authentication_required(env: Env) -> None:
    response = env.client.get(f"{CAL}/calendars")
    assert_error(response, 401, "authentication_required")


def test_changes_are_logged(env: Env) -> None:
    cal = env.call("POST", f"{CAL}/calendars", {"name": "Log"}).get_json()
    env.call("PATCH", f"{CAL}/calendars/{cal['id']}", {"name": "Log2"})
    event = env.create_event(cal["id"])
    env.call("PATCH", f"{CAL}/calendars/{cal['id']}/events/{event['id']}", {"name": "x"})
    env.call("DELETE", f"{CAL}/calendars/{cal['id']}/events/{event['id']}")
    env.call("DELETE", f"{CAL}/calendars/{cal['id']}")
    # Failed changes and reads are not logged.
    env.call("DELETE", f"{CAL}/calendars/primary")
    env.call("GET", f"{CAL}/calendars")
    log = [(e["type"], e["metadata"]["type"], e["metadata"]["id"]) for e in env.activity()]
    assert log == [
        ("add", "calendar", cal["id"]),
        ("update", "calendar", cal["id"]),
        ("add", "event", event["id"]),
        ("update", "event", event["id"]),
        ("delete", "event", event["id"]),
        ("delete", "calendar", cal["id"]),
    ]
    names = [e["metadata"].get("name") for e in env.activity()]
    assert names[1] == "Log2" and names[3] == "x"


def test_service_without_calendar_answers_501(env: Env) -> None:
    from kloudless.server.connectors.base import Connector
    from kloudless.server.connectors.registry import register

    class NoCalendar(Connector):
        service = "test_no_calendar"

    register(NoCalendar())
    app_id = env.app.store.get_account(env.account_id)["app_id"]  # type: ignore[index]
    account = env.app.store.create_account(app_id, service="test_no_calendar")
    token = env.app.store.create_token(app_id, account)
    response = env.call("GET", f"{CAL}/calendars", token=token)
    assert_error(response, 501, "not_implemented")


# --- availability ---------------------------------------------------------------------------


def test_availability_spec_example(env: Env) -> None:
    body: dict[str, Any] = {
        "calendars": ["primary"],
        "meeting_duration": "PT1H",
        "constraints": {
            "time_windows": [
                {"start": "2017-05-20T08:00:00+07:00", "end": "2017-05-20T12:00:00+07:00"},
                {"start": "2017-05-21T08:00:00+07:00", "end": "2017-05-21T12:00:00+07:00"},
            ]
        },
    }
    response = env.call("POST", f"{CAL}/availability", body)
    assert response.status_code == 200
    assert response.get_json() == {
        "api": "calendar",
        "type": "availability",
        "time_windows": [
            {"start": "2017-05-20T01:00:00Z", "end": "2017-05-20T05:00:00Z"},
            {"start": "2017-05-21T01:00:00Z", "end": "2017-05-21T05:00:00Z"},
        ],
    }


def test_availability_subtracts_busy_time(env: Env) -> None:
    env.create_event(start="2020-03-02T10:00:00Z", end="2020-03-02T11:00:00Z")
    env.create_event(start="2020-03-02T11:30:00+01:00", end="2020-03-02T12:15:00+01:00")
    other = env.call("POST", f"{CAL}/calendars", {"name": "Other"}).get_json()
    env.create_event(other["id"], start="2020-03-02T14:00:00Z", end="2020-03-02T16:00:00Z")
    env.create_event(other["id"], start="2020-03-03", end="2020-03-04")  # all day

    windows = [
        {"start": "2020-03-02T09:00:00Z", "end": "2020-03-02T17:00:00Z"},
        {"start": "2020-03-03T09:00:00Z", "end": "2020-03-03T17:00:00Z"},
    ]
    only_primary = env.call(
        "POST", f"{CAL}/availability", {"meeting_duration": "PT30M", "time_windows": windows}
    )
    assert only_primary.status_code == 200
    assert only_primary.get_json()["time_windows"] == [
        {"start": "2020-03-02T09:00:00Z", "end": "2020-03-02T10:00:00Z"},
        {"start": "2020-03-02T11:15:00Z", "end": "2020-03-02T17:00:00Z"},
        {"start": "2020-03-03T09:00:00Z", "end": "2020-03-03T17:00:00Z"},
    ]
    both = env.call(
        "POST",
        f"{CAL}/availability",
        {
            "calendars": ["primary", other["id"]],
            "meeting_duration": "PT1H",
            "constraints": {"time_windows": windows},
        },
    )
    assert both.get_json()["time_windows"] == [
        {"start": "2020-03-02T09:00:00Z", "end": "2020-03-02T10:00:00Z"},
        {"start": "2020-03-02T11:15:00Z", "end": "2020-03-02T14:00:00Z"},
        {"start": "2020-03-02T16:00:00Z", "end": "2020-03-02T17:00:00Z"},
    ]
    # A meeting longer than any gap: no availability.
    none = env.call(
        "POST",
        f"{CAL}/availability",
        {
            "calendars": ["primary", other["id"]],
            "meeting_duration": "PT4H",
            "time_windows": windows,
        },
    )
    assert none.get_json()["time_windows"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"time_windows": [{"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T01:00:00Z"}]},
        {"meeting_duration": "1 hour", "time_windows": []},
        {
            "meeting_duration": "PT0S",
            "time_windows": [{"start": "2020-01-01", "end": "2020-01-02"}],
        },
        {"meeting_duration": "P1M", "time_windows": [{"start": "2020-01-01", "end": "2020-01-02"}]},
        {
            "meeting_duration": "P99999999999W",
            "time_windows": [{"start": "2020-01-01", "end": "2020-01-02"}],
        },
        {"meeting_duration": "PT1H"},
        {"meeting_duration": "PT1H", "time_windows": []},
        {"meeting_duration": "PT1H", "time_windows": {"start": "2020-01-01"}},
        {"meeting_duration": "PT1H", "constraints": [1]},
        {"meeting_duration": "PT1H", "constraints": {"time_windows": ["x"]}},
        {"meeting_duration": "PT1H", "time_windows": [{"start": "2020-01-01T00:00:00Z"}]},
        {"meeting_duration": "PT1H", "time_windows": [{"start": "x", "end": "2020-01-02"}]},
        {
            "meeting_duration": "PT1H",
            "time_windows": [{"start": "2020-01-02", "end": "2020-01-01"}],
        },
        {
            "meeting_duration": "PT1H",
            "time_windows": [{"start": "2020-01-01", "end": "2020-01-01"}],
        },
        {
            "meeting_duration": "PT1H",
            "calendars": [],
            "time_windows": [{"start": "2020-01-01", "end": "2020-01-02"}],
        },
        {
            "meeting_duration": "PT1H",
            "calendars": "primary",
            "time_windows": [{"start": "2020-01-01", "end": "2020-01-02"}],
        },
        {
            "meeting_duration": "PT1H",
            "calendars": [7],
            "time_windows": [{"start": "2020-01-01", "end": "2020-01-02"}],
        },
        {
            "meeting_duration": "PT1H",
            "calendars": ["c"] * 51,
            "time_windows": [{"start": "2020-01-01", "end": "2020-01-02"}],
        },
        {
            "meeting_duration": "PT1H",
            "time_windows": [{"start": "2020-01-01", "end": "2020-01-02"}] * 101,
        },
    ],
)
def test_availability_invalid(env: Env, body: dict[str, Any]) -> None:
    assert_error(env.call("POST", f"{CAL}/availability", body), 400, "invalid_parameters")


def test_availability_unknown_calendar(env: Env) -> None:
    window = [{"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T05:00:00Z"}]
    for calendars in (["cal_nope"], ["x" * 600]):
        body = {"calendars": calendars, "meeting_duration": "PT1H", "time_windows": window}
        assert_error(env.call("POST", f"{CAL}/availability", body), 404, "not_found")


# --- robustness -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)
time_like = st.sampled_from(
    ["2019-01-01T12:30:00Z", "2019-01-01", "2019-01-01T12:30:00", "x", "", "2019-13-01"]
) | st.text(max_size=25)
event_bodies = st.fixed_dictionaries(
    {},
    optional={
        "start": time_like | json_values,
        "end": time_like | json_values,
        "name": json_values,
        "attendees": json_values,
        "organizer": json_values,
        "recurrence": json_values,
        "start_time_zone": st.sampled_from(["UTC", "Europe/Berlin", "bogus", ""]) | json_values,
        "ical_uid": json_values,
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=event_bodies)
def test_random_event_bodies_never_500(env: Env, body: dict[str, Any]) -> None:
    created = env.call("POST", f"{CAL}/calendars/primary/events", body)
    assert created.status_code in (201, 400, 409), created.get_data(as_text=True)
    if created.status_code == 201:
        path = f"{CAL}/calendars/primary/events/{created.get_json()['id']}"
        patched = env.call("PATCH", path, body)
        assert patched.status_code in (200, 400, 409)
    else:
        assert created.get_json()["error_code"] in ("invalid_parameters", "naming_conflict")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.dictionaries(
        st.sampled_from(["calendars", "meeting_duration", "constraints", "time_windows"]),
        json_values,
        max_size=4,
    )
)
def test_random_availability_bodies_never_500(env: Env, body: dict[str, Any]) -> None:
    response = env.call("POST", f"{CAL}/availability", body)
    assert response.status_code in (200, 400, 404), response.get_data(as_text=True)


# --- backend helpers ------------------------------------------------------------------------


def test_event_interval_rules() -> None:
    start, end = event_interval("2019-07-04", "2019-07-04")
    assert (end - start).days == 1  # equal dates: one whole day
    with pytest.raises(CalendarInvalid):
        event_interval("2019-07-04T10:00:00Z", "2019-07-04T09:00:00Z")
    with pytest.raises(CalendarInvalid):
        event_interval("2019-07-04", "2019-07-05T00:00:00Z")
    with pytest.raises(CalendarInvalid):
        event_interval("9999-12-31", "9999-12-31")
    with pytest.raises(CalendarInvalid):
        event_interval("2019-07-04T10:00:00", "2019-07-04T11:00:00", "Bad/Zone")
    # End zone defaults to the start zone.
    s, e = event_interval("2019-07-04T10:00:00", "2019-07-04T11:00:00", "Europe/Berlin")
    assert (s.hour, e.hour) == (8, 9)


def test_clean_event_input_partial_keeps_only_given_keys() -> None:
    assert clean_event_input({"name": "x", "bogus": 1}, partial=True) == {"name": "x"}
    with pytest.raises(CalendarInvalid):
        clean_event_input({"name": "x"}, partial=False)


def test_deleting_an_account_removes_its_calendars(env: Env) -> None:
    event = env.create_event()
    theirs = env.call("GET", f"{CAL}/calendars/primary", token=env.other_token).get_json()
    assert env.app.store.delete_account(env.account_id)
    count = "SELECT COUNT(*) AS n FROM {} WHERE account_id = ?"
    for table in ("cal_calendars", "cal_events"):
        row = env.app.store.one(count.format(table), (env.account_id,))
        assert row is not None and row["n"] == 0
    assert env.app.store.one("SELECT id FROM cal_events WHERE id = ?", (event["id"],)) is None
    # The other account keeps its calendar.
    again = env.call("GET", f"{CAL}/calendars/primary", token=env.other_token).get_json()
    assert again["id"] == theirs["id"]


def test_backend_migrates_a_store_opened_before_registration(
    make_settings: Callable[..., Any],
) -> None:
    from kloudless.server.connectors import local_calendar
    from kloudless.server.store import Store

    settings = make_settings()
    store = Store(settings.db_path, settings.database_url)
    try:
        # Simulate a store opened before the calendar module registered its tables.
        with store.transaction():
            store.execute("DROP TABLE cal_events")
            store.execute("DROP TABLE cal_calendars")
            store.execute("DELETE FROM schema_versions WHERE version = 100")
        local_calendar._MIGRATED.discard(store)
        app_id, _ = store.create_app()
        account = store.create_account(app_id)
        backend = LocalCalendar(store, account)
        assert backend.get_calendar("primary").primary is True
    finally:
        store.close()
