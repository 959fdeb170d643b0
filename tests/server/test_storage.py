"""Storage endpoints: folders, files, contents/ranges, search, recent, quota, copy, async."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import pytest
from werkzeug.test import Client

from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials
from kloudless.server.diskspace import RESERVE_FILE

from .conftest import BLOB_SIZE, BufferedClient, assert_error, mkdir, upload

S = "/v1/accounts/me/storage"


def test_root_folder(client: Client, auth: dict[str, str], creds: Credentials) -> None:
    data = client.get(f"{S}/folders/root", headers=auth).get_json()
    assert data["id"] == "root" and data["type"] == "folder" and data["api"] == "storage"
    assert data["href"] == f"http://localhost/v1/accounts/{creds.account_id}/storage/folders/root"


def test_upload_get_download(client: Client, auth: dict[str, str], creds: Credentials) -> None:
    response = upload(client, auth, "hello.txt", b"hello world")
    assert response.status_code == 201
    data = response.get_json()
    assert data["name"] == "hello.txt" and data["size"] == 11 and data["type"] == "file"
    assert data["mime_type"] == "text/plain" and data["parent"]["id"] == "root"
    assert data["account"] == creds.account_id and data["path"] == "/hello.txt"
    assert data["href"].endswith(f"/storage/files/{data['id']}")
    assert "raw" not in data
    got = client.get(f"{S}/files/{data['id']}", headers=auth).get_json()
    assert got == data
    contents = client.get(f"{S}/files/{data['id']}/contents", headers=auth)
    assert contents.status_code == 200 and contents.data == b"hello world"
    assert contents.headers["Content-Length"] == "11"
    assert contents.headers["Accept-Ranges"] == "bytes"
    assert contents.headers["ETag"]


def test_ranges(client: Client, auth: dict[str, str]) -> None:
    file_id = upload(client, auth, "r.bin", bytes(range(100))).get_json()["id"]
    url = f"{S}/files/{file_id}/contents"
    part = client.get(url, headers=dict(auth, Range="bytes=10-19"))
    assert part.status_code == 206 and part.data == bytes(range(10, 20))
    assert part.headers["Content-Range"] == "bytes 10-19/100"
    tail = client.get(url, headers=dict(auth, Range="bytes=-5"))
    assert tail.status_code == 206 and tail.data == bytes(range(95, 100))
    bad = client.get(url, headers=dict(auth, Range="bytes=200-300"))
    assert_error(bad, 416, "invalid_range")


def test_raw_data(client: Client, auth: dict[str, str]) -> None:
    headers = dict(auth, **{"X-Kloudless-Raw-Data": "true"})
    file_id = upload(client, auth, "a.txt", b"x").get_json()["id"]
    data = client.get(f"{S}/files/{file_id}", headers=headers).get_json()
    assert data["raw"]["id"] == file_id and data["raw"]["kind"] == "file"
    assert "blob" not in data["raw"]


def test_upload_missing_or_bad_metadata(client: Client, auth: dict[str, str]) -> None:
    assert_error(client.post(f"{S}/files", headers=auth, data=b"x"), 400, "invalid_parameters")
    bad = dict(auth, **{"X-Kloudless-Metadata": "{nope"})
    assert_error(client.post(f"{S}/files", headers=bad, data=b"x"), 400, "bad_request")
    big = dict(auth, **{"X-Kloudless-Metadata": json.dumps({"name": "a" * 9000})})
    assert_error(client.post(f"{S}/files", headers=big, data=b"x"), 431, "request_header_too_large")
    no_parent = dict(
        auth, **{"X-Kloudless-Metadata": json.dumps({"name": "a", "parent_id": "folder_x"})}
    )
    assert_error(
        client.post(f"{S}/files", headers=no_parent, data=b"x"), 400, "invalid_parent_folder"
    )


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "a\x00b", "a\nb", "é" * 200, 5])
def test_bad_names(client: Client, auth: dict[str, str], name: Any) -> None:
    assert_error(upload(client, auth, name, b"x"), 400, "invalid_parameters")
    assert_error(mkdir(client, auth, name), 400, "invalid_parameters")


def test_upload_unicode_name(client: Client, auth: dict[str, str]) -> None:
    data = upload(client, auth, "résumé ☃.txt", b"x").get_json()
    assert data["name"] == "résumé ☃.txt"


def test_overwrite_false_renames_true_replaces(client: Client, auth: dict[str, str]) -> None:
    first = upload(client, auth, "a.txt", b"one").get_json()
    second = upload(client, auth, "a.txt", b"two").get_json()
    assert second["name"] == "a (1).txt" and second["id"] != first["id"]
    third = upload(client, auth, "a.txt", b"three", overwrite="true").get_json()
    assert third["id"] == first["id"] and third["size"] == 5
    assert client.get(f"{S}/files/{first['id']}/contents", headers=auth).data == b"three"


def test_upload_limit(make_settings: Callable[..., Any]) -> None:
    from kloudless.server import create_app
    from kloudless.server.bootstrap import bootstrap

    app = create_app(make_settings(max_upload_bytes=10))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        client = BufferedClient(app)
        auth = {"Authorization": f"Bearer {creds.token}"}
        assert_error(upload(client, auth, "big", b"x" * 11), 413, "request_too_large")
        assert upload(client, auth, "ok", b"x" * 10).status_code == 201
        listing = client.get(f"{S}/folders/root/contents", headers=auth).get_json()
        assert [o["name"] for o in listing["objects"]] == ["ok"]
        assert os.listdir(os.path.join(app.settings.data_dir, "accounts", "1", "tmp")) == []
    finally:
        app.close()


def test_put_new_contents(client: Client, auth: dict[str, str]) -> None:
    file_id = upload(client, auth, "a.txt", b"old").get_json()["id"]
    response = client.put(f"{S}/files/{file_id}", headers=auth, data=b"newer")
    assert response.status_code == 200 and response.get_json()["size"] == 5
    assert client.get(f"{S}/files/{file_id}/contents", headers=auth).data == b"newer"


def test_folders_create_conflict_and_contents(client: Client, auth: dict[str, str]) -> None:
    created = mkdir(client, auth, "docs")
    assert created.status_code == 201
    folder = created.get_json()
    again = mkdir(client, auth, "docs")
    assert again.status_code == 200 and again.get_json()["id"] == folder["id"]
    conflict = assert_error(
        mkdir(client, auth, "docs", conflict_if_exists="true"), 409, "naming_conflict"
    )
    assert conflict["conflicting_resource_id"] == folder["id"]
    assert_error(mkdir(client, auth, "x", parent="folder_nope"), 400, "invalid_parent_folder")
    upload(client, auth, "f.txt", b"1", parent=folder["id"])
    sub = mkdir(client, auth, "sub", parent=folder["id"]).get_json()
    upload(client, auth, "deep.txt", b"2", parent=sub["id"])
    contents = client.get(f"{S}/folders/{folder['id']}/contents", headers=auth).get_json()
    assert contents["type"] == "object_list" and contents["next_page"] is None
    assert [o["name"] for o in contents["objects"]] == ["sub", "f.txt"]
    rec = client.get(
        f"{S}/folders/{folder['id']}/contents", headers=auth, query_string={"recursive": "true"}
    ).get_json()
    assert sorted(o["name"] for o in rec["objects"]) == ["deep.txt", "f.txt", "sub"]
    deep = next(o for o in rec["objects"] if o["name"] == "deep.txt")
    assert deep["path"] == "/docs/sub/deep.txt"
    assert [a["id"] for a in deep["ancestors"]] == ["root", folder["id"], sub["id"]]


def test_paging(client: Client, auth: dict[str, str]) -> None:
    for i in range(5):
        upload(client, auth, f"f{i}.txt", b"x")
    url = f"{S}/folders/root/contents"
    first = client.get(url, headers=auth, query_string={"page_size": 2}).get_json()
    assert first["count"] == 2 and first["page"] == 1 and first["next_page"] == 2
    last = client.get(url, headers=auth, query_string={"page_size": 2, "page": 3}).get_json()
    assert last["count"] == 1 and last["next_page"] is None
    assert_error(
        client.get(url, headers=auth, query_string={"page_size": 2, "page": 4}), 404, "not_found"
    )
    for bad in ({"page_size": 1001}, {"page": 0}, {"page": "x"}, {"page_size": 0}):
        assert_error(client.get(url, headers=auth, query_string=bad), 400, "invalid_parameters")
    assert client.get(url, headers=auth, query_string={"page_size": 1000}).status_code == 200


def test_rename_move_and_ids_stable(client: Client, auth: dict[str, str]) -> None:
    folder = mkdir(client, auth, "dest").get_json()
    file_id = upload(client, auth, "a.txt", b"abc").get_json()["id"]
    renamed = client.patch(f"{S}/files/{file_id}", headers=auth, json={"name": "b.txt"})
    assert renamed.get_json()["name"] == "b.txt" and renamed.get_json()["id"] == file_id
    moved = client.patch(f"{S}/files/{file_id}", headers=auth, json={"parent_id": folder["id"]})
    assert moved.get_json()["parent"]["id"] == folder["id"]
    assert client.get(f"{S}/files/{file_id}/contents", headers=auth).data == b"abc"
    upload(client, auth, "c.txt", b"", parent=folder["id"])
    conflict = client.patch(f"{S}/files/{file_id}", headers=auth, json={"name": "c.txt"})
    assert_error(conflict, 409, "naming_conflict")
    assert_error(
        client.patch(f"{S}/files/{file_id}", headers=auth, json={}), 400, "invalid_parameters"
    )
    assert_error(
        client.patch(f"{S}/files/{file_id}", headers=auth, json={"name": "../x"}),
        400,
        "invalid_parameters",
    )


def test_folder_cannot_move_into_itself(client: Client, auth: dict[str, str]) -> None:
    outer = mkdir(client, auth, "outer").get_json()
    inner = mkdir(client, auth, "inner", parent=outer["id"]).get_json()
    for target in (outer["id"], inner["id"]):
        response = client.patch(
            f"{S}/folders/{outer['id']}", headers=auth, json={"parent_id": target}
        )
        assert_error(response, 400, "invalid_parent_folder")


def test_copy_file_and_folder(client: Client, auth: dict[str, str]) -> None:
    folder = mkdir(client, auth, "src").get_json()
    file_id = upload(client, auth, "a.txt", b"data", parent=folder["id"]).get_json()["id"]
    copy = client.post(
        f"{S}/files/{file_id}/copy", headers=auth, json={"parent_id": "root", "name": "copy.txt"}
    )
    assert copy.status_code == 201
    copied = copy.get_json()
    assert copied["id"] != file_id and copied["name"] == "copy.txt"
    assert client.get(f"{S}/files/{copied['id']}/contents", headers=auth).data == b"data"
    folder_copy = client.post(
        f"{S}/folders/{folder['id']}/copy", headers=auth, json={"parent_id": "root"}
    ).get_json()
    assert folder_copy["name"] == "src (1)"
    inside = client.get(f"{S}/folders/{folder_copy['id']}/contents", headers=auth).get_json()
    assert [o["name"] for o in inside["objects"]] == ["a.txt"]
    assert_error(
        client.post(f"{S}/files/{file_id}/copy", headers=auth, json={}), 400, "invalid_parameters"
    )


def test_async_copy_task(client: Client, auth: dict[str, str]) -> None:
    file_id = upload(client, auth, "a.txt", b"data").get_json()["id"]
    headers = dict(auth, **{"X-Kloudless-Async": "true"})
    task = client.post(f"{S}/files/{file_id}/copy", headers=headers, json={"parent_id": "root"})
    assert task.status_code == 202
    body = task.get_json()
    assert body["type"] == "task" and body["state"] == "PENDING"
    result = body
    for _ in range(200):
        result = client.get(f"/v1/accounts/me/tasks/{body['id']}", headers=auth).get_json()
        if result["id"] != body["id"]:
            break
        time.sleep(0.02)
    assert result["type"] == "file" and result["name"] == "a (1).txt"
    assert_error(client.get("/v1/accounts/me/tasks/nope", headers=auth), 404, "not_found")


def test_delete_file_and_folder(client: Client, auth: dict[str, str]) -> None:
    folder = mkdir(client, auth, "f").get_json()
    file_id = upload(client, auth, "a.txt", b"1", parent=folder["id"]).get_json()["id"]
    assert_error(
        client.delete(f"{S}/folders/{folder['id']}", headers=auth), 403, "folder_not_empty"
    )
    response = client.delete(
        f"{S}/folders/{folder['id']}", headers=auth, query_string={"recursive": "true"}
    )
    assert response.status_code == 204 and response.data == b""
    assert_error(client.get(f"{S}/files/{file_id}", headers=auth), 404, "not_found")
    assert_error(client.get(f"{S}/folders/{folder['id']}", headers=auth), 404, "not_found")
    other = upload(client, auth, "b.txt", b"2").get_json()["id"]
    response = client.delete(f"{S}/files/{other}", headers=auth, query_string={"permanent": "true"})
    assert response.status_code == 204
    assert_error(client.get(f"{S}/files/{other}/contents", headers=auth), 404, "not_found")
    assert_error(client.delete(f"{S}/folders/root", headers=auth), 403, "forbidden")


def test_wrong_kind_and_bad_ids(client: Client, auth: dict[str, str]) -> None:
    file_id = upload(client, auth, "a.txt", b"1").get_json()["id"]
    assert_error(client.get(f"{S}/folders/{file_id}", headers=auth), 404, "not_found")
    for bad in ("nope", "file_%2e%2e", "a" * 600, "%00"):
        response = client.get(f"{S}/files/{bad}", headers=auth)
        assert_error(response, 404, "not_found")


def test_cross_account_ids_are_404(
    client: Client, app: ServerApp, creds: Credentials, auth: dict[str, str]
) -> None:
    other = app.store.create_account(creds.app_id, "local", "other")
    other_auth = {"Authorization": f"Bearer {app.store.create_token(creds.app_id, other)}"}
    theirs = upload(client, other_auth, "secret.txt", b"secret").get_json()["id"]
    their_folder = mkdir(client, other_auth, "private").get_json()["id"]
    for url in (
        f"{S}/files/{theirs}",
        f"{S}/files/{theirs}/contents",
        f"{S}/folders/{their_folder}",
        f"{S}/folders/{their_folder}/contents",
    ):
        assert_error(client.get(url, headers=auth), 404, "not_found")
    assert_error(client.delete(f"{S}/files/{theirs}", headers=auth), 404, "not_found")
    assert_error(
        client.patch(f"{S}/files/{theirs}", headers=auth, json={"name": "x"}), 404, "not_found"
    )
    assert_error(client.put(f"{S}/files/{theirs}", headers=auth, data=b"x"), 404, "not_found")
    assert_error(upload(client, auth, "x", b"x", parent=their_folder), 400, "invalid_parent_folder")
    mine = upload(client, auth, "mine.txt", b"m").get_json()["id"]
    moved = client.patch(f"{S}/files/{mine}", headers=auth, json={"parent_id": their_folder})
    assert_error(moved, 400, "invalid_parent_folder")
    assert client.get(f"{S}/files/{theirs}/contents", headers=other_auth).data == b"secret"


def test_search(client: Client, auth: dict[str, str]) -> None:
    folder = mkdir(client, auth, "Reports").get_json()
    upload(client, auth, "report-2020.txt", b"1", parent=folder["id"])
    upload(client, auth, "REPORT-top.txt", b"1")
    upload(client, auth, "other.txt", b"1")
    found = client.get(f"{S}/search", headers=auth, query_string={"q": "report"}).get_json()
    assert sorted(o["name"] for o in found["objects"]) == [
        "REPORT-top.txt",
        "Reports",
        "report-2020.txt",
    ]
    scoped = client.get(
        f"{S}/search", headers=auth, query_string={"q": "report", "parents": folder["id"]}
    ).get_json()
    assert [o["name"] for o in scoped["objects"]] == ["report-2020.txt"]
    none = client.get(f"{S}/search", headers=auth, query_string={"q": "zzz"}).get_json()
    assert none["objects"] == [] and none["next_page"] is None
    assert_error(
        client.get(f"{S}/search", headers=auth, query_string={"q": ""}), 400, "invalid_parameters"
    )


def test_recent_and_quota(client: Client, auth: dict[str, str]) -> None:
    upload(client, auth, "a.txt", b"12345")
    time.sleep(0.01)
    upload(client, auth, "b.txt", b"123")
    recent = client.get(f"{S}/recent", headers=auth).get_json()
    assert [o["name"] for o in recent["objects"]] == ["b.txt", "a.txt"]
    assert recent["total"] == 2
    after = client.get(
        f"{S}/recent", headers=auth, query_string={"after": "2999-01-01T00:00:00Z"}
    ).get_json()
    assert after["objects"] == []
    invalid = client.get(f"{S}/recent", headers=auth, query_string={"after": "garbage"})
    assert invalid.get_json()["objects"] == []
    assert_error(
        client.get(f"{S}/recent", headers=auth, query_string={"page_size": 1001}),
        400,
        "invalid_parameters",
    )
    quota = client.get(f"{S}/quota", headers=auth).get_json()
    assert quota["used"] == 8 and quota["type"] == "quota" and quota["api"] == "storage"


def test_upload_from_an_unresolvable_url(client: Client, auth: dict[str, str]) -> None:
    response = client.post(f"{S}/files", headers=auth, json={"url": "http://host.invalid/x"})
    assert "cannot be fetched" in assert_error(response, 400, "invalid_parameters")["message"]


def test_nothing_outside_account_dir(client: Client, app: ServerApp, auth: dict[str, str]) -> None:
    upload(client, auth, "..%2f..%2fescape", b"x")
    mkdir(client, auth, "sub")
    data_dir = app.settings.data_dir
    for root, _dirs, files in os.walk(data_dir):
        for name in files:
            path = os.path.join(root, name)
            assert (
                path.startswith(os.path.join(data_dir, "accounts"))
                or name.startswith("kloudless.sqlite3")
                or name == RESERVE_FILE  # the disk reserve (diskspace.py)
            )
            assert "escape" not in name


@pytest.mark.only_config("sqlite-files", reason="a symlink planted in the data dir's blobs")
def test_symlinked_blob_refused(
    client: Client, app: ServerApp, auth: dict[str, str], tmp_path: Any
) -> None:
    # Blob-sized: small files keep their bytes in the database.
    file_id = upload(client, auth, "a.txt", b"inside" * BLOB_SIZE).get_json()["id"]
    row = app.store.one("SELECT blob FROM objects WHERE id = ?", (file_id,))
    assert row is not None
    blob = os.path.join(app.settings.data_dir, "accounts", "1", "blobs", row["blob"])
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"outside secret")
    os.unlink(blob)
    os.symlink(outside, blob)
    response = client.get(f"{S}/files/{file_id}/contents", headers=auth)
    assert response.status_code >= 400
    assert b"outside secret" not in response.data
