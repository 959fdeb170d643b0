"""Google Calendar specifics over the Calendar v3 stand-in (the shared flows are
test_contract.py): accounts and their apis, paging by page tokens, expanded instances,
activity from sync tokens, etags, errors, scopes, pass-through."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.test import Client

from tests.dav.conftest import error

from .conftest import connect_provider
from .conftest import new_event as _event
from .google_standin import GoogleError, GoogleProvider

C = "/v1/accounts/me/cal"
PRIMARY = "ada@example.com"


def _signed_in(
    api: Client, app: Any, creds: Any, google: GoogleProvider, scope: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """:returns: Bearer headers and the account JSON of a fresh sign-in with ``scope``."""
    google.reset()
    grant = connect_provider(api, app, creds, "google", scope, google)
    auth = {"Authorization": f"Bearer {grant['access_token']}"}
    return auth, dict(api.get("/v1/accounts/me", headers=auth).get_json())


def test_a_storage_sign_in_with_calendars_offers_both_apis(
    api: Client, app: Any, creds: Any, google: GoogleProvider
) -> None:
    auth, account = _signed_in(api, app, creds, google, "all")
    assert (account["service"], account["apis"]) == ("gdrive", ["storage", "calendar", "events"])
    primary = api.get(f"{C}/calendars/primary", headers=auth).get_json()
    assert (primary["id"], primary["primary"]) == (PRIMARY, True)
    # What the sign-in asked Google for: Drive and Calendar.
    asked = [r for r in google.state.token_requests if r.get("grant_type") == "authorization_code"]
    assert asked
    scopes = set(google.state.grant.scopes[next(iter(google.state.grant.access))])
    assert scopes == {
        "https://www.googleapis.com/auth/drive",
        "https://www.googleapis.com/auth/calendar",
    }


def test_a_storage_only_sign_in_has_no_calendar_api(
    api: Client, app: Any, creds: Any, google: GoogleProvider
) -> None:
    auth, account = _signed_in(api, app, creds, google, "gdrive")
    assert (account["service"], account["apis"]) == ("gdrive", ["storage", "events"])
    error(api.get(f"{C}/calendars", headers=auth), 501, "not_implemented")


def test_pages_follow_googles_page_tokens(
    api: Client, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    for day in range(1, 6):
        _event(
            api,
            google_calendar_auth,
            name=f"d{day}",
            start=f"2024-03-0{day}T10:00:00Z",
            end=f"2024-03-0{day}T11:00:00Z",
        )
    window = {"start": "2024-03-01T00:00:00Z", "end": "2024-04-01T00:00:00Z", "page_size": 2}
    url = f"{C}/calendars/primary/events"
    google.calendar.requests.clear()
    names, page = [], 1
    for _ in range(5):  # bounded
        answer = api.get(url, headers=google_calendar_auth, query_string={**window, "page": page})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        names += [e["name"] for e in body["objects"]]
        if body["next_page"] is None:
            break
        page = body["next_page"]
    assert names == ["d1", "d2", "d3", "d4", "d5"] and page == 3
    lists = [q for m, p, q in google.calendar.requests if p.endswith("/events") and m == "GET"]
    assert len(lists) == 3  # one Google page per page read in order
    assert "pageToken=" not in lists[0] and all("pageToken=" in q for q in lists[1:])
    assert all("singleEvents=true" in q and "orderBy=startTime" in q for q in lists)
    # Page 3 again, later: the remembered token, one request.
    google.calendar.requests.clear()
    again = api.get(url, headers=google_calendar_auth, query_string={**window, "page": 3})
    assert [e["name"] for e in again.get_json()["objects"]] == ["d5"]
    assert len([p for _, p, _ in google.calendar.requests if p.endswith("/events")]) == 1


def test_a_window_lists_recurring_instances(
    api: Client, google_calendar_auth: dict[str, str]
) -> None:
    series = _event(
        api,
        google_calendar_auth,
        name="standup",
        start="2024-06-03T09:00:00",
        end="2024-06-03T09:15:00",
        start_time_zone="Europe/Paris",
        recurrence=["RRULE:FREQ=DAILY;COUNT=5", "EXDATE;TZID=Europe/Paris:20240605T090000"],
    )
    assert series["recurrence"][0] == "RRULE:FREQ=DAILY;COUNT=5"
    window = {"start": "2024-06-04T00:00:00Z", "end": "2024-06-10T00:00:00Z"}
    listed = api.get(
        f"{C}/calendars/primary/events", headers=google_calendar_auth, query_string=window
    ).get_json()["objects"]
    assert [e["start"][:10] for e in listed] == ["2024-06-04", "2024-06-06", "2024-06-07"]
    assert all(e["recurring_master_id"] == series["id"] for e in listed)
    assert all(e["recurrence_type"] == "recurring" for e in listed)
    assert listed[0]["start"] == "2024-06-04T09:00:00+02:00"
    # Without a window: the series itself.
    whole = api.get(f"{C}/calendars/primary/events", headers=google_calendar_auth).get_json()
    assert [e["id"] for e in whole["objects"]] == [series["id"]]


def test_changes_made_at_google_become_activity(
    api: Client, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    ours = _event(api, google_calendar_auth, name="ours", start="2024-01-01", end="2024-01-02")
    first = api.get("/v1/accounts/me/events", headers=google_calendar_auth).get_json()
    assert [(e["type"], e["metadata"]["name"]) for e in first["objects"]] == [("add", "ours")]
    cursor = first["cursor"]
    # Someone changes the calendar at Google (not through this API).
    data = google.calendar.calendars[PRIMARY]
    api_side = google.calendar
    with_event = dict(data.events[ours["id"]], summary="renamed at Google")
    with_event["start"], with_event["end"] = {"date": "2024-01-01"}, {"date": "2024-01-02"}
    api_side.changes += 1
    with_event["etag"] = f'"{api_side.changes}"'
    with_event["updated"] = "2030-01-01T00:00:00.000Z"
    data.events[ours["id"]], data.seq[ours["id"]] = with_event, api_side.changes
    answer = api.get(
        "/v1/accounts/me/events", headers=google_calendar_auth, query_string={"cursor": cursor}
    ).get_json()
    assert [(e["type"], e["metadata"]["name"]) for e in answer["objects"]] == [
        ("update", "renamed at Google")
    ]
    # Our own delete is reported once (by the API), not again by the sync.
    assert (
        api.delete(
            f"{C}/calendars/primary/events/{ours['id']}", headers=google_calendar_auth
        ).status_code
        == 204
    )
    last = api.get(
        "/v1/accounts/me/events",
        headers=google_calendar_auth,
        query_string={"cursor": answer["cursor"]},
    ).get_json()
    assert [e["type"] for e in last["objects"]] == ["delete"]
    syncs = [q for _, p, q in google.calendar.requests if "syncToken=" in q]
    assert syncs  # the stream asked Google with its sync token


def test_etags_and_if_match(
    api: Client, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    event = _event(
        api,
        google_calendar_auth,
        name="e",
        start="2024-02-01T10:00:00Z",
        end="2024-02-01T11:00:00Z",
    )
    url = f"{C}/calendars/primary/events/{event['id']}"
    got = api.get(url, headers=google_calendar_auth)
    tag = got.headers["ETag"]
    assert tag.startswith('"')
    changed = api.patch(
        url, headers=dict(google_calendar_auth, **{"If-Match": tag}), json={"name": "f"}
    )
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    stale = api.patch(
        url, headers=dict(google_calendar_auth, **{"If-Match": tag}), json={"name": "g"}
    )
    error(stale, 412, "precondition_failed")
    error(
        api.delete(url, headers=dict(google_calendar_auth, **{"If-Match": tag})),
        412,
        "precondition_failed",
    )
    assert api.get(url, headers=google_calendar_auth).get_json()["name"] == "f"


def test_a_keyed_create_is_not_repeated(
    api: Client, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    body = {"name": "once", "start": "2024-05-01T10:00:00Z", "end": "2024-05-01T11:00:00Z"}
    headers = dict(google_calendar_auth, **{"Idempotency-Key": "k-1"})
    first = api.post(f"{C}/calendars/primary/events", headers=headers, json=body)
    assert first.status_code == 201
    # The stored answer is lost (a crash after Google's insert): the retry meets Google's 409.
    app_store = api.application.store  # type: ignore[attr-defined]
    app_store.execute("DELETE FROM idempotency_keys")
    second = api.post(f"{C}/calendars/primary/events", headers=headers, json=body)
    assert second.status_code == 201, second.get_data(as_text=True)
    assert second.get_json()["id"] == first.get_json()["id"]
    assert len(google.calendar.calendars[PRIMARY].events) == 1


def test_availability_is_one_freebusy_query(
    api: Client, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    other = api.post(f"{C}/calendars", headers=google_calendar_auth, json={"name": "o"}).get_json()
    _event(
        api,
        google_calendar_auth,
        name="a",
        start="2030-01-01T09:00:00Z",
        end="2030-01-01T10:00:00Z",
    )
    api.post(
        f"{C}/calendars/{other['id']}/events",
        headers=google_calendar_auth,
        json={"name": "b", "start": "2030-01-01T11:00:00Z", "end": "2030-01-01T12:00:00Z"},
    )
    google.calendar.requests.clear()
    request = {
        "calendars": ["primary", other["id"]],
        "meeting_duration": "PT1H",
        "time_windows": [{"start": "2030-01-01T08:00:00Z", "end": "2030-01-01T13:00:00Z"}],
    }
    answer = api.post(f"{C}/availability", headers=google_calendar_auth, json=request)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["time_windows"] == [
        {"start": "2030-01-01T08:00:00Z", "end": "2030-01-01T09:00:00Z"},
        {"start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z"},
        {"start": "2030-01-01T12:00:00Z", "end": "2030-01-01T13:00:00Z"},
    ]
    assert [p for _, p, _ in google.calendar.requests if "freeBusy" in p] == [
        "/calendar/v3/freeBusy"
    ]
    unknown = dict(request, calendars=["nope@group.calendar.google.com"])
    error(
        api.post(f"{C}/availability", headers=google_calendar_auth, json=unknown), 404, "not_found"
    )


def test_googles_errors_become_the_apis(
    api: Client, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    url = f"{C}/calendars/primary/events"
    google.calendar.fail_next.append(
        GoogleError(429, "rateLimitExceeded", "Rate Limit Exceeded", **{"Retry-After": "7"})
    )
    limited = api.get(url, headers=google_calendar_auth)
    error(limited, 429, "too_many_requests")
    assert limited.headers["Retry-After"] == "7"
    google.calendar.fail_next.append(GoogleError(403, "userRateLimitExceeded", "slow down"))
    limited = api.get(url, headers=google_calendar_auth)
    error(limited, 429, "too_many_requests")
    assert limited.headers["Retry-After"] == "5"
    google.calendar.fail_next.append(GoogleError(503, "backendError", "Backend Error"))
    error(api.get(url, headers=google_calendar_auth), 503, "service_not_available")
    error(api.get(f"{url}/nope1", headers=google_calendar_auth), 404, "not_found")
    error(api.get(f"{C}/calendars/nope@x", headers=google_calendar_auth), 404, "not_found")
    error(api.delete(f"{C}/calendars/primary", headers=google_calendar_auth), 403, "forbidden")
    bad_rule = {
        "start": "2024-01-01T10:00:00Z",
        "end": "2024-01-01T11:00:00Z",
        "recurrence": ["RRULE:FREQ=SOMETIMES"],
    }
    error(api.post(url, headers=google_calendar_auth, json=bad_rule), 400, "invalid_parameters")


def test_a_missing_scope_names_what_to_grant(
    api: Client, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    for token in list(google.state.grant.scopes):
        google.state.grant.scopes[token] = ["https://www.googleapis.com/auth/drive"]
    refused = error(api.get(f"{C}/calendars", headers=google_calendar_auth), 403, "forbidden")
    assert "https://www.googleapis.com/auth/calendar" in refused["message"]
    assert "tok_" not in refused["message"]


def test_passthrough_reaches_the_calendar_api(
    api: Client, google_calendar_auth: dict[str, str]
) -> None:
    headers = dict(
        google_calendar_auth,
        **{
            "X-Kloudless-Raw-Method": "GET",
            "X-Kloudless-Raw-URI": "/calendar/v3/users/me/calendarList",
        },
    )
    answer = api.post("/v1/accounts/me/raw", headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    items = json.loads(answer.get_data())["items"]
    assert [i["id"] for i in items] == [PRIMARY]
