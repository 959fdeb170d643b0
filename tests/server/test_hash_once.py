"""A keyed upload's body is hashed once: the idempotency record and the blob share the digest.

Counted, not timed: ``hashlib.sha256`` is replaced by a wrapper that counts the bytes all
sha256 objects made during the test are fed (the idempotency layer's and the spool's alike).
Over a real server (waitress on loopback, bodies spooled into the data dir and adopted by
rename) a keyed upload still replays, and a different body under the same key is still refused.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from kloudless.server.errors import ApiError
from kloudless.server.runner import ServerThread
from kloudless.server.spool import HashingStream, SpooledBody, spool_to_temp

MIB = 1024 * 1024
_SHA256 = hashlib.sha256


class _Counting:
    """A sha256 that adds the bytes it hashes to a shared counter."""

    def __init__(self, counter: list[int]) -> None:
        self._sha = _SHA256()
        self._counter = counter

    def update(self, data: bytes) -> None:
        self._counter[0] += len(data)
        self._sha.update(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """:returns: a one-item list counting the bytes every new sha256 object is fed."""
    counter = [0]

    def sha256(data: bytes = b"") -> _Counting:
        made = _Counting(counter)
        made.update(data)
        return made

    monkeypatch.setattr(hashlib, "sha256", sha256)
    return counter


def _too_big() -> ApiError:
    return ApiError(413, "request_too_large", "too big")


def _spooled(directory: Path, data: bytes) -> SpooledBody:
    body = SpooledBody.create(str(directory))
    body.write(data)
    body.flush()
    body.seek(0)
    return body


@pytest.mark.parametrize("spooled", [True, False], ids=["adopted", "copied"])
def test_a_keyed_body_is_hashed_once(tmp_path: Path, hashed: list[int], spooled: bool) -> None:
    data = os.urandom(3 * MIB + 17)
    inner: Any = _spooled(tmp_path / "tmp", data) if spooled else io.BytesIO(data)
    stream = HashingStream(inner)
    (tmp_path / "dest").mkdir()
    path, size, digest = spool_to_temp(stream, str(tmp_path / "dest"), "up-", 10 * MIB, _too_big)
    expected = _SHA256(data).hexdigest()
    assert (size, digest) == (len(data), expected)
    assert stream.hexdigest() == expected and stream.size == len(data) and stream.eof
    assert hashed[0] == len(data)  # once, not once for the key and once for the blob
    assert stream.drain(0)  # nothing left for the idempotency layer to read
    assert hashed[0] == len(data)
    with open(path, "rb") as fh:
        assert fh.read() == data
    if spooled:
        inner.close()


def test_an_unkeyed_body_is_hashed_once(tmp_path: Path, hashed: list[int]) -> None:
    data = os.urandom(MIB)
    body = _spooled(tmp_path / "tmp", data)
    (tmp_path / "dest").mkdir()
    _, size, digest = spool_to_temp(body, str(tmp_path / "dest"), "up-", 10 * MIB, _too_big)
    assert (size, digest) == (len(data), _SHA256(data).hexdigest())
    assert hashed[0] == len(data)
    body.close()


def test_a_partly_read_stream_gets_its_own_digest_of_the_rest(tmp_path: Path) -> None:
    data = os.urandom(MIB)
    stream = HashingStream(io.BytesIO(data))
    assert stream.read(10) == data[:10]
    (tmp_path / "dest").mkdir()
    _, size, digest = spool_to_temp(stream, str(tmp_path / "dest"), "up-", 10 * MIB, _too_big)
    assert (size, digest) == (len(data) - 10, _SHA256(data[10:]).hexdigest())
    assert stream.hexdigest() == _SHA256(data).hexdigest()


def test_an_over_long_keyed_body_is_refused(tmp_path: Path) -> None:
    stream = HashingStream(io.BytesIO(b"x" * 1000))
    (tmp_path / "dest").mkdir()
    with pytest.raises(ApiError):
        spool_to_temp(stream, str(tmp_path / "dest"), "up-", 999, _too_big)
    assert os.listdir(tmp_path / "dest") == []


def test_a_spooled_keyed_upload_replays_and_refuses_another_body(server: ServerThread) -> None:
    assert server.credentials is not None
    auth = {"Authorization": f"Bearer {server.credentials.token}"}
    url = f"{server.base_url}/v1/accounts/me/storage/files"
    data = os.urandom(2 * MIB)  # above waitress's in-memory limit: spooled into the data dir
    headers = {
        **auth,
        "Idempotency-Key": "hash-once-1",
        "X-Kloudless-Metadata": '{"name": "once.bin", "parent_id": "root"}',
        "Content-Type": "application/octet-stream",
    }
    first = requests.post(url, data=data, headers=headers, timeout=60)
    assert first.status_code == 201, first.text
    again = requests.post(url, data=data, headers=headers, timeout=60)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    other = requests.post(url, data=os.urandom(len(data)), headers=headers, timeout=60)
    assert other.status_code == 422, other.text
    assert other.json()["error_code"] == "invalid_parameters"
    contents = requests.get(f"{url}/{first.json()['id']}/contents", headers=auth, timeout=60)
    assert contents.content == data
