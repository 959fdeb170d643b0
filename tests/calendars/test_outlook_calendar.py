"""Outlook / Microsoft 365 specifics over the Graph stand-in (the shared flows are
test_contract.py): accounts and their apis, expanded occurrences, activity from delta rounds,
etags, errors, scopes, pass-through. The backend's Graph calls are tested one by one in
tests/providers/test_outlook_backend.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from werkzeug.test import Client

from tests.dav.conftest import error
from tests.providers.standins import Provider

from .conftest import connect_provider
from .conftest import new_event as _event

C = "/v1/accounts/me/cal"


def test_a_onedrive_sign_in_with_calendars_offers_both_apis(
    api: Client, app: Any, creds: Any, microsoft: Provider
) -> None:
    microsoft.reset()
    grant = connect_provider(api, app, creds, "microsoft", "all", microsoft)
    auth = {"Authorization": f"Bearer {grant['access_token']}"}
    account = api.get("/v1/accounts/me", headers=auth).get_json()
    assert (account["service"], account["apis"]) == (
        "onedrivebiz",
        ["storage", "calendar", "events"],
    )
    primary = api.get(f"{C}/calendars/primary", headers=auth).get_json()
    assert (primary["id"], primary["primary"]) == (microsoft.graph.state.default, True)
    scopes = set(microsoft.state.grant.scopes[next(iter(microsoft.state.grant.access))])
    assert {"Files.ReadWrite.All", "Calendars.ReadWrite"} <= scopes


def test_a_calendar_only_sign_in(
    api: Client, outlook_calendar_auth: dict[str, str], microsoft: Provider
) -> None:
    account = api.get("/v1/accounts/me", headers=outlook_calendar_auth).get_json()
    assert (account["service"], account["apis"]) == ("outlook_calendar", ["calendar", "events"])
    assert not any(r.path == "/v1.0/me/drive" for r in microsoft.requests)
    error(
        api.get("/v1/accounts/me/storage/folders/root", headers=outlook_calendar_auth),
        501,
        "not_implemented",
    )


def test_a_window_lists_occurrences(api: Client, outlook_calendar_auth: dict[str, str]) -> None:
    series = _event(
        api,
        outlook_calendar_auth,
        name="weekly",
        start="2024-06-03T07:00:00Z",
        end="2024-06-03T07:30:00Z",
        recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"],
    )
    window = {"start": "2024-06-01T00:00:00Z", "end": "2024-07-01T00:00:00Z"}
    listed = api.get(
        f"{C}/calendars/primary/events", headers=outlook_calendar_auth, query_string=window
    ).get_json()["objects"]
    assert [e["start"] for e in listed] == [
        "2024-06-03T07:00:00Z",
        "2024-06-10T07:00:00Z",
        "2024-06-17T07:00:00Z",
    ]
    assert {e["recurring_master_id"] for e in listed} == {series["id"]}
    assert {e["recurrence_type"] for e in listed} == {"recurring"}


def test_changes_made_in_outlook_become_activity(
    api: Client, outlook_calendar_auth: dict[str, str], microsoft: Provider
) -> None:
    auth = outlook_calendar_auth
    feed = "/v1/accounts/me/events"
    first = api.get(feed, headers=auth, query_string={"cursor": 0}).get_json()
    # Graph tracks changes within a window around the first look: tomorrow.
    day = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d")
    kept = _event(api, auth, name="kept", start=f"{day}T10:00:00Z", end=f"{day}T11:00:00Z")
    graph = microsoft.graph.state
    # Another client edits the event in Outlook: Graph's delta reports it.
    stored = graph.events[kept["id"]]
    stored["subject"] = "edited in Outlook"
    stored["lastModifiedDateTime"] = "2099-01-01T00:00:00.0000000Z"
    graph.touch(stored)
    graph.changed(graph.default, kept["id"])
    later = api.get(feed, headers=auth, query_string={"cursor": first["cursor"]}).get_json()
    seen = [(e["type"], e["id"], (e.get("metadata") or {}).get("name")) for e in later["objects"]]
    assert seen == [("add", kept["id"], "kept"), ("update", kept["id"], "edited in Outlook")]
    # Nothing new: nothing more.
    again = api.get(feed, headers=auth, query_string={"cursor": later["cursor"]}).get_json()
    assert again["objects"] == []


def test_etags_and_if_match(
    api: Client, outlook_calendar_auth: dict[str, str], microsoft: Provider
) -> None:
    auth = outlook_calendar_auth
    created = api.post(
        f"{C}/calendars/primary/events",
        headers=auth,
        json={"name": "x", "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z"},
    )
    etag = created.headers["ETag"]
    url = f"{C}/calendars/primary/events/{created.get_json()['id']}"
    assert etag.strip('"') == microsoft.graph.state.events[created.get_json()["id"]]["changeKey"]
    changed = api.patch(url, headers={**auth, "If-Match": etag}, json={"name": "y"})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    error(
        api.patch(url, headers={**auth, "If-Match": etag}, json={"name": "z"}),
        412,
        "precondition_failed",
    )
    error(api.delete(url, headers={**auth, "If-Match": etag}), 412, "precondition_failed")
    assert api.delete(url, headers={**auth, "If-Match": changed.headers["ETag"]}).status_code == 204
    error(api.get(url, headers=auth), 404, "not_found")


def test_graphs_errors_become_the_apis(
    api: Client, outlook_calendar_auth: dict[str, str], microsoft: Provider
) -> None:
    graph = microsoft.graph.state
    graph.throttle = 1
    answer = api.get(f"{C}/calendars", headers=outlook_calendar_auth)
    throttled = error(answer, 429, "too_many_requests")
    assert answer.headers["Retry-After"] == "7" and "retry after 7 seconds" in throttled["message"]
    error(api.get(f"{C}/calendars/AAMkNoSuchOne", headers=outlook_calendar_auth), 404, "not_found")
    graph.granted = False
    denied = error(api.get(f"{C}/calendars", headers=outlook_calendar_auth), 403, "forbidden")
    assert "Calendars.ReadWrite" in denied["message"]
    graph.granted = True
    body = {
        "name": "x",
        "start": "2030-01-01T10:00:00Z",
        "end": "2030-01-01T11:00:00Z",
        "recurrence": ["RRULE:FREQ=HOURLY"],
    }
    refused = error(
        api.post(f"{C}/calendars/primary/events", headers=outlook_calendar_auth, json=body),
        400,
        "invalid_parameters",
    )
    assert "does not map" in refused["message"]


def test_passthrough_reaches_graph(
    api: Client, outlook_calendar_auth: dict[str, str], microsoft: Provider
) -> None:
    headers = {
        **outlook_calendar_auth,
        "X-Kloudless-Raw-Method": "GET",
        "X-Kloudless-Raw-URI": "/v1.0/me/calendars",
    }
    answer = api.post("/v1/accounts/me/raw", headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    ids = [c["id"] for c in json.loads(answer.get_data(as_text=True))["value"]]
    assert ids == [microsoft.graph.state.default]
    sent = [r for r in microsoft.requests if r.path == "/v1.0/me/calendars"][-1]
    assert sent.headers["Authorization"] != outlook_calendar_auth["Authorization"]
