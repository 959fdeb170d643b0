"""Accounts, events, raw, meta, links and multipart uploads."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.test import Client

from kloudless.server import create_app
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials
from kloudless.server.settings import Settings

from .conftest import BufferedClient, assert_error, mkdir, upload

S = "/v1/accounts/me/storage"


# -- accounts -----------------------------------------------------------------------------------
def test_accounts_list_with_bearer_and_api_key(
    client: Client,
    app: ServerApp,
    creds: Credentials,
    auth: dict[str, str],
    api_key_auth: dict[str, str],
) -> None:
    app.store.create_account(creds.app_id, "local", "second")
    own = client.get("/v1/accounts", headers=auth).get_json()
    assert [a["id"] for a in own["objects"]] == [creds.account_id]
    everything = client.get("/v1/accounts", headers=api_key_auth).get_json()
    assert everything["total"] == 2 and everything["type"] == "object_list"
    assert everything["objects"][0]["type"] == "account"
    assert everything["objects"][0]["api"] == "core"
    assert everything["objects"][0]["href"].endswith(f"/v1/accounts/{creds.account_id}")


def test_account_get_full_patch_delete(
    client: Client, app: ServerApp, creds: Credentials, api_key_auth: dict[str, str]
) -> None:
    url = f"/v1/accounts/{creds.account_id}"
    full = client.get(url, headers=api_key_auth, query_string={"retrieve_full": "true"})
    caps = full.get_json()["properties"]["capabilities"]
    assert caps["can_upload_file"]["value"] is True
    assert "properties" not in client.get(url, headers=api_key_auth).get_json()
    patched = client.patch(
        url, headers=api_key_auth, json={"account": "renamed", "custom_properties": {"a": 1}}
    )
    assert patched.get_json()["account"] == "renamed"
    assert patched.get_json()["custom_properties"] == {"a": 1}
    assert_error(
        client.patch(url, headers=api_key_auth, json={"active": "yes"}), 400, "invalid_parameters"
    )
    assert_error(
        client.patch(url, headers=api_key_auth, json={"service": "dropbox"}),
        400,
        "invalid_parameters",
    )
    assert client.delete(url, headers=api_key_auth).status_code == 204
    assert_error(client.get(url, headers=api_key_auth), 404, "not_found")
    assert_error(
        client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {creds.token}"}),
        401,
        "invalid_token",
    )


def test_account_create_needs_api_key(
    client: Client, auth: dict[str, str], api_key_auth: dict[str, str]
) -> None:
    assert_error(client.post("/v1/accounts", headers=auth, json={"account": "x"}), 403, "forbidden")
    created = client.post(
        "/v1/accounts", headers=api_key_auth, json={"account": "new", "service": "local"}
    )
    assert created.status_code == 201 and created.get_json()["service"] == "local"
    assert_error(
        client.post("/v1/accounts", headers=api_key_auth, json={"account": "x", "service": "nope"}),
        400,
        "invalid_parameters",
    )


# -- events ---------------------------------------------------------------------------------------
def test_events_flow(client: Client, auth: dict[str, str]) -> None:
    assert client.get("/v1/accounts/me/events/latest", headers=auth).get_json() == {"cursor": 0}
    folder = mkdir(client, auth, "f").get_json()
    file_id = upload(client, auth, "a.txt", b"1").get_json()["id"]
    client.patch(f"{S}/files/{file_id}", headers=auth, json={"name": "b.txt"})
    client.patch(f"{S}/files/{file_id}", headers=auth, json={"parent_id": folder["id"]})
    client.put(f"{S}/files/{file_id}", headers=auth, data=b"22")
    client.post(f"{S}/files/{file_id}/copy", headers=auth, json={"parent_id": "root"})
    client.delete(f"{S}/files/{file_id}", headers=auth)
    events = client.get(
        "/v1/accounts/me/events", headers=auth, query_string={"cursor": 0, "page_size": 3}
    ).get_json()
    assert events["count"] == 3 and events["remaining"] == 4
    assert [e["type"] for e in events["objects"]] == ["add", "add", "rename"]
    assert events["objects"][1]["metadata"]["id"] == file_id
    rest = client.get(
        "/v1/accounts/me/events", headers=auth, query_string={"cursor": events["cursor"]}
    ).get_json()
    assert [e["type"] for e in rest["objects"]] == ["move", "update", "copy", "delete"]
    assert rest["remaining"] == 0
    latest = client.get("/v1/accounts/me/events/latest", headers=auth).get_json()["cursor"]
    assert latest == rest["cursor"]
    empty = client.get(
        "/v1/accounts/me/events", headers=auth, query_string={"cursor": latest}
    ).get_json()
    assert empty["objects"] == [] and empty["cursor"] == latest
    ahead = client.get("/v1/accounts/me/events", headers=auth, query_string={"cursor": latest + 1})
    assert_error(ahead, 400, "invalid_parameters")
    assert "ahead of the latest event" in ahead.get_json()["message"]


def test_events_bad_params(client: Client, auth: dict[str, str]) -> None:
    url = "/v1/accounts/me/events"
    for bad in ({"cursor": "abc"}, {"cursor": -1}, {"page_size": 100000}, {"page_size": 0}):
        assert_error(client.get(url, headers=auth, query_string=bad), 400, "invalid_parameters")


def test_events_are_per_account(
    client: Client, app: ServerApp, creds: Credentials, auth: dict[str, str]
) -> None:
    other = app.store.create_account(creds.app_id, "local", "other")
    other_auth = {"Authorization": f"Bearer {app.store.create_token(creds.app_id, other)}"}
    upload(client, other_auth, "theirs.txt", b"x")
    mine = client.get("/v1/accounts/me/events", headers=auth).get_json()
    assert mine["objects"] == []


# -- raw / meta -----------------------------------------------------------------------------------
def test_passthrough_local_is_501(client: Client, auth: dict[str, str]) -> None:
    headers = dict(auth, **{"X-Kloudless-Raw-Method": "GET", "X-Kloudless-Raw-URI": "/about"})
    assert_error(client.post("/v1/accounts/me/raw", headers=headers), 501, "not_implemented")
    assert_error(client.post("/v1/accounts/me/raw", headers=auth), 400, "invalid_parameters")


def test_meta_applications(
    client: Client,
    app: ServerApp,
    creds: Credentials,
    auth: dict[str, str],
    api_key_auth: dict[str, str],
) -> None:
    listing = client.get("/v1/meta/applications", headers=api_key_auth).get_json()
    assert [a["id"] for a in listing["objects"]] == [creds.app_id]
    app_token = app.store.create_token(creds.app_id, None)
    token_auth = {"Authorization": f"Bearer {app_token}"}
    one = client.get(f"/v1/meta/applications/{creds.app_id}", headers=token_auth).get_json()
    assert one["type"] == "application" and one["api"] == "meta"
    patched = client.patch(
        f"/v1/meta/applications/{creds.app_id}", headers=api_key_auth, json={"name": "Renamed"}
    ).get_json()
    assert patched["name"] == "Renamed"
    assert_error(client.get("/v1/meta/applications", headers=auth), 403, "forbidden")
    assert_error(
        client.get("/v1/meta/applications/app_other", headers=api_key_auth), 404, "not_found"
    )


# -- links ----------------------------------------------------------------------------------------
def test_links_crud_and_public_download(client: Client, auth: dict[str, str]) -> None:
    file_id = upload(client, auth, "a.txt", b"test").get_json()["id"]
    created = client.post(f"{S}/links", headers=auth, json={"file_id": file_id, "direct": True})
    assert created.status_code == 201
    link = created.get_json()
    assert link["type"] == "link" and link["password"] is False
    path = "/" + link["url"].split("/", 3)[3]
    public = client.get(path)
    assert public.status_code == 200 and public.data == b"test"
    listing = client.get(f"{S}/links", headers=auth).get_json()
    assert listing["total"] == 1
    client.patch(f"{S}/links/{link['id']}", headers=auth, json={"active": False})
    assert_error(client.get(path), 404, "not_found")
    client.patch(
        f"{S}/links/{link['id']}",
        headers=auth,
        json={"active": True, "expiration": "2000-01-01T00:00:00Z"},
    )
    assert_error(client.get(path), 404, "not_found")
    assert client.delete(f"{S}/links/{link['id']}", headers=auth).status_code == 204
    assert_error(client.get(f"{S}/links/{link['id']}", headers=auth), 404, "not_found")
    assert_error(
        client.post(f"{S}/links", headers=auth, json={"file_id": "nope"}), 400, "invalid_parameters"
    )


def test_password_link(client: Client, auth: dict[str, str]) -> None:
    file_id = upload(client, auth, "a.txt", b"secret").get_json()["id"]
    link = client.post(
        f"{S}/links", headers=auth, json={"file_id": file_id, "direct": True, "password": "pw"}
    ).get_json()
    assert link["password"] is True
    path = "/" + link["url"].split("/", 3)[3]
    form = client.get(path)
    assert b"id_password" in form.data and b"secret" not in form.data
    wrong = client.post(path, data={"password": "no"})
    assert wrong.status_code == 403 and b"secret" not in wrong.data
    right = client.post(path, data={"password": "pw"})
    assert right.status_code == 200 and right.data == b"secret"


# -- multipart ------------------------------------------------------------------------------------
def _init(client: Client, auth: dict[str, str], size: int, name: str = "big.bin") -> Any:
    response = client.post(
        f"{S}/multipart", headers=auth, json={"name": name, "parent_id": "root", "size": size}
    )
    assert response.status_code == 201, response.data
    return response.get_json()


def test_multipart_any_order_and_twice(client: Client, auth: dict[str, str]) -> None:
    data = b"abcdefghij"  # part_size 4 in tests -> parts of 4, 4, 2
    session = _init(client, auth, len(data))
    assert session["part_size"] == 4 and session["parts"] == [] and session["type"] == "multipart"
    url = f"{S}/multipart/{session['id']}"
    for number in (3, 1, 2, 1):
        chunk = data[(number - 1) * 4 : number * 4]
        part = client.put(url, headers=auth, data=chunk, query_string={"part_number": number})
        assert part.status_code == 200
        assert part.get_json() == {"part_number": number, "size": len(chunk)}
    status = client.get(url, headers=auth).get_json()
    assert status["parts"] == [
        {"part_number": 1, "size": 4},
        {"part_number": 2, "size": 4},
        {"part_number": 3, "size": 2},
    ]
    done = client.post(f"{url}/complete", headers=auth)
    assert done.status_code == 201
    file_id = done.get_json()["id"]
    assert client.get(f"{S}/files/{file_id}/contents", headers=auth).data == data
    assert_error(client.get(url, headers=auth), 404, "not_found")


def test_multipart_errors(client: Client, auth: dict[str, str]) -> None:
    session = _init(client, auth, 10)
    url = f"{S}/multipart/{session['id']}"
    client.put(url, headers=auth, data=b"abcd", query_string={"part_number": 1})
    missing = assert_error(client.post(f"{url}/complete", headers=auth), 400, "invalid_parameters")
    assert "missing parts 2, 3" in missing["message"]
    for query, body in (
        ({"part_number": 4}, b"ab"),
        ({"part_number": 0}, b"ab"),
        ({}, b"ab"),
        ({"part_number": 2}, b"abc"),
        ({"part_number": 3}, b"a"),
    ):
        assert_error(
            client.put(url, headers=auth, data=body, query_string=query), 400, "invalid_parameters"
        )
    bad_bodies: list[dict[str, object]] = [
        {"name": "x", "size": "4"},
        {"name": "x", "size": True},
        {"name": "x", "size": 1.5},
        {"name": "x", "size": -1},
        {"name": "a/b", "size": 1},
        {"name": "x", "size": 1, "parent_id": "folder_nope"},
    ]
    for bad in bad_bodies:
        response = client.post(f"{S}/multipart", headers=auth, json=bad)
        assert response.status_code == 400
    assert client.delete(url, headers=auth).status_code == 204
    assert_error(client.get(url, headers=auth), 404, "not_found")


def test_multipart_survives_restart(
    settings: Settings, app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    session = _init(client, auth, 6)
    url = f"{S}/multipart/{session['id']}"
    client.put(url, headers=auth, data=b"abcd", query_string={"part_number": 1})
    app.close()
    restarted = create_app(settings)
    try:
        again = BufferedClient(restarted)
        status = again.get(url, headers=auth).get_json()
        assert status["parts"] == [{"part_number": 1, "size": 4}]
        again.put(url, headers=auth, data=b"ef", query_string={"part_number": 2})
        done = again.post(f"{url}/complete", headers=auth).get_json()
        assert again.get(f"{S}/files/{done['id']}/contents", headers=auth).data == b"abcdef"
    finally:
        restarted.close()


def test_multipart_cross_account(
    client: Client, app: ServerApp, creds: Credentials, auth: dict[str, str]
) -> None:
    other = app.store.create_account(creds.app_id, "local", "other")
    other_auth = {"Authorization": f"Bearer {app.store.create_token(creds.app_id, other)}"}
    session = _init(client, other_auth, 4)
    url = f"{S}/multipart/{session['id']}"
    assert_error(client.get(url, headers=auth), 404, "not_found")
    assert_error(
        client.put(url, headers=auth, data=b"abcd", query_string={"part_number": 1}),
        404,
        "not_found",
    )


def test_overwrite_upload_records_update(client: Client, auth: dict[str, str]) -> None:
    upload(client, auth, "a.txt", b"1")
    upload(client, auth, "a.txt", b"2", overwrite="true")
    events = client.get("/v1/accounts/me/events", headers=auth).get_json()
    assert [e["type"] for e in events["objects"]] == ["add", "update"]
    assert json.loads(json.dumps(events))["objects"][1]["metadata"]["size"] == 1


def test_links_tasks_cross_account(
    client: Client, app: ServerApp, creds: Credentials, auth: dict[str, str]
) -> None:
    other = app.store.create_account(creds.app_id, "local", "other")
    other_auth = {"Authorization": f"Bearer {app.store.create_token(creds.app_id, other)}"}
    theirs = upload(client, other_auth, "t.txt", b"x").get_json()["id"]
    link = client.post(f"{S}/links", headers=other_auth, json={"file_id": theirs}).get_json()
    assert_error(client.get(f"{S}/links/{link['id']}", headers=auth), 404, "not_found")
    assert_error(
        client.patch(f"{S}/links/{link['id']}", headers=auth, json={"active": False}),
        404,
        "not_found",
    )
    assert_error(client.delete(f"{S}/links/{link['id']}", headers=auth), 404, "not_found")
    assert client.get(f"{S}/links", headers=auth).get_json()["objects"] == []
    assert_error(
        client.post(f"{S}/links", headers=auth, json={"file_id": theirs}), 400, "invalid_parameters"
    )
    task = client.post(
        f"{S}/files/{theirs}/copy",
        json={"parent_id": "root"},
        headers=dict(other_auth, **{"X-Kloudless-Async": "true"}),
    ).get_json()
    assert_error(client.get(f"/v1/accounts/me/tasks/{task['id']}", headers=auth), 404, "not_found")


def test_account_delete_removes_files_and_sessions(
    client: Client, app: ServerApp, creds: Credentials, api_key_auth: dict[str, str]
) -> None:
    import os

    other = app.store.create_account(creds.app_id, "local", "gone")
    other_auth = {"Authorization": f"Bearer {app.store.create_token(creds.app_id, other)}"}
    upload(client, other_auth, "t.txt", b"x")
    session = _init(client, other_auth, 8)
    client.put(
        f"{S}/multipart/{session['id']}",
        headers=other_auth,
        data=b"abcd",
        query_string={"part_number": 1},
    )
    assert client.delete(f"/v1/accounts/{other}", headers=api_key_auth).status_code == 204
    data_dir = app.settings.data_dir
    assert not os.path.exists(os.path.join(data_dir, "accounts", str(other)))
    assert not os.path.exists(os.path.join(data_dir, "multipart", str(session["id"])))


def test_unsupported_endpoints_are_501(client: Client, auth: dict[str, str]) -> None:
    file_id = upload(client, auth, "a.png", b"x").get_json()["id"]
    for method, path in (
        ("GET", f"{S}/files/{file_id}/thumbnail"),
        ("GET", f"{S}/files/{file_id}/permissions"),
        ("PATCH", f"{S}/files/{file_id}/properties"),
        ("POST", f"{S}/files/upload_url"),
        ("GET", "/v1/accounts/me/crm/accounts"),
    ):
        assert_error(client.open(path, method=method, headers=auth), 501, "not_implemented")
    assert_error(client.get(f"{S}/files/{file_id}/thumbnail"), 401, "authentication_required")


def test_public_services(client: Client) -> None:
    services = client.get("/v1/public/services").get_json()
    local = next(s for s in services["objects"] if s["id"] == "local")
    assert local["friendly_name"] == "Local" and "storage" in local["apis"]


def test_multi_account_lists(
    client: Client,
    app: ServerApp,
    creds: Credentials,
    auth: dict[str, str],
    api_key_auth: dict[str, str],
) -> None:
    other = app.store.create_account(creds.app_id, "local", "other")
    other_token = app.store.create_token(creds.app_id, other)
    other_auth = {"Authorization": f"Bearer {other_token}"}
    upload(client, auth, "report-a.txt", b"a")
    upload(client, other_auth, "report-b.txt", b"b")
    both = f"{creds.account_id},{other}"
    multi = {"Authorization": f"Bearer {creds.token},{other_token}"}
    for headers in (multi, api_key_auth):
        found = client.get(
            f"/v1/accounts/{both}/storage/search", headers=headers, query_string={"q": "report"}
        ).get_json()
        assert sorted((o["name"], o["account"]) for o in found["objects"]) == [
            ("report-a.txt", creds.account_id),
            ("report-b.txt", other),
        ]
        events = client.get(f"/v1/accounts/{both}/events", headers=headers).get_json()
        assert {e["account"] for e in events["objects"]} == {creds.account_id, other}
        recent = client.get(f"/v1/accounts/{both}/storage/recent", headers=headers).get_json()
        assert recent["total"] == 2
    listed = client.get("/v1/accounts", headers=multi).get_json()
    assert sorted(a["id"] for a in listed["objects"]) == sorted([creds.account_id, other])
    # a single token does not reach the other account through a list
    assert_error(client.get(f"/v1/accounts/{both}/events", headers=auth), 404, "not_found")
    assert_error(
        client.get(f"/v1/accounts/{both}", headers=api_key_auth), 400, "invalid_parameters"
    )
    assert_error(
        client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {creds.token},nope"}),
        401,
        "invalid_token",
    )
