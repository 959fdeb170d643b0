"""Kloudless v1 answers on a ``webdav`` account (WsgiDAV): raw ids are paths, ``recent?after=``
at whole-second resolution (ties listed), multipart without a size."""

from __future__ import annotations

import os

from werkzeug.test import Client

from .conftest import error
from .servers import DavServer
from .test_webdav_backend import S, mkdir, upload


def test_raw_id_is_the_path_and_converts_back(api: Client, webdav_auth: dict[str, str]) -> None:
    folder = mkdir(api, webdav_auth, "docs").get_json()
    made = upload(api, webdav_auth, "r.txt", b"1", parent=folder["id"]).get_json()
    assert (folder["raw_id"], made["raw_id"]) == ("/docs", "/docs/r.txt")
    converted = api.post(
        f"{S}/convert_id", headers=webdav_auth, json={"raw_id": "/docs/r.txt", "type": "file"}
    )
    assert converted.get_json() == {"id": made["id"], "type": "file"}
    encoded = api.post(
        "/v1/accounts/me/encode_raw_id", headers=webdav_auth, json={"raw_id": "docs"}
    )
    assert encoded.get_json() == {"id": folder["id"]}
    for raw_id in ("/docs/missing.txt", "/../../etc/passwd"):
        missing = api.post(
            "/v1/accounts/me/encode_raw_id", headers=webdav_auth, json={"raw_id": raw_id}
        )
        error(missing, 404, "not_found")


def test_recent_lists_ties_at_whole_seconds(
    api: Client, webdav_auth: dict[str, str], webdav_folder: DavServer
) -> None:
    upload(api, webdav_auth, "tie.txt", b"t")
    os.utime(webdav_folder.data_dir / "tie.txt", (1_800_000_000.0, 1_800_000_000.0))
    listed = api.get(f"{S}/recent", headers=webdav_auth).get_json()["objects"]
    assert listed[0]["modified"] == "2027-01-15T08:00:00Z"
    for after in (
        "2027-01-15T08:00:00Z",  # the same second: listed (a tie)
        "2027-01-15T08:00:00.900+00:00",  # later within the second: the file may be newer
        "2027-01-15 07:59:59.999999+00:00",
    ):
        got = api.get(f"{S}/recent", headers=webdav_auth, query_string={"after": after})
        assert [o["name"] for o in got.get_json()["objects"]] == ["tie.txt"], after
    later = api.get(
        f"{S}/recent", headers=webdav_auth, query_string={"after": "2027-01-15T08:00:01Z"}
    )
    assert later.get_json()["objects"] == []


def test_multipart_without_size(api: Client, webdav_auth: dict[str, str]) -> None:
    session = api.post(f"{S}/multipart", headers=webdav_auth, json={"name": "m.bin"}).get_json()
    assert isinstance(session["id"], int) and session["size"] is None
    url = f"{S}/multipart/{session['id']}"
    for number, data in ((1, b"abcd"), (2, b"ef")):
        api.put(url, headers=webdav_auth, data=data, query_string={"part_number": number})
    done = api.post(f"{url}/complete", headers=webdav_auth)
    assert done.status_code == 201, done.get_data(as_text=True)
    assert done.get_json()["size"] == 6 and done.get_json()["raw_id"] == "/m.bin"
