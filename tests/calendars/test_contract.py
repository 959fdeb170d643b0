"""The calendar contract: the same calendar API flows on every calendar service
(``calendar_auth`` is parametrized over tests/calendars/conftest.CALENDAR_SERVICES: local,
CalDAV on Radicale, Google Calendar on its Calendar v3 stand-in, ...), through the test client.

Where a provider decides a value itself the test says so: Google Calendar makes the account's
user the organizer of every event it creates (:data:`OWNER_ORGANIZES`)."""

from __future__ import annotations

from typing import Any

from werkzeug.test import Client

from tests.dav.conftest import error

C = "/v1/accounts/me/cal"
#: Services whose provider makes the account's user the organizer, whatever the body says.
OWNER_ORGANIZES = {"google_calendar", "outlook_calendar"}


def new_calendar(api: Client, auth: dict[str, str], name: str = "Team") -> dict[str, Any]:
    response = api.post(f"{C}/calendars", headers=auth, json={"name": name})
    assert response.status_code == 201, response.get_data(as_text=True)
    return dict(response.get_json())


def service_of(api: Client, auth: dict[str, str]) -> str:
    account = api.get("/v1/accounts/me", headers=auth)
    assert account.status_code == 200, account.get_data(as_text=True)
    return str(account.get_json()["service"])


def test_calendars(api: Client, calendar_auth: dict[str, str]) -> None:
    primary = api.get(f"{C}/calendars/primary", headers=calendar_auth).get_json()
    assert primary["type"] == "calendar" and primary["primary"] is True
    created = api.post(
        f"{C}/calendars",
        headers=calendar_auth,
        json={"name": "Work", "description": "d", "timezone": "Europe/Paris"},
    ).get_json()
    assert (created["name"], created["description"], created["timezone"]) == (
        "Work",
        "d",
        "Europe/Paris",
    )
    listing = api.get(f"{C}/calendars", headers=calendar_auth).get_json()
    ids = [c["id"] for c in listing["objects"]]
    assert ids[0] == primary["id"] and created["id"] in ids
    patched = api.patch(
        f"{C}/calendars/{created['id']}", headers=calendar_auth, json={"name": "Work 2"}
    )
    assert patched.status_code == 200 and patched.get_json()["name"] == "Work 2"
    error(api.delete(f"{C}/calendars/primary", headers=calendar_auth), 403, "forbidden")
    assert api.delete(f"{C}/calendars/{created['id']}", headers=calendar_auth).status_code == 204
    error(api.get(f"{C}/calendars/{created['id']}", headers=calendar_auth), 404, "not_found")


def test_events_round_trip(api: Client, calendar_auth: dict[str, str]) -> None:
    cal = new_calendar(api, calendar_auth)
    url = f"{C}/calendars/{cal['id']}/events"
    body = {
        "name": "Event test",
        "description": "about things",
        "location": "Room 1",
        "start": "2019-01-01T12:30:00Z",
        "end": "2019-01-01T13:30:00Z",
        "attendees": [{"name": "Ann", "email": "ann@example.com"}],
        "organizer": {"name": "Bob", "email": "bob@example.com"},
    }
    created = api.post(url, headers=calendar_auth, json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    event = created.get_json()
    owner_organizes = service_of(api, calendar_auth) in OWNER_ORGANIZES
    for key, value in body.items():
        if key == "organizer" and owner_organizes:
            assert event[key]["email"] != value["email"]  # the account's user, not Bob
            continue
        assert event[key] == value, key
    assert event["type"] == "event" and event["calendar_id"] == cal["id"] and event["ical_uid"]
    got = api.get(f"{url}/{event['id']}", headers=calendar_auth).get_json()
    assert (got["start"], got["end"]) == (body["start"], body["end"])
    patched = api.patch(
        f"{url}/{event['id']}", headers=calendar_auth, json={"start": "2019-01-01T12:00:00Z"}
    ).get_json()
    assert (patched["start"], patched["end"], patched["name"]) == (
        "2019-01-01T12:00:00Z",
        "2019-01-01T13:30:00Z",
        "Event test",
    )
    error(
        api.patch(f"{url}/{event['id']}", headers=calendar_auth, json={"end": "2018-01-01"}),
        400,
        "invalid_parameters",
    )
    assert api.delete(f"{url}/{event['id']}", headers=calendar_auth).status_code == 204
    error(api.get(f"{url}/{event['id']}", headers=calendar_auth), 404, "not_found")


def test_time_zones_all_day_recurrence(api: Client, calendar_auth: dict[str, str]) -> None:
    url = f"{C}/calendars/{new_calendar(api, calendar_auth)['id']}/events"
    zoned = {
        "name": "zoned",
        "start": "2024-07-01T09:00:00",
        "end": "2024-07-01T10:00:00",
        "start_time_zone": "Europe/Berlin",
    }
    offset = {
        "name": "offset",
        "start": "2024-07-02T08:00:00+07:00",
        "end": "2024-07-02T09:00:00+07:00",
    }
    allday = {"name": "allday", "start": "2024-07-03", "end": "2024-07-04"}
    weekly = {
        "name": "weekly",
        "start": "2024-06-03T07:00:00Z",
        "end": "2024-06-03T07:30:00Z",
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=10"],
    }
    for body in (zoned, offset, allday, weekly):
        event = api.post(url, headers=calendar_auth, json=body).get_json()
        for key, value in body.items():
            assert event[key] == value, (body["name"], key)
    events = api.get(url, headers=calendar_auth).get_json()
    by_name = {e["name"]: e for e in events["objects"]}
    assert by_name["allday"]["all_day"] is True and by_name["zoned"]["all_day"] is False
    assert by_name["weekly"]["recurrence_type"] == "recurring"
    assert [e["name"] for e in events["objects"]] == ["weekly", "zoned", "offset", "allday"]


def test_event_filters_and_paging(api: Client, calendar_auth: dict[str, str]) -> None:
    url = f"{C}/calendars/{new_calendar(api, calendar_auth)['id']}/events"
    for day in (1, 2, 3, 4, 5):
        body = {
            "name": f"d{day}",
            "start": f"2024-03-0{day}T10:00:00Z",
            "end": f"2024-03-0{day}T11:00:00Z",
        }
        assert api.post(url, headers=calendar_auth, json=body).status_code == 201
    window = {"start": "2024-03-02T00:00:00Z", "end": "2024-03-04T00:00:00Z"}
    filtered = api.get(url, headers=calendar_auth, query_string=window).get_json()
    assert [e["name"] for e in filtered["objects"]] == ["d2", "d3"]
    first = api.get(url, headers=calendar_auth, query_string={"page_size": 2}).get_json()
    assert [e["name"] for e in first["objects"]] == ["d1", "d2"] and first["next_page"] == 2
    last = api.get(url, headers=calendar_auth, query_string={"page_size": 2, "page": 3}).get_json()
    assert [e["name"] for e in last["objects"]] == ["d5"] and last["next_page"] is None


def test_availability(api: Client, calendar_auth: dict[str, str]) -> None:
    primary = api.get(f"{C}/calendars/primary", headers=calendar_auth).get_json()
    url = f"{C}/calendars/{primary['id']}/events"
    busy = {"name": "busy", "start": "2030-05-20T02:00:00Z", "end": "2030-05-20T03:00:00Z"}
    assert api.post(url, headers=calendar_auth, json=busy).status_code == 201
    request = {
        "calendars": ["primary"],
        "meeting_duration": "PT1H",
        "constraints": {
            "time_windows": [
                {"start": "2030-05-20T08:00:00+07:00", "end": "2030-05-20T12:00:00+07:00"}
            ]
        },
    }
    result = api.post(f"{C}/availability", headers=calendar_auth, json=request)
    assert result.status_code == 200, result.get_data(as_text=True)
    assert result.get_json()["time_windows"] == [
        {"start": "2030-05-20T01:00:00Z", "end": "2030-05-20T02:00:00Z"},
        {"start": "2030-05-20T03:00:00Z", "end": "2030-05-20T05:00:00Z"},
    ]
