"""Multipart parts are written in place in one session file, and ``complete`` adopts that file.

Every byte of a multipart upload is written once: each part at its offset of
``multipart/<id>/data`` (no file per part), and the new file of a ``local`` account is that
same file (the same inode, hard-linked into the account, no copy). A part being rewritten is
missing until its new bytes are durable; sessions begun with one file per part (older versions)
keep that layout; without hard links the bytes are copied.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Callable

import pytest
from werkzeug.test import Client

from kloudless.server import Settings
from kloudless.server.app import ServerApp
from kloudless.server.connectors.local_storage import settle_all

from .conftest import assert_error

S = "/v1/accounts/me/storage"
#: In-place parts are the file store's layout; S3 sessions are S3 multipart uploads
#: (tests/s3/test_s3_blobs.py). The database does not matter here.
pytestmark = pytest.mark.only_config("sqlite-files", reason="the data dir's multipart layout")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Every file in the blob store (a completed session's file is a blob; without hard links
    its bytes are copied, which a file this small would do into the database by default)."""
    return make_settings(multipart_part_size=4, inline_file_bytes=0)


def _init(client: Client, auth: dict[str, str], size: int | None, name: str = "f.bin") -> Any:
    body: dict[str, Any] = {"name": name, "parent_id": "root"}
    if size is not None:
        body["size"] = size
    response = client.post(f"{S}/multipart", headers=auth, json=body)
    assert response.status_code == 201, response.data
    return response.get_json()


def _put(client: Client, auth: dict[str, str], url: str, number: int, data: bytes) -> Any:
    return client.put(url, headers=auth, data=data, query_string={"part_number": number})


def _session_dir(settings: Settings, session: Any) -> str:
    return os.path.join(settings.data_dir, "multipart", str(session["id"]))


def _blob_path(app: ServerApp, settings: Settings, file_id: str) -> str:
    row = app.store.one("SELECT account_id, blob FROM objects WHERE id = ?", (file_id,))
    assert row is not None
    return os.path.join(
        settings.data_dir, "accounts", str(row["account_id"]), "blobs", str(row["blob"])
    )


def test_parts_land_in_one_file_and_complete_adopts_it(
    app: ServerApp, client: Client, auth: dict[str, str], settings: Settings
) -> None:
    data = b"abcdefghij"  # part_size 4 in tests: parts of 4, 4, 2
    session = _init(client, auth, len(data))
    url = f"{S}/multipart/{session['id']}"
    for number in (3, 1, 2):
        assert (
            _put(client, auth, url, number, data[(number - 1) * 4 : number * 4]).status_code == 200
        )
    folder = _session_dir(settings, session)
    assert os.listdir(folder) == ["data"]  # no file per part, no temp files left
    with open(os.path.join(folder, "data"), "rb") as fh:
        assert fh.read() == data
    inode = os.stat(os.path.join(folder, "data")).st_ino
    done = client.post(f"{url}/complete", headers=auth)
    assert done.status_code == 201, done.data
    file_id = done.get_json()["id"]
    assert client.get(f"{S}/files/{file_id}/contents", headers=auth).data == data
    settle_all(app.store, settings.data_dir)
    blob = _blob_path(app, settings, file_id)
    assert os.stat(blob).st_ino == inode  # the parts' file itself: no byte copied
    assert os.stat(blob).st_nlink == 1  # the session's name for it is gone
    assert not os.path.exists(folder)
    etag = done.get_json()
    assert client.get(f"{S}/files/{file_id}", headers=auth).get_json() == etag


def test_a_part_sent_again_replaces_its_bytes(client: Client, auth: dict[str, str]) -> None:
    session = _init(client, auth, 10)
    url = f"{S}/multipart/{session['id']}"
    for number, chunk in ((1, b"abcd"), (2, b"efgh"), (3, b"ij"), (2, b"EFGH")):
        assert _put(client, auth, url, number, chunk).status_code == 200
    done = client.post(f"{url}/complete", headers=auth).get_json()
    assert client.get(f"{S}/files/{done['id']}/contents", headers=auth).data == b"abcdEFGHij"


def test_a_failed_rewrite_leaves_the_part_missing(
    client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = _init(client, auth, 10)
    url = f"{S}/multipart/{session['id']}"
    for number, chunk in ((1, b"abcd"), (2, b"efgh"), (3, b"ij")):
        _put(client, auth, url, number, chunk)
    # A body of the wrong length is refused before anything is written: the part stays.
    assert_error(_put(client, auth, url, 2, b"EFGHXYZ"), 400, "invalid_parameters")
    assert len(client.get(url, headers=auth).get_json()["parts"]) == 3
    # New bytes written over the part's range that cannot be made durable: the part is gone.
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    real_fdatasync = os.fdatasync
    monkeypatch.setattr(os, "fsync", failing_fsync)
    monkeypatch.setattr(os, "fdatasync", failing_fsync)
    failed = _put(client, auth, url, 2, b"EFGH")
    monkeypatch.setattr(os, "fsync", real_fsync)
    monkeypatch.setattr(os, "fdatasync", real_fdatasync)
    assert failed.status_code == 500
    parts = client.get(url, headers=auth).get_json()["parts"]
    assert [p["part_number"] for p in parts] == [1, 3]
    refused = assert_error(client.post(f"{url}/complete", headers=auth), 400, "invalid_parameters")
    assert "missing parts 2" in refused["message"]
    assert _put(client, auth, url, 2, b"EFGH").status_code == 200
    done = client.post(f"{url}/complete", headers=auth).get_json()
    assert client.get(f"{S}/files/{done['id']}/contents", headers=auth).data == b"abcdEFGHij"


def test_a_session_without_a_size(client: Client, auth: dict[str, str]) -> None:
    session = _init(client, auth, None)
    url = f"{S}/multipart/{session['id']}"
    for number, chunk in ((2, b"efgh"), (1, b"abcd"), (3, b"i")):
        assert _put(client, auth, url, number, chunk).status_code == 200
    done = client.post(f"{url}/complete", headers=auth)
    assert done.status_code == 201, done.data
    assert done.get_json()["size"] == 9
    assert client.get(f"{S}/files/{done.get_json()['id']}/contents", headers=auth).data == (
        b"abcdefghi"
    )


def test_an_empty_upload(client: Client, auth: dict[str, str]) -> None:
    session = _init(client, auth, 0)
    url = f"{S}/multipart/{session['id']}"
    assert _put(client, auth, url, 1, b"").status_code == 200  # one part, of no bytes
    done = client.post(f"{url}/complete", headers=auth)
    assert done.status_code == 201, done.data
    assert client.get(f"{S}/files/{done.get_json()['id']}/contents", headers=auth).data == b""


def test_a_session_with_one_file_per_part_keeps_that_layout(
    app: ServerApp, client: Client, auth: dict[str, str], settings: Settings
) -> None:
    session = _init(client, auth, 6)
    url = f"{S}/multipart/{session['id']}"
    # Part 1 as an older version stored it: its own file, and its row.
    folder = _session_dir(settings, session)
    with open(os.path.join(folder, "1"), "wb") as fh:
        fh.write(b"abcd")
    app.store.execute(
        "INSERT INTO multipart_parts (session_id, part_number, size) VALUES (?, 1, 4)",
        (str(session["id"]),),
    )
    assert _put(client, auth, url, 2, b"ef").status_code == 200
    assert sorted(os.listdir(folder)) == ["1", "2"]
    done = client.post(f"{url}/complete", headers=auth).get_json()
    assert client.get(f"{S}/files/{done['id']}/contents", headers=auth).data == b"abcdef"


def test_without_hard_links_the_bytes_are_copied(
    app: ServerApp,
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = _init(client, auth, 6)
    url = f"{S}/multipart/{session['id']}"
    _put(client, auth, url, 1, b"abcd")
    _put(client, auth, url, 2, b"ef")
    inode = os.stat(os.path.join(_session_dir(settings, session), "data")).st_ino

    def no_link(source: str, target: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    done = client.post(f"{url}/complete", headers=auth)
    assert done.status_code == 201, done.data
    file_id = done.get_json()["id"]
    assert client.get(f"{S}/files/{file_id}/contents", headers=auth).data == b"abcdef"
    settle_all(app.store, settings.data_dir)
    assert os.stat(_blob_path(app, settings, file_id)).st_ino != inode


def test_a_refused_complete_keeps_the_session_and_its_file(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    folder = client.post(f"{S}/folders", headers=auth, json={"name": "f.bin", "parent_id": "root"})
    assert folder.status_code == 201
    created = client.post(
        f"{S}/multipart",
        headers=auth,
        json={"name": "f.bin", "parent_id": "root", "size": 4},
        query_string={"overwrite": "true"},
    )
    session = created.get_json()
    url = f"{S}/multipart/{session['id']}"
    _put(client, auth, url, 1, b"abcd")
    session_file = os.path.join(_session_dir(settings, session), "data")
    # A file cannot overwrite a folder: refused after the session's file was linked.
    assert_error(client.post(f"{url}/complete", headers=auth), 409, "naming_conflict")
    with open(session_file, "rb") as fh:
        assert fh.read() == b"abcd"
    assert client.get(url, headers=auth).get_json()["parts"] == [{"part_number": 1, "size": 4}]
    folder_id = folder.get_json()["id"]
    assert client.delete(f"{S}/folders/{folder_id}", headers=auth).status_code == 204
    done = client.post(f"{url}/complete", headers=auth)
    assert done.status_code == 201, done.data
    assert client.get(f"{S}/files/{done.get_json()['id']}/contents", headers=auth).data == b"abcd"
