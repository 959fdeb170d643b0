"""A multipart part is received straight into its place in the session file.

Over real HTTP (waitress, :mod:`kloudless.server.serving`), the app's preflight gives the first
upload of a part of a local session (known size, the exact length) its place in
``multipart/<id>/data``: the HTTP server writes the body there as it arrives, instead of
spooling it into ``tmp/body-*`` to copy it there afterwards; the handler only syncs and
records it. Parts sent again, or of another length, are
spooled as before. A write that fails on a full disk is a JSON 507.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from kloudless.server import spool
from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings

MIB = 1024 * 1024
#: Above waitress's in-memory body buffer (512 KiB): such a body would be spooled to a file.
PART = MIB + MIB // 2
# The file store's multipart layout (multipart/<id>/data): on sqlite-files only, as the module's
# own server below is (S3 sessions are S3 multipart uploads: tests/s3/test_s3_blobs.py).


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    data_dir = tmp_path_factory.mktemp("parts-in-place")
    settings = Settings(data_dir=str(data_dir), port=0, multipart_part_size=PART)
    thread = ServerThread(settings).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """:returns: the paths of the request bodies the HTTP server spools from now on."""
    made: list[str] = []
    create = spool.SpooledBody.create.__func__  # type: ignore[attr-defined]

    def counting(
        cls: type[spool.SpooledBody], directory: str, hashed: bool = False
    ) -> spool.SpooledBody:
        body: spool.SpooledBody = create(cls, directory, hashed)
        made.append(body.path)
        return body

    monkeypatch.setattr(spool.SpooledBody, "create", classmethod(counting))
    return made


def _auth(server: ServerThread) -> dict[str, str]:
    assert server.credentials is not None
    return {"Authorization": f"Bearer {server.credentials.token}"}


def _session(server: ServerThread, size: int, name: str) -> str:
    answer = requests.post(
        f"{server.base_url}/v1/accounts/me/storage/multipart",
        json={"name": name, "parent_id": "root", "size": size},
        headers=_auth(server),
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["part_size"] == PART
    return str(answer.json()["id"])


def _put(server: ServerThread, session: str, number: int, data: bytes) -> Any:
    return requests.put(
        f"{server.base_url}/v1/accounts/me/storage/multipart/{session}",
        params={"part_number": number},
        data=data,
        headers=_auth(server),
        timeout=60,
    )


def _complete(server: ServerThread, session: str) -> bytes:
    done = requests.post(
        f"{server.base_url}/v1/accounts/me/storage/multipart/{session}/complete",
        headers=_auth(server),
        timeout=60,
    )
    assert done.status_code == 201, done.text
    contents = requests.get(
        f"{server.base_url}/v1/accounts/me/storage/files/{done.json()['id']}/contents",
        headers=_auth(server),
        timeout=60,
    )
    assert contents.status_code == 200
    return contents.content


def test_first_parts_are_written_in_place_as_they_arrive(
    server: ServerThread, spooled: list[str]
) -> None:
    data = os.urandom(2 * PART + 1000)
    session = _session(server, len(data), "in-place.bin")
    for number in (3, 1, 2):
        part = data[(number - 1) * PART : number * PART]
        answer = _put(server, session, number, part)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"part_number": number, "size": len(part)}
    assert spooled == []  # no body went through a spool file
    assert _complete(server, session) == data


def test_a_part_sent_again_is_spooled_and_replaces_the_first(
    server: ServerThread, spooled: list[str]
) -> None:
    first, second = os.urandom(PART), os.urandom(PART)
    session = _session(server, 2 * PART, "again.bin")
    assert _put(server, session, 1, first).status_code == 200
    assert _put(server, session, 2, first).status_code == 200
    assert spooled == []
    assert _put(server, session, 2, second).status_code == 200
    assert len(spooled) == 1  # the known part goes the careful way (row deleted first)
    assert _complete(server, session) == first + second


def test_a_part_of_another_length_is_refused_without_being_placed(
    server: ServerThread, spooled: list[str]
) -> None:
    session = _session(server, 2 * PART, "short.bin")
    answer = _put(server, session, 1, os.urandom(PART - 1))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "invalid_parameters"
    assert len(spooled) == 1  # not given a place: spooled, then refused
    data_file = os.path.join(server.app.settings.data_dir, "multipart", session, "data")
    assert not os.path.exists(data_file) or os.path.getsize(data_file) == 0


def test_a_full_disk_while_a_part_arrives_is_a_json_507(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = _session(server, PART, "full.bin")

    def full(self: spool.InPlaceBody, data: bytes) -> None:
        self.error = OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool.InPlaceBody, "write", full)
    answer = _put(server, session, 1, os.urandom(PART))
    assert answer.status_code == 507, answer.text
    body = answer.json()
    assert body["error_code"] == "insufficient_storage"
    assert set(body) >= {"status_code", "error_code", "message", "id"}
    monkeypatch.undo()
    # Nothing was recorded: the part can be sent again, in place.
    data = os.urandom(PART)
    assert _put(server, session, 1, data).status_code == 200
    assert _complete(server, session) == data
