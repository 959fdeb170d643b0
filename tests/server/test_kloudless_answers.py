"""Answers Kloudless v1 client code relies on: event ids, account filters and fields, multipart
sessions without a size and with integer ids, raw id conversion, ``recent?after=`` forms."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import Client

from kloudless.server.bootstrap import Credentials

from .conftest import assert_error, mkdir, upload

S = "/v1/accounts/me/storage"


# -- 1. activity events: id = the object's id, event_id = the sequence number --------------------
def test_delete_event_is_found_by_the_deleted_objects_id(
    client: Client, auth: dict[str, str]
) -> None:
    file_id = upload(client, auth, "gone.txt", b"x").get_json()["id"]
    cursor = client.get("/v1/accounts/me/events/latest", headers=auth).get_json()["cursor"]
    assert client.delete(f"{S}/files/{file_id}", headers=auth).status_code == 204
    page = client.get(
        "/v1/accounts/me/events", headers=auth, query_string={"cursor": cursor}
    ).get_json()
    [event] = page["objects"]
    assert event["type"] == "delete"
    assert event["id"] == file_id == event["object_id"] == event["metadata"]["id"]
    assert isinstance(event["event_id"], int) and event["event_id"] == page["cursor"] > cursor
    one = client.get(event["href"].split("localhost")[1], headers=auth).get_json()
    assert one["event_id"] == event["event_id"] and one["id"] == file_id


def test_calendar_events_carry_the_calendar_objects_id(
    client: Client, auth: dict[str, str]
) -> None:
    created = client.post(
        "/v1/accounts/me/cal/calendars/primary/events",
        headers=auth,
        json={
            "name": "standup",
            "start": "2026-12-01T09:00:00Z",
            "end": "2026-12-01T09:15:00Z",
        },
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    page = client.get("/v1/accounts/me/events", headers=auth).get_json()
    last = page["objects"][-1]
    assert last["id"] == created.get_json()["id"] and last["type"] == "add"
    ids = [e["event_id"] for e in page["objects"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


# -- 2. account list filters ---------------------------------------------------------------------
@pytest.mark.parametrize("true", ["true", "True", "1"])
@pytest.mark.parametrize("false", ["false", "False", "0"])
def test_account_filters_admin_and_enabled(
    client: Client, api_key_auth: dict[str, str], creds: Credentials, true: str, false: str
) -> None:
    other = client.post("/v1/accounts", headers=api_key_auth, json={"account": "second"})
    other_id = other.get_json()["id"]
    client.patch(f"/v1/accounts/{other_id}", headers=api_key_auth, json={"enabled": False})

    def ids(**query: str) -> list[int]:
        response = client.get("/v1/accounts", headers=api_key_auth, query_string=query)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [a["id"] for a in response.get_json()["objects"]]

    assert ids(admin=true) == []  # no admin account on this server
    assert ids(admin=false) == [creds.account_id, other_id]
    assert ids(enabled=true) == [creds.account_id]
    assert ids(enabled=false) == [other_id]
    assert ids(enabled=false, active=true) == [other_id]
    assert ids(enabled=true, search="second") == []


def test_account_filter_rejects_a_non_boolean(client: Client, api_key_auth: dict[str, str]) -> None:
    for name in ("admin", "enabled", "active"):
        response = client.get("/v1/accounts", headers=api_key_auth, query_string={name: "maybe"})
        assert name in assert_error(response, 400, "invalid_parameters")["message"]


# -- 5. PATCH round-trips every field it accepts -------------------------------------------------
def test_patch_account_round_trips_its_fields(
    client: Client, api_key_auth: dict[str, str], creds: Credentials
) -> None:
    url = f"/v1/accounts/{creds.account_id}"
    body = {
        "account": "renamed@example.com",
        "active": False,
        "enabled": False,
        "token_expiry": "2027-01-02T03:04:05Z",
        "refresh_token_expiry": "2027-06-01T00:00:00+00:00",
        "custom_properties": {"team": "blue", "n": 2},
    }
    patched = client.patch(url, headers=api_key_auth, json=body)
    assert patched.status_code == 200, patched.get_data(as_text=True)
    fetched = client.get(url, headers=api_key_auth).get_json()
    for data in (patched.get_json(), fetched):
        assert data["account"] == "renamed@example.com"
        assert data["active"] is False and data["enabled"] is False
        assert data["token_expiry"] == "2027-01-02T03:04:05Z"
        assert data["refresh_token_expiry"] == "2027-06-01T00:00:00Z"
        assert data["custom_properties"] == {"team": "blue", "n": 2}
    cleared = client.patch(url, headers=api_key_auth, json={"token_expiry": None, "active": True})
    assert cleared.get_json()["token_expiry"] is None and cleared.get_json()["active"] is True
    assert client.get(url, headers=api_key_auth).get_json()["token_expiry"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"token_expiry": "soon"},
        {"token_expiry": 12},
        {"refresh_token_expiry": ["2027-01-01"]},
        {"enabled": "yes"},
        {"admin": 1},
        {"account": ""},
        {"account": "x" * 256},
        {"custom_properties": []},
        {"service": "webdav"},
    ],
)
def test_patch_account_refuses_malformed_fields(
    client: Client, api_key_auth: dict[str, str], creds: Credentials, body: dict[str, Any]
) -> None:
    url = f"/v1/accounts/{creds.account_id}"
    before = client.get(url, headers=api_key_auth).get_json()
    assert_error(client.patch(url, headers=api_key_auth, json=body), 400, "invalid_parameters")
    assert client.get(url, headers=api_key_auth).get_json() == before


# -- 3. multipart without size, integer session ids ----------------------------------------------
def test_multipart_without_size_and_with_integer_ids(client: Client, auth: dict[str, str]) -> None:
    first = client.post(f"{S}/multipart", headers=auth, json={"name": "a.bin"})
    assert first.status_code == 201, first.get_data(as_text=True)
    session = first.get_json()
    assert isinstance(session["id"], int) and session["id"] > 0 and session["size"] is None
    second = client.post(f"{S}/multipart", headers=auth, json={"name": "b.bin", "size": 3})
    assert second.get_json()["id"] > session["id"]
    url = f"{S}/multipart/{session['id']}"  # the Java SDK sends the int back as a string
    for number, data in ((2, b"efgh"), (1, b"abcd"), (3, b"ij")):  # part_size is 4
        put = client.put(url, headers=auth, data=data, query_string={"part_number": number})
        assert put.status_code == 200, put.get_data(as_text=True)
    assert client.get(url, headers=auth).get_json()["parts"][2] == {"part_number": 3, "size": 2}
    done = client.post(f"{url}/complete", headers=auth)
    assert done.status_code == 201, done.get_data(as_text=True)
    assert done.get_json()["size"] == 10
    contents = client.get(f"{S}/files/{done.get_json()['id']}/contents", headers=auth)
    assert contents.data == b"abcdefghij"
    assert_error(client.get(url, headers=auth), 404, "not_found")


def test_multipart_without_size_checks_its_parts(client: Client, auth: dict[str, str]) -> None:
    session = client.post(f"{S}/multipart", headers=auth, json={"name": "c.bin"}).get_json()
    url = f"{S}/multipart/{session['id']}"
    complete = client.post(f"{url}/complete", headers=auth)
    assert "no part" in assert_error(complete, 400, "invalid_parameters")["message"]
    too_big = client.put(url, headers=auth, data=b"abcde", query_string={"part_number": 1})
    assert "at most 4" in assert_error(too_big, 400, "invalid_parameters")["message"]
    client.put(url, headers=auth, data=b"ab", query_string={"part_number": 1})
    client.put(url, headers=auth, data=b"cd", query_string={"part_number": 2})
    short = client.post(f"{url}/complete", headers=auth)
    assert "part 1 has 2 bytes" in assert_error(short, 400, "invalid_parameters")["message"]
    client.put(url, headers=auth, data=b"abcd", query_string={"part_number": 1})
    client.put(url, headers=auth, data=b"ij", query_string={"part_number": 3})
    gap = client.post(f"{url}/complete", headers=auth)
    assert "missing parts 2" not in gap.get_data(as_text=True)
    assert gap.status_code == 400  # part 2 (2 bytes) is short before the last part
    client.put(url, headers=auth, data=b"efgh", query_string={"part_number": 2})
    assert client.post(f"{url}/complete", headers=auth).status_code == 201


def test_multipart_sessions_stay_scoped_to_their_account(
    client: Client, auth: dict[str, str], api_key_auth: dict[str, str]
) -> None:
    session = client.post(f"{S}/multipart", headers=auth, json={"name": "d.bin"}).get_json()
    other = client.post("/v1/accounts", headers=api_key_auth, json={"account": "other"})
    other_url = f"/v1/accounts/{other.get_json()['id']}/storage/multipart/{session['id']}"
    assert_error(client.get(other_url, headers=api_key_auth), 404, "not_found")


# -- 4. raw id conversion ------------------------------------------------------------------------
def test_convert_id_and_encode_raw_id_on_local(client: Client, auth: dict[str, str]) -> None:
    folder = mkdir(client, auth, "docs").get_json()
    raw_headers = dict(auth, **{"X-Kloudless-Raw-Data": "true"})
    made = upload(client, raw_headers, "r.txt", b"1", parent=folder["id"]).get_json()
    assert made["raw_id"] == made["raw"]["id"]
    converted = client.post(
        f"{S}/convert_id", headers=auth, json={"raw_id": made["raw_id"], "type": "file"}
    )
    assert converted.get_json() == {"id": made["id"], "type": "file"}
    encoded = client.post(
        "/v1/accounts/me/encode_raw_id", headers=auth, json={"raw_id": folder["raw_id"]}
    )
    assert encoded.get_json() == {"id": folder["id"]}
    root = client.post("/v1/accounts/me/encode_raw_id", headers=auth, json={"id": "root"})
    assert root.get_json() == {"id": "root"}
    wrong_type = client.post(
        f"{S}/convert_id", headers=auth, json={"raw_id": made["raw_id"], "type": "folder"}
    )
    assert_error(wrong_type, 404, "not_found")


@pytest.mark.parametrize(
    "body", [{}, {"raw_id": 5}, {"raw_id": ""}, {"raw_id": "x", "type": "link"}]
)
def test_raw_id_conversion_refuses_bad_bodies(
    client: Client, auth: dict[str, str], body: dict[str, Any]
) -> None:
    for url in (f"{S}/convert_id", "/v1/accounts/me/encode_raw_id"):
        assert_error(client.post(url, headers=auth, json=body), 400, "invalid_parameters")
    bad_json = client.post(f"{S}/convert_id", headers=auth, data="[1]")
    assert bad_json.status_code == 400


# -- 7. recent?after= in every form clients send -------------------------------------------------
def test_recent_after_accepts_every_client_time_form(client: Client, auth: dict[str, str]) -> None:
    made = upload(client, auth, "new.txt", b"1").get_json()
    modified = made["modified"]  # e.g. 2026-12-01T08:11:16.123456Z
    whole = modified[:19]
    forms = [
        "2000-01-01T00:00:00Z",
        "2000-01-01T00:00:00+00:00",
        "2000-01-01 00:00:00+00:00",
        "2000-01-01 00:00:00.5+00:00",
        "2000-01-01T00:00:00.123Z",
        "2000-01-01 00:00:00 00:00",  # '+' sent unencoded arrives as a space
        "2000-01-01T02:00:00+02:00",
    ]
    for after in forms:
        listed = client.get(f"{S}/recent", headers=auth, query_string={"after": after})
        assert [o["id"] for o in listed.get_json()["objects"]] == [made["id"]], after
    for after in (modified, "2999-01-01 00:00:00+00:00"):
        listed = client.get(f"{S}/recent", headers=auth, query_string={"after": after})
        assert listed.get_json()["objects"] == [], after
    if modified[20:26] != "000000":  # local times have microseconds: the same second is older
        listed = client.get(f"{S}/recent", headers=auth, query_string={"after": whole + " 00:00"})
        assert [o["id"] for o in listed.get_json()["objects"]] == [made["id"]]
    assert (
        json.loads(
            client.get(f"{S}/recent", headers=auth, query_string={"after": "nonsense"}).data
        )["objects"]
        == []
    )
