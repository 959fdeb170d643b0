"""The storage API on a ``local`` and a ``webdav`` account (WsgiDAV), through the test client."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from kloudless.server.connectors import webdav, webdav_client
from kloudless.server.connectors.webdav_auth import seal, unseal

from .conftest import connect_account, error
from .servers import LOOPBACK_POLICY, DavServer

S = "/v1/accounts/me/storage"


def upload(
    api: Client, auth: dict[str, str], name: str, data: bytes, parent: str = "root", **query: str
) -> TestResponse:
    headers = dict(
        auth, **{"X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": parent})}
    )
    return api.post(f"{S}/files", headers=headers, data=data, query_string=query)


def mkdir(
    api: Client, auth: dict[str, str], name: str, parent: str = "root", **query: str
) -> TestResponse:
    return api.post(
        f"{S}/folders", headers=auth, json={"name": name, "parent_id": parent}, query_string=query
    )


def fetch(api: Client, url: str, headers: dict[str, str]) -> TestResponse:
    """GET a download and close it (the body stays readable)."""
    response = api.get(url, headers=headers)
    response.get_data()
    response.close()
    return response


def names(api: Client, auth: dict[str, str], folder: str = "root") -> list[str]:
    listing = api.get(f"{S}/folders/{folder}/contents", headers=auth).get_json()
    return [o["name"] for o in listing["objects"]]


# -- the same storage flows on both services ----------------------------------------------------


def test_upload_get_download_ranges(api: Client, storage_auth: dict[str, str]) -> None:
    data = bytes(range(256)) * 40
    created = upload(api, storage_auth, "ü b.bin", data)
    assert created.status_code == 201, created.get_data(as_text=True)
    meta = created.get_json()
    assert meta["name"] == "ü b.bin" and meta["size"] == len(data) and meta["type"] == "file"
    assert meta["parent"]["id"] == "root" and meta["path"] == "/ü b.bin"
    got = api.get(f"{S}/files/{meta['id']}", headers=storage_auth).get_json()
    assert got["id"] == meta["id"] and got["size"] == len(data)
    full = fetch(api, f"{S}/files/{meta['id']}/contents", storage_auth)
    assert full.status_code == 200 and full.data == data
    part = fetch(api, f"{S}/files/{meta['id']}/contents", dict(storage_auth, Range="bytes=100-199"))
    assert part.status_code == 206 and part.data == data[100:200]
    tail = fetch(api, f"{S}/files/{meta['id']}/contents", dict(storage_auth, Range="bytes=-7"))
    assert tail.status_code == 206 and tail.data == data[-7:]
    bad = fetch(api, f"{S}/files/{meta['id']}/contents", dict(storage_auth, Range="bytes=99999-"))
    assert bad.status_code == 416


def test_overwrite_and_put(api: Client, storage_auth: dict[str, str]) -> None:
    first = upload(api, storage_auth, "a.txt", b"one").get_json()
    second = upload(api, storage_auth, "a.txt", b"two").get_json()
    assert second["name"] == "a (1).txt"
    third = upload(api, storage_auth, "a.txt", b"three", overwrite="true").get_json()
    assert third["name"] == "a.txt"
    assert fetch(api, f"{S}/files/{first['id']}/contents", storage_auth).data == b"three"
    put = api.put(f"{S}/files/{first['id']}", headers=storage_auth, data=b"newer")
    assert put.status_code == 200 and put.get_json()["size"] == 5
    assert fetch(api, f"{S}/files/{first['id']}/contents", storage_auth).data == b"newer"


def test_folders_conflicts_paging(api: Client, storage_auth: dict[str, str]) -> None:
    folder = mkdir(api, storage_auth, "docs")
    assert folder.status_code == 201
    again = mkdir(api, storage_auth, "docs")
    assert again.status_code in (200, 201) and again.get_json()["id"] == folder.get_json()["id"]
    body = error(
        mkdir(api, storage_auth, "docs", conflict_if_exists="true"), 409, "naming_conflict"
    )
    assert body["conflicting_resource_id"] == folder.get_json()["id"]
    error(mkdir(api, storage_auth, "x", parent="folder_bm9wZQ"), 400, "invalid_parent_folder")
    fid = folder.get_json()["id"]
    for i in range(5):
        assert upload(api, storage_auth, f"f{i}.txt", b"x", parent=fid).status_code == 201
    url = f"{S}/folders/{fid}/contents"
    first = api.get(url, headers=storage_auth, query_string={"page_size": 2}).get_json()
    assert first["count"] == 2 and first["next_page"] == 2
    last = api.get(url, headers=storage_auth, query_string={"page_size": 2, "page": 3}).get_json()
    assert last["count"] == 1 and last["next_page"] is None
    nested = mkdir(api, storage_auth, "inner", parent=fid).get_json()
    upload(api, storage_auth, "deep.txt", b"d", parent=nested["id"])
    rec = api.get(
        f"{S}/folders/root/contents", headers=storage_auth, query_string={"recursive": "true"}
    ).get_json()
    assert {"docs", "inner", "deep.txt", "f0.txt"} <= {o["name"] for o in rec["objects"]}


def test_rename_move_copy_delete(api: Client, storage_auth: dict[str, str]) -> None:
    file_id = upload(api, storage_auth, "a.txt", b"abc").get_json()["id"]
    folder = mkdir(api, storage_auth, "box").get_json()
    renamed = api.patch(f"{S}/files/{file_id}", headers=storage_auth, json={"name": "b.txt"})
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "b.txt"
    new_id = renamed.get_json()["id"]  # path-based services give the new path's id
    moved = api.patch(f"{S}/files/{new_id}", headers=storage_auth, json={"parent_id": folder["id"]})
    assert moved.get_json()["parent"]["id"] == folder["id"]
    moved_id = moved.get_json()["id"]
    assert fetch(api, f"{S}/files/{moved_id}/contents", storage_auth).data == b"abc"
    upload(api, storage_auth, "c.txt", b"c", parent=folder["id"])
    error(
        api.patch(f"{S}/files/{moved_id}", headers=storage_auth, json={"name": "c.txt"}),
        409,
        "naming_conflict",
    )
    copy = api.post(
        f"{S}/files/{moved_id}/copy",
        headers=storage_auth,
        json={"parent_id": folder["id"], "name": "c.txt"},
    )
    assert copy.status_code in (200, 201) and copy.get_json()["name"] == "c (1).txt"
    folder_copy = api.post(
        f"{S}/folders/{folder['id']}/copy",
        headers=storage_auth,
        json={"parent_id": "root", "name": "box2"},
    ).get_json()
    assert sorted(names(api, storage_auth, folder_copy["id"])) == ["b.txt", "c (1).txt", "c.txt"]
    error(
        api.patch(
            f"{S}/folders/{folder['id']}", headers=storage_auth, json={"parent_id": folder["id"]}
        ),
        400,
        "invalid_parent_folder",
    )
    error(api.delete(f"{S}/folders/{folder['id']}", headers=storage_auth), 403, "folder_not_empty")
    gone = api.delete(
        f"{S}/folders/{folder['id']}", headers=storage_auth, query_string={"recursive": "true"}
    )
    assert gone.status_code == 204
    error(api.get(f"{S}/folders/{folder['id']}", headers=storage_auth), 404, "not_found")
    error(api.get(f"{S}/files/{moved_id}", headers=storage_auth), 404, "not_found")


def test_search_recent_quota(api: Client, storage_auth: dict[str, str]) -> None:
    folder = mkdir(api, storage_auth, "reports").get_json()
    upload(api, storage_auth, "Report-2024.txt", b"1", parent=folder["id"])
    upload(api, storage_auth, "other.txt", b"22")
    found = api.get(f"{S}/search", headers=storage_auth, query_string={"q": "report"}).get_json()
    assert {o["name"] for o in found["objects"]} == {"reports", "Report-2024.txt"}
    inside = api.get(
        f"{S}/search", headers=storage_auth, query_string={"q": "txt", "parents": folder["id"]}
    ).get_json()
    assert [o["name"] for o in inside["objects"]] == ["Report-2024.txt"]
    recent = api.get(f"{S}/recent", headers=storage_auth).get_json()
    assert {o["name"] for o in recent["objects"]} == {"Report-2024.txt", "other.txt"}
    quota = api.get(f"{S}/quota", headers=storage_auth)
    assert quota.status_code == 200


def test_multipart_upload(api: Client, storage_auth: dict[str, str]) -> None:
    init = api.post(
        f"{S}/multipart",
        headers=storage_auth,
        json={"name": "big.bin", "parent_id": "root", "size": 10},
    )
    assert init.status_code in (200, 201), init.get_data(as_text=True)
    session = init.get_json()
    part_size = session["part_size"]
    data = b"0123456789"
    chunks = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    for number in reversed(range(1, len(chunks) + 1)):
        put = api.put(
            f"{S}/multipart/{session['id']}",
            headers=storage_auth,
            query_string={"part_number": number},
            data=chunks[number - 1],
        )
        assert put.status_code == 200
    done = api.post(f"{S}/multipart/{session['id']}/complete", headers=storage_auth)
    assert done.status_code == 201, done.get_data(as_text=True)
    file_id = done.get_json()["id"]
    assert fetch(api, f"{S}/files/{file_id}/contents", storage_auth).data == data


# -- webdav specifics ---------------------------------------------------------------------------


def test_account_hides_credentials(
    api: Client, app: Any, creds: Any, webdav_auth: dict[str, str], webdav_folder: DavServer
) -> None:
    listing = api.get("/v1/accounts", headers={"Authorization": f"APIKey {creds.api_key}"})
    text = listing.get_data(as_text=True)
    assert '"webdav"' in text and webdav_folder.password not in text
    me = api.get("/v1/accounts/me", headers=webdav_auth, query_string={"retrieve_full": "true"})
    assert me.get_json()["service"] == "webdav" and "storage" in me.get_json()["apis"]
    assert webdav_folder.password not in me.get_data(as_text=True)


def test_raw_data_is_webdav_properties(api: Client, webdav_auth: dict[str, str]) -> None:
    file_id = upload(api, webdav_auth, "r.txt", b"raw").get_json()["id"]
    got = api.get(
        f"{S}/files/{file_id}", headers=dict(webdav_auth, **{"X-Kloudless-Raw-Data": "true"})
    )
    raw = got.get_json()["raw"]
    assert raw["href"].endswith("/r.txt")
    assert raw["properties"]["{DAV:}getcontentlength"] == "3"
    assert "{DAV:}getetag" in raw["properties"]


def test_ids_are_opaque_and_stable_per_path() -> None:
    fid = webdav.encode_id("/a b/ü.txt", "file")
    assert fid.startswith("file_") and "/" not in fid and "=" not in fid
    assert webdav.decode_id(fid) == ("file", "/a b/ü.txt")
    assert webdav.encode_id("/", "folder") == "root"
    for bad in ("file_", "nope_abc", "file_!!!", "file_Lw", "folder_" + "A" * 600):
        with pytest.raises(Exception) as info:
            webdav.decode_id(bad)
        assert getattr(info.value, "status", None) == 404


def test_upstream_changes_appear_in_events(
    api: Client, webdav_auth: dict[str, str], webdav_folder: DavServer
) -> None:
    upload(api, webdav_auth, "kept.txt", b"k")
    names(api, webdav_auth)  # baseline snapshot of the root folder
    cursor = api.get("/v1/accounts/me/events/latest", headers=webdav_auth).get_json()["cursor"]
    (webdav_folder.data_dir / "direct.txt").write_bytes(b"made upstream")
    kept = webdav_folder.data_dir / "kept.txt"
    kept.write_bytes(b"changed upstream")
    os.utime(kept, (time.time() + 5, time.time() + 5))  # a new getlastmodified/ETag
    assert "direct.txt" in names(api, webdav_auth)
    events = api.get(
        "/v1/accounts/me/events", headers=webdav_auth, query_string={"cursor": cursor}
    ).get_json()
    seen = {(e["type"], e["metadata"]["name"]) for e in events["objects"]}
    assert seen == {("add", "direct.txt"), ("update", "kept.txt")}
    (webdav_folder.data_dir / "direct.txt").unlink()
    names(api, webdav_auth)
    later = api.get(
        "/v1/accounts/me/events", headers=webdav_auth, query_string={"cursor": events["cursor"]}
    ).get_json()
    assert [(e["type"], e["metadata"]["name"]) for e in later["objects"]] == [
        ("delete", "direct.txt")
    ]
    # Changes made through the API are logged once, by the API, not again by the detection.
    upload(api, webdav_auth, "via-api.txt", b"a")
    names(api, webdav_auth)
    last = api.get(
        "/v1/accounts/me/events", headers=webdav_auth, query_string={"cursor": later["cursor"]}
    ).get_json()
    assert [(e["type"], e["metadata"]["name"]) for e in last["objects"]] == [("add", "via-api.txt")]


def test_passthrough(api: Client, webdav_auth: dict[str, str], webdav_folder: DavServer) -> None:
    (webdav_folder.data_dir / "p.txt").write_bytes(b"pass-through")
    raw = dict(
        webdav_auth,
        **{
            "X-Kloudless-Raw-Method": "GET",
            "X-Kloudless-Raw-URI": "/p.txt",
            "X-Kloudless-Raw-Headers": json.dumps({"Range": "bytes=0-3"}),
        },
    )
    got = api.post("/v1/accounts/me/raw", headers=raw)
    assert got.status_code == 206 and got.data == b"pass"
    assert got.headers["Content-Range"].startswith("bytes 0-3/")
    prop = dict(
        webdav_auth,
        **{
            "X-Kloudless-Raw-Method": "PROPFIND",
            "X-Kloudless-Raw-URI": "/",
            "X-Kloudless-Raw-Headers": json.dumps({"Depth": "1"}),
        },
    )
    listing = api.post(
        "/v1/accounts/me/raw",
        headers=prop,
        data=b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>',
        content_type="application/xml",
    )
    assert listing.status_code == 207 and b"p.txt" in listing.data
    put = dict(
        webdav_auth, **{"X-Kloudless-Raw-Method": "PUT", "X-Kloudless-Raw-URI": "new%20file.txt"}
    )
    created = api.post("/v1/accounts/me/raw", headers=put, data=b"uploaded raw")
    assert created.status_code in (201, 204)
    assert (webdav_folder.data_dir / "new file.txt").read_bytes() == b"uploaded raw"
    missing = dict(webdav_auth, **{"X-Kloudless-Raw-Method": "GET", "X-Kloudless-Raw-URI": "/nope"})
    assert api.post("/v1/accounts/me/raw", headers=missing).status_code == 404  # relayed as is
    foreign = dict(
        webdav_auth,
        **{"X-Kloudless-Raw-Method": "GET", "X-Kloudless-Raw-URI": "http://example.invalid/x"},
    )
    error(api.post("/v1/accounts/me/raw", headers=foreign), 400, "invalid_parameters")
    bad_headers = dict(raw, **{"X-Kloudless-Raw-Headers": "[1]"})
    error(api.post("/v1/accounts/me/raw", headers=bad_headers), 400, "invalid_parameters")


def test_passthrough_local_is_not_implemented(api: Client, creds: Any) -> None:
    headers = {
        "Authorization": f"Bearer {creds.token}",
        "X-Kloudless-Raw-Method": "GET",
        "X-Kloudless-Raw-URI": "/",
    }
    error(api.post("/v1/accounts/me/raw", headers=headers), 501, "not_implemented")


# -- connection and upstream errors ---------------------------------------------------------------


def test_connect_wrong_password(api: Client, creds: Any, webdav_folder: DavServer) -> None:
    body = {
        "service": "webdav",
        "account": "x",
        "url": webdav_folder.url,
        "username": webdav_folder.username,
        "password": "wrong-pw",
    }
    response = api.post(
        "/v1/accounts", headers={"Authorization": f"APIKey {creds.api_key}"}, json=body
    )
    err = error(response, 401, "service_unauthorized")
    assert "wrong-pw" not in json.dumps(err)


def test_connect_bad_settings_and_down(api: Client, creds: Any, closed_port_url: str) -> None:
    headers = {"Authorization": f"APIKey {creds.api_key}"}
    for body in (
        {"url": "ftp://h/"},
        {"url": "http://u:p@h/", "username": "u", "password": "p"},
        {"url": "http://127.0.0.1/"},
        {"username": "u", "password": "p"},
    ):
        error(
            api.post(
                "/v1/accounts", headers=headers, json={"service": "webdav", "account": "x", **body}
            ),
            400,
            "invalid_parameters",
        )
    down = {
        "service": "webdav",
        "account": "x",
        "url": closed_port_url,
        "username": "u",
        "password": "p",
    }
    error(api.post("/v1/accounts", headers=headers, json=down), 503, "service_not_available")


def _set_config(app: Any, auth: dict[str, str], **changes: str) -> None:
    token = auth["Authorization"].split()[1]
    account_id = app.store.lookup_token(token)["account_id"]
    row = app.store.get_account(account_id)
    config = json.loads(row["config"])
    config.update(changes)
    config.pop("password_sealed", None) if "password" in changes else None
    app.store.execute(
        "UPDATE accounts SET config = ? WHERE id = ?", (json.dumps(config), account_id)
    )


def test_upstream_password_changed(api: Client, app: Any, webdav_auth: dict[str, str]) -> None:
    _set_config(app, webdav_auth, password="no-longer-valid")
    err = error(
        api.get(f"{S}/folders/root/contents", headers=webdav_auth), 401, "service_unauthorized"
    )
    assert "no-longer-valid" not in err["message"]


def test_upstream_down(
    api: Client, app: Any, webdav_auth: dict[str, str], closed_port_url: str
) -> None:
    _set_config(app, webdav_auth, url=closed_port_url)
    error(api.get(f"{S}/folders/root", headers=webdav_auth), 503, "service_not_available")
    raw = dict(webdav_auth, **{"X-Kloudless-Raw-Method": "GET", "X-Kloudless-Raw-URI": "/"})
    error(api.post("/v1/accounts/me/raw", headers=raw), 503, "service_not_available")


def test_sealed_credentials(api: Client, app: Any, creds: Any, webdav_folder: DavServer) -> None:
    secret = b"server-secret"
    token = seal(secret, "pässword")
    assert "pässword" not in token and unseal(secret, token) == "pässword"
    assert seal(secret, "pässword") != token  # fresh nonce each time
    with pytest.raises(ValueError):
        unseal(b"other-secret", token)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(ValueError):
        unseal(secret, tampered)
    config = webdav.connect(
        {
            "url": webdav_folder.url,
            "username": webdav_folder.username,
            "password": webdav_folder.password,
        },
        app.store.server_secret(),
        LOOPBACK_POLICY,
    )
    assert "password" not in config and webdav_folder.password not in json.dumps(config)
    account_id = app.store.create_account(creds.app_id, "webdav", "sealed", config)
    headers = {"Authorization": f"Bearer {app.store.create_token(creds.app_id, account_id)}"}
    assert upload(api, headers, "s.txt", b"sealed").status_code == 201


def test_other_accounts_cannot_reach_webdav(
    api: Client, creds: Any, webdav_auth: dict[str, str]
) -> None:
    file_id = upload(api, webdav_auth, "mine.txt", b"m").get_json()["id"]
    local = {"Authorization": f"Bearer {creds.token}"}
    error(api.get(f"{S}/files/{file_id}", headers=local), 404, "not_found")


def test_connect_account_helper_is_used(
    api: Client, app: Any, creds: Any, webdav_folder: DavServer
) -> None:
    headers = connect_account(
        api,
        app,
        creds,
        "webdav",
        {
            "domain": webdav_folder.url,
            "username": webdav_folder.username,
            "password": webdav_folder.password,
        },
    )
    assert api.get(f"{S}/folders/root", headers=headers).get_json()["id"] == "root"


def test_upload_limit_and_hidden_temp_files(
    api: Client, app: Any, webdav_auth: dict[str, str], webdav_folder: DavServer
) -> None:
    import io

    from kloudless.server.connectors.webdav_auth import credentials

    token = webdav_auth["Authorization"].split()[1]
    row = app.store.get_account(app.store.lookup_token(token)["account_id"])
    client = webdav_client.client_for(
        *credentials(json.loads(row["config"]), app.store.server_secret()), LOOPBACK_POLICY
    )
    storage = webdav.WebDAVStorage(client, int(row["id"]))
    with pytest.raises(Exception) as info:
        storage.upload("root", "big.bin", io.BytesIO(b"x" * 10), False, 5)
    assert getattr(info.value, "status", None) == 413
    assert list(webdav_folder.data_dir.iterdir()) == []  # nothing reached the upstream
    (webdav_folder.data_dir / f"{webdav.UPLOAD_PREFIX}abc").write_bytes(b"partial")
    assert names(api, webdav_auth) == []


def test_recent_after(api: Client, webdav_auth: dict[str, str], webdav_folder: DavServer) -> None:
    upload(api, webdav_auth, "new.txt", b"n")
    old = webdav_folder.data_dir / "old.txt"
    old.write_bytes(b"o")
    os.utime(old, (1_000_000_000, 1_000_000_000))  # 2001-09-09
    everything = api.get(f"{S}/recent", headers=webdav_auth).get_json()["objects"]
    assert [o["name"] for o in everything] == ["new.txt", "old.txt"]
    since = api.get(
        f"{S}/recent", headers=webdav_auth, query_string={"after": "2010-01-01T00:00:00Z"}
    )
    assert [o["name"] for o in since.get_json()["objects"]] == ["new.txt"]
    bad = api.get(f"{S}/recent", headers=webdav_auth, query_string={"after": "yesterday"})
    assert bad.get_json()["objects"] == []
