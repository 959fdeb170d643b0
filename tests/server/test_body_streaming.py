"""A large upload body is received in large reads, hashed and written out as it arrives.

Over real HTTP (waitress, :mod:`kloudless.server.serving`): a body of known length is read from
the socket in reads of up to :data:`~kloudless.server.serving.BODY_RECV_BYTES` (never past its
end: a pipelined request behind it is answered too); an upload's preflight asks for its SHA-256
as it is spooled, so the handler adopts the spooled file without reading it back
(:func:`~kloudless.server.spool.drain` is not called), keyed or not; the digest is the one of
the bytes. The spool file's write-out is started behind the writer
(:class:`~kloudless.server.spool.WriteOut`, ``sync_file_range`` on Linux), in contiguous ranges
that stay :data:`~kloudless.server.spool.WRITE_OUT_LAG` behind it; the data sync before the
answer is still made (``tests/server/test_upload_durable_steps.py``).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from kloudless.server import serving, spool
from kloudless.server.errors import ApiError
from kloudless.server.runner import ServerThread
from kloudless.server.spool import HashingStream, SpooledBody, spool_to_path

MIB = 1024 * 1024


@pytest.fixture
def drained(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """:returns: the sizes of the bodies :func:`spool.drain` read from now on."""
    sizes: list[int] = []
    real = spool.drain

    def counting(*args: Any, **kwargs: Any) -> tuple[int, str]:
        result = real(*args, **kwargs)
        sizes.append(result[0])
        return result

    monkeypatch.setattr(spool, "drain", counting)
    return sizes


@pytest.fixture
def appended(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """:returns: the sizes of the chunks the HTTP server appends to spooled bodies."""
    sizes: list[int] = []
    real = SpooledBody.append

    def counting(self: SpooledBody, data: Any) -> None:
        sizes.append(len(memoryview(data)))
        real(self, data)

    monkeypatch.setattr(SpooledBody, "append", counting)
    return sizes


def _auth(server: ServerThread) -> dict[str, str]:
    assert server.credentials is not None
    return {"Authorization": f"Bearer {server.credentials.token}"}


def _upload(server: ServerThread, name: str, data: bytes, key: str | None = None) -> Any:
    headers = {
        **_auth(server),
        "X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": "root"}),
        "Content-Type": "application/octet-stream",
    }
    if key is not None:
        headers["Idempotency-Key"] = key
    return requests.post(
        f"{server.base_url}/v1/accounts/me/storage/files", data=data, headers=headers, timeout=60
    )


@pytest.mark.parametrize("key", [None, "streamed-1"], ids=["unkeyed", "keyed"])
def test_an_upload_is_hashed_as_it_arrives_and_not_read_back(
    server: ServerThread, drained: list[int], appended: list[int], key: str | None
) -> None:
    data = os.urandom(3 * MIB + 5)  # above waitress's 512 KiB in memory: spooled
    answer = _upload(server, f"streamed-{key}.bin", data, key)
    assert answer.status_code == 201, answer.text
    assert drained == []  # adopted with the digest of the arrival, not read again
    assert sum(appended) == len(data)
    expected = hashlib.sha256(data).hexdigest()
    name = f"streamed-{key}.bin"
    row = server.app.store.one("SELECT etag, size FROM objects WHERE name = ?", (name,))
    assert (row["etag"], row["size"]) == (expected[:32], len(data))
    if key is not None:  # the key's record has the same digest, and still checks a repeat
        keyed = server.app.store.one("SELECT body_sha256, body_size FROM idempotency_keys")
        assert (keyed["body_sha256"], keyed["body_size"]) == (expected, len(data))
        again = _upload(server, f"streamed-{key}.bin", data, key)
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["id"] == answer.json()["id"]
        other = _upload(server, f"streamed-{key}.bin", os.urandom(len(data)), key)
        assert other.status_code == 422, other.text
    contents = requests.get(
        f"{server.base_url}/v1/accounts/me/storage/files/{answer.json()['id']}/contents",
        headers=_auth(server),
        timeout=60,
    )
    assert contents.content == data


def test_a_body_is_read_in_large_reads_and_never_past_its_end(
    server: ServerThread, appended: list[int]
) -> None:
    data = os.urandom(4 * MIB)
    meta = json.dumps({"name": "pipelined.bin", "parent_id": "root"})
    head = (
        "POST /v1/accounts/me/storage/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {_auth(server)['Authorization']}\r\nX-Kloudless-Metadata: {meta}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    second = (
        "GET /v1/accounts/me HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {_auth(server)['Authorization']}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head.encode() + data + second.encode())  # the GET right behind the body
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"201", b"200"], received[:500]
    assert sum(appended) == len(data)
    # waitress alone reads 8 KiB at a time; a body of known length is read in larger reads.
    assert max(appended) > 8192
    assert all(size <= serving.BODY_RECV_BYTES for size in appended)


def test_the_write_out_starts_behind_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int, int]] = []
    monkeypatch.setattr(spool, "_sync_file_range", lambda *args: calls.append(args) or 0)
    body = SpooledBody.create(str(tmp_path), hashed=True)
    data = os.urandom(40 * MIB + 100)
    written_at: list[int] = []
    for start in range(0, len(data), MIB):
        body.append(data[start : start + MIB])
        written_at.append(body.written)
    assert calls, "no write-out was started"
    started = 0
    for fd, offset, length, flags in calls:
        assert (fd, offset, flags) == (body.fileno(), started, 2)  # contiguous, WRITE only
        assert length >= spool.WRITE_OUT_STEP
        started = offset + length
    assert started <= len(data) - spool.WRITE_OUT_LAG  # never the pages still being written
    assert started >= len(data) - spool.WRITE_OUT_LAG - spool.WRITE_OUT_STEP - MIB
    digest = body.digest()
    assert digest is not None and digest.hexdigest() == hashlib.sha256(data).hexdigest()
    body.close()


def test_a_part_starts_its_write_out_from_its_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int, int]] = []
    monkeypatch.setattr(spool, "_sync_file_range", lambda *args: calls.append(args) or 0)
    path = str(tmp_path / "data")
    offset, data = 3 * MIB, os.urandom(8 * MIB)
    body = spool.InPlaceBody(path, offset, len(data))
    for start in range(0, len(data), 300_001):  # reads of any size
        body.write(data[start : start + 300_001])
    assert body.complete
    started = offset
    for _, start, length, flags in calls:
        assert (start, flags) == (started, 2)  # contiguous from the part's start, WRITE only
        assert length >= spool.PART_WRITE_OUT_STEP
        started = start + length
        assert started % mmap.PAGESIZE == 0  # not the page still being written
    assert offset + len(data) - spool.PART_WRITE_OUT_STEP - 300_001 <= started
    assert started <= offset + len(data)
    body.close()
    body.finish()
    with open(path, "rb") as written:
        assert written.read() == bytes(offset) + data


def test_a_refused_write_out_is_not_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(spool, "_sync_file_range", lambda *args: calls.append(args) or -1)
    body = SpooledBody.create(str(tmp_path))
    data = os.urandom(30 * MIB)
    body.append(data)
    body.append(data)
    assert len(calls) == 1
    assert body.read() == data + data
    body.close()


def _too_big() -> ApiError:
    return ApiError(413, "request_too_large", "too big")


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_a_body_written_another_way_is_read_and_hashed_again(
    tmp_path: Path, drained: list[int], keyed: bool
) -> None:
    body = SpooledBody.create(str(tmp_path / "tmp"), hashed=True)
    body.append(b"hashed on arrival ")
    body.seek(0, 2)
    body.write(b"and written past append()")  # the arrival's digest no longer covers the file
    body.flush()
    body.seek(0)
    assert body.digest() is None
    data = b"hashed on arrival and written past append()"
    stream: Any = HashingStream(body) if keyed else body
    size, digest = spool_to_path(stream, str(tmp_path / "blob"), 10 * MIB, _too_big)
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert drained == [len(data)]
    assert (tmp_path / "blob").read_bytes() == data
    body.close()


def test_a_hashed_body_over_the_limit_is_refused(tmp_path: Path, drained: list[int]) -> None:
    body = SpooledBody.create(str(tmp_path / "tmp"), hashed=True)
    body.append(b"x" * 1000)
    with pytest.raises(ApiError):
        spool_to_path(body, str(tmp_path / "blob"), 999, _too_big)
    assert not (tmp_path / "blob").exists() and drained == []
    body.close()
