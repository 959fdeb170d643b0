"""The calendar API on a ``local`` and a ``caldav`` account (Radicale), through the test client."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.test import Client

from .conftest import error
from .servers import DavServer

C = "/v1/accounts/me/cal"


def new_calendar(api: Client, auth: dict[str, str], name: str = "Team") -> dict[str, Any]:
    response = api.post(f"{C}/calendars", headers=auth, json={"name": name})
    assert response.status_code == 201, response.get_data(as_text=True)
    return dict(response.get_json())


# -- the same calendar flows on both services ---------------------------------------------------


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
    for key, value in body.items():
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


# -- caldav specifics -----------------------------------------------------------------------------


def test_raw_is_icalendar_text(api: Client, caldav_auth: dict[str, str]) -> None:
    url = f"{C}/calendars/primary/events"
    body = {"name": "raw", "start": "2024-01-01T10:00:00Z", "end": "2024-01-01T11:00:00Z"}
    event = api.post(url, headers=caldav_auth, json=body).get_json()
    got = api.get(
        f"{url}/{event['id']}", headers=dict(caldav_auth, **{"X-Kloudless-Raw-Data": "true"})
    ).get_json()
    assert got["raw"].startswith("BEGIN:VCALENDAR") and "SUMMARY:raw" in got["raw"]


def test_events_made_upstream_are_listed(
    api: Client, caldav_auth: dict[str, str], caldav_server: DavServer
) -> None:
    primary = api.get(f"{C}/calendars/primary", headers=caldav_auth).get_json()
    href = (
        primary.get("raw")
        or api.get(
            f"{C}/calendars/primary", headers=dict(caldav_auth, **{"X-Kloudless-Raw-Data": "true"})
        ).get_json()["raw"]["href"]
    )
    import requests

    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:other\r\nBEGIN:VEVENT\r\nUID:up-1\r\n"
        "DTSTAMP:20240101T000000Z\r\nDTSTART:20240601T100000Z\r\nDTEND:20240601T110000Z\r\n"
        "SUMMARY:from elsewhere\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    put = requests.put(
        href + "up-1.ics",
        data=ics.encode(),
        auth=(caldav_server.username, caldav_server.password),
        headers={"Content-Type": "text/calendar"},
        timeout=10,
    )
    assert put.status_code in (201, 204)
    events = api.get(f"{C}/calendars/primary/events", headers=caldav_auth).get_json()["objects"]
    assert [(e["name"], e["ical_uid"], e["start"]) for e in events] == [
        ("from elsewhere", "up-1", "2024-06-01T10:00:00Z")
    ]


def test_passthrough_to_caldav(api: Client, caldav_auth: dict[str, str]) -> None:
    headers = dict(
        caldav_auth,
        **{
            "X-Kloudless-Raw-Method": "PROPFIND",
            "X-Kloudless-Raw-URI": "/",
            "X-Kloudless-Raw-Headers": json.dumps({"Depth": "0"}),
        },
    )
    response = api.post("/v1/accounts/me/raw", headers=headers)
    assert response.status_code == 207 and b"current-user-principal" in response.data


def test_connect_errors(
    api: Client, creds: Any, caldav_server: DavServer, closed_port_url: str
) -> None:
    key = {"Authorization": f"APIKey {creds.api_key}"}
    base = {
        "service": "caldav",
        "account": "c",
        "url": caldav_server.url,
        "username": caldav_server.username,
    }
    wrong = api.post("/v1/accounts", headers=key, json={**base, "password": "wrong-pw"})
    assert "wrong-pw" not in json.dumps(error(wrong, 401, "service_unauthorized"))
    missing = api.post(
        "/v1/accounts",
        headers=key,
        json={**base, "password": caldav_server.password, "primary_calendar": "nope"},
    )
    error(missing, 400, "invalid_parameters")
    down = api.post(
        "/v1/accounts", headers=key, json={**base, "url": closed_port_url, "password": "p"}
    )
    error(down, 503, "service_not_available")


def test_upstream_password_changed(api: Client, app: Any, caldav_auth: dict[str, str]) -> None:
    token = caldav_auth["Authorization"].split()[1]
    account_id = app.store.lookup_token(token)["account_id"]
    config = json.loads(app.store.get_account(account_id)["config"])
    config["password"] = "changed-upstream"
    config.pop("password_sealed", None)
    app.store.execute(
        "UPDATE accounts SET config = ? WHERE id = ?", (json.dumps(config), account_id)
    )
    body = error(api.get(f"{C}/calendars", headers=caldav_auth), 401, "service_unauthorized")
    assert "changed-upstream" not in body["message"]
