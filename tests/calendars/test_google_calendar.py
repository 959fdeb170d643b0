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


def test_a_token_google_rejects_is_refreshed_once(
    api: Client, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    google.state.expire_access_tokens()
    answer = api.get(f"{C}/calendars/primary", headers=google_calendar_auth)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert google.state.issued.count("refresh_token") == 1
    # The refreshed token keeps the calendar scope it was granted with.
    assert api.get(f"{C}/calendars", headers=google_calendar_auth).status_code == 200
    assert google.state.issued.count("refresh_token") == 1


def test_a_revoked_grant_makes_the_account_inactive(
    api: Client, app: Any, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    google.state.revoke()
    refused = error(api.get(f"{C}/calendars", headers=google_calendar_auth), 401, "invalid_token")
    assert "Connect it again" in refused["message"]
    account_id = app.store.lookup_token(google_calendar_auth["Authorization"].split()[1])
    row = app.store.get_account(account_id["account_id"])
    assert row is not None and not row["active"]


def test_an_expired_sync_token_starts_a_new_baseline(
    api: Client, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    events = "/v1/accounts/me/events"
    assert api.get(events, headers=google_calendar_auth).get_json()["objects"] == []  # baseline
    google.calendar.oldest_sync = google.calendar.changes + 1  # Google expires the token
    _event(api, google_calendar_auth, name="n", start="2024-01-01", end="2024-01-02")
    listed = api.get(events, headers=google_calendar_auth).get_json()
    assert [e["type"] for e in listed["objects"]] == ["add"]  # the API's own event, once
    asked = [q for _, p, q in google.calendar.requests if p.endswith("/events")]
    # The old token (410), then at once a new baseline without one.
    assert "syncToken=" in asked[-2] and "syncToken=" not in asked[-1]
    google.calendar.oldest_sync = 0
    again = api.get(events, headers=google_calendar_auth, query_string={"cursor": listed["cursor"]})
    assert again.get_json()["objects"] == []


def test_deleting_the_account_forgets_its_calendar_state(
    api: Client, app: Any, creds: Any, google_calendar_auth: dict[str, str]
) -> None:
    window = {"start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z", "page_size": 1}
    for day in (1, 2):
        _event(
            api,
            google_calendar_auth,
            name=f"{day}",
            start=f"2024-01-0{day}",
            end=f"2024-01-0{day + 1}",
        )
    api.get(f"{C}/calendars/primary/events", headers=google_calendar_auth, query_string=window)
    api.get("/v1/accounts/me/events", headers=google_calendar_auth)
    account_id = api.get("/v1/accounts/me", headers=google_calendar_auth).get_json()["id"]
    tables = ("calendar_page_tokens", "calendar_sync_state", "calendar_sync_seen")

    def rows() -> int:
        return sum(
            len(app.store.all(f"SELECT * FROM {t} WHERE account_id = ?", (account_id,)))
            for t in tables
        )

    assert rows() > 0
    deleted = api.delete(
        f"/v1/accounts/{account_id}", headers={"Authorization": f"APIKey {creds.api_key}"}
    )
    assert deleted.status_code == 204, deleted.get_data(as_text=True)
    assert rows() == 0


def test_calendar_pages_start_with_the_primary_one(
    api: Client, google_calendar_auth: dict[str, str]
) -> None:
    made = [
        api.post(f"{C}/calendars", headers=google_calendar_auth, json={"name": n}).get_json()["id"]
        for n in ("one", "two")
    ]
    for size, expected in ((1, 3), (2, 2)):
        pages, page = [], 1
        for _ in range(5):  # bounded
            answer = api.get(
                f"{C}/calendars",
                headers=google_calendar_auth,
                query_string={"page_size": size, "page": page},
            ).get_json()
            pages.append([c["id"] for c in answer["objects"]])
            if answer["next_page"] is None:
                break
            page = answer["next_page"]
        assert pages[0][0] == PRIMARY and len(pages) == expected
        assert all(len(p) <= size for p in pages)
        assert sorted(i for p in pages for i in p) == sorted([PRIMARY, *made])


def test_calendars_changed_at_google_become_activity(
    api: Client, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    events = "/v1/accounts/me/events"
    ours = api.post(f"{C}/calendars", headers=google_calendar_auth, json={"name": "ours"})
    first = api.get(events, headers=google_calendar_auth).get_json()  # the baseline
    assert [(e["type"], e["metadata"]["type"]) for e in first["objects"]] == [("add", "calendar")]
    # At Google: a new calendar, and ours deleted (not through this API).
    with google.calendar_api.lock:
        made = google.calendar_api.calendars_insert(body={"summary": "made at Google"})
        google.calendar_api.calendars_delete(calendarId=ours.get_json()["id"])
    answer = api.get(
        events, headers=google_calendar_auth, query_string={"cursor": first["cursor"]}
    ).get_json()
    assert [(e["type"], e["metadata"]["id"]) for e in answer["objects"]] == [
        ("add", made["id"]),
        ("delete", ours.get_json()["id"]),
    ]
    # Our own change is reported once, by the API.
    renamed = api.patch(
        f"{C}/calendars/{made['id']}", headers=google_calendar_auth, json={"name": "renamed"}
    )
    assert renamed.status_code == 200
    last = api.get(
        events, headers=google_calendar_auth, query_string={"cursor": answer["cursor"]}
    ).get_json()
    assert [(e["type"], e["metadata"]["name"]) for e in last["objects"]] == [("update", "renamed")]


def test_a_second_event_with_the_same_ical_uid_is_a_conflict(
    api: Client, google_calendar_auth: dict[str, str], google: GoogleProvider
) -> None:
    body = {
        "name": "a",
        "ical_uid": "meeting-7@example.com",
        "start": "2024-05-02T10:00:00Z",
        "end": "2024-05-02T11:00:00Z",
    }
    first = _event(api, google_calendar_auth, **body)
    assert first["ical_uid"] == "meeting-7@example.com"  # the client's UID, kept by Google
    again = api.post(f"{C}/calendars/primary/events", headers=google_calendar_auth, json=body)
    found = error(again, 409, "naming_conflict")
    assert found["conflicting_resource_id"] == first["id"]
    assert len(google.calendar.calendars[PRIMARY].events) == 1
