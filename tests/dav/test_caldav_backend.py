"""CalDAV specifics of the calendar API (Radicale); the calendar flows every service shares are
tests/calendars/test_contract.py."""

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
