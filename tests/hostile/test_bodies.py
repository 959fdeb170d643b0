"""Request bodies: nothing is stored before the headers pass the app's checks, bodies are
spooled into the data dir (never the system temp dir) and adopted there without a copy."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time

import pytest
import requests

from kloudless.server.errors import ApiError
from kloudless.server.idempotency import HashingStream
from kloudless.server.spool import SpooledBody, spool_to_temp

from .conftest import Hostile, assert_json_error, connect, read_response

GIB = 1024**3


@pytest.fixture
def system_temp(tmp_path, monkeypatch) -> str:
    """A private system temp dir for this test (the machine's is shared with other work): the
    in-process server's ``tempfile`` calls land here."""
    path = tmp_path / "system-temp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return str(path)


def spool_files(hostile: Hostile) -> list[str]:
    folder = os.path.join(hostile.thread.app.settings.data_dir, "tmp")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def start_upload(hostile: Hostile, headers: str, sent: int = 256 * 1024) -> tuple:
    """Declare a 1 GiB upload, send ``sent`` bytes of it, then read the answer."""
    with connect(hostile.port) as sock:
        sock.sendall(
            b"POST /v1/accounts/me/storage/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + headers.encode()
            + b'X-Kloudless-Metadata: {"name": "big.bin", "parent_id": "root"}\r\n'
            + f"Content-Length: {GIB}\r\n\r\n".encode()
        )
        try:
            sock.sendall(b"\0" * sent)
        except OSError:  # the server answered and stopped reading: fine
            pass
        during = spool_files(hostile)
        return (*read_response(sock), during)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ("", 401),
        ("Authorization: Bearer tok_not-a-real-token-at-all-000\r\n", 401),
        ("Authorization: APIKey nope\r\n", 401),
    ],
)
def test_unauthenticated_bodies_are_refused_before_spooling(
    hostile: Hostile, system_temp: str, headers: str, status: int
) -> None:
    code, response_headers, body, during = start_upload(hostile, headers)
    assert_json_error(code, response_headers, body, status)
    assert during == [] and spool_files(hostile) == []
    assert os.listdir(system_temp) == []


def test_an_account_the_caller_cannot_reach_is_refused_before_spooling(hostile: Hostile) -> None:
    with connect(hostile.port) as sock:
        sock.sendall(
            b"PUT /v1/accounts/999/storage/files/abc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {hostile.creds.token}\r\n".encode()
            + f"Content-Length: {GIB}\r\n\r\n".encode()
            + b"\0" * 65536
        )
        code, headers, body = read_response(sock)
    assert_json_error(code, headers, body, 404)
    assert spool_files(hostile) == []


def test_a_json_route_refuses_a_large_body_before_reading_it(hostile: Hostile) -> None:
    with connect(hostile.port) as sock:
        sock.sendall(
            b"POST /v1/accounts/me/storage/folders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {hostile.creds.token}\r\n".encode()
            + f"Content-Type: application/json\r\nContent-Length: {GIB}\r\n\r\n".encode()
            + b"{"
            + b" " * 65536
        )
        code, headers, body = read_response(sock)
    data = assert_json_error(code, headers, body, 413)
    assert data["error_code"] == "request_too_large"
    assert spool_files(hostile) == []


def test_a_chunked_body_over_the_route_limit_is_cut_off(hostile: Hostile) -> None:
    def chunks():
        for _ in range(64):  # 4 MiB, over the 1 MiB limit of JSON bodies
            yield b" " * 65536

    try:
        response = requests.post(
            f"{hostile.base_url}/v1/accounts/me/storage/folders",
            headers={**hostile.auth, "Content-Type": "application/json"},
            data=chunks(),
            timeout=30,
        )
    except requests.ConnectionError:
        pytest.fail("the server reset the connection instead of answering")
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("application/json")


def test_an_upload_is_spooled_in_the_data_dir_and_stored_without_leftovers(
    hostile: Hostile, system_temp: str
) -> None:
    blob = os.urandom(3 * 1024 * 1024)
    file_id = hostile.upload("three.bin", blob)["id"]
    got = requests.get(
        f"{hostile.base_url}/v1/accounts/me/storage/files/{file_id}/contents",
        headers=hostile.auth,
        timeout=30,
    )
    assert got.content == blob
    assert spool_files(hostile) == []
    assert os.listdir(system_temp) == []


def test_the_sdk_upload_with_an_idempotency_key_works(hostile: Hostile) -> None:
    import kloudless

    blob = os.urandom(2 * 1024 * 1024)
    with kloudless.Account(token=hostile.creds.token, base_url=hostile.base_url) as account:
        with tempfile.NamedTemporaryFile() as fh:
            fh.write(blob)
            fh.flush()
            uploaded = account.upload(fh.name, parent_id="root", name="sdk.bin")
    got = requests.get(
        f"{hostile.base_url}/v1/accounts/me/storage/files/{uploaded.data['id']}/contents",
        headers=hostile.auth,
        timeout=30,
    )
    assert got.content == blob and spool_files(hostile) == []


# -- spool.py: adoption by rename --------------------------------------------------------------
def _spooled(tmp_path, data: bytes) -> SpooledBody:
    body = SpooledBody.create(str(tmp_path / "tmp"))
    body.write(data)
    body.flush()
    body.seek(0)
    return body


def _too_big() -> ApiError:
    return ApiError(413, "request_too_large", "too big")


@pytest.mark.parametrize("wrapped", [False, True])
def test_spool_to_temp_adopts_a_spooled_body_without_copying(tmp_path, wrapped: bool) -> None:
    data = os.urandom(300_000)
    body = _spooled(tmp_path, data)
    inode = os.stat(body.path).st_ino
    (tmp_path / "dest").mkdir()
    stream = HashingStream(body) if wrapped else body
    path, size, digest = spool_to_temp(stream, str(tmp_path / "dest"), "up-", 10**6, _too_big)
    assert os.stat(path).st_ino == inode  # the same file, renamed: no second copy
    with open(path, "rb") as fh:
        assert size == len(data) and fh.read() == data
    assert digest == hashlib.sha256(data).hexdigest()
    body.close()
    assert os.path.exists(path)  # adopted: closing the body no longer removes it
    assert os.listdir(tmp_path / "tmp") == []


def test_spool_to_temp_refuses_an_over_long_spooled_body(tmp_path) -> None:
    body = _spooled(tmp_path, b"x" * 1000)
    (tmp_path / "dest").mkdir()
    with pytest.raises(ApiError):
        spool_to_temp(body, str(tmp_path / "dest"), "up-", 999, _too_big)
    body.close()
    assert os.listdir(tmp_path / "tmp") == [] and os.listdir(tmp_path / "dest") == []


def test_a_closed_spooled_body_removes_its_file(tmp_path) -> None:
    body = _spooled(tmp_path, b"abc")
    path = body.path
    body.close()
    assert not os.path.exists(path)


def test_stale_spooled_bodies_are_swept(hostile: Hostile) -> None:
    from kloudless.server import sweep

    folder = os.path.join(hostile.thread.app.settings.data_dir, "tmp")
    stale = os.path.join(folder, "body-stale")
    with open(stale, "wb") as fh:
        fh.write(b"left by a crash")
    old = time.time() - 2 * 86400
    os.utime(stale, (old, old))
    hostile.thread.app.sweeper.wait()
    sweep.sweep(hostile.thread.app)
    assert not os.path.exists(stale)


def test_metadata_header_json_is_unchanged(hostile: Hostile) -> None:
    # The preflight reads only the headers; the handler still sees the whole request.
    meta = {"name": "m.txt", "parent_id": "root"}
    response = requests.post(
        f"{hostile.base_url}/v1/accounts/me/storage/files",
        headers={**hostile.auth, "X-Kloudless-Metadata": json.dumps(meta)},
        data=b"hello",
        timeout=30,
    )
    assert response.status_code == 201 and response.json()["name"] == "m.txt"
