"""kloudless.transfer: streaming downloads and multipart, resumable uploads (with `responses`)."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import pathlib
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from requests.utils import super_len

from kloudless import transfer
from kloudless.account import Account
from kloudless.exceptions import ConnectionException, KloudlessException, ServerException
from kloudless.transfer import (
    SizeMismatchError,
    TransferError,
    UploadInterrupted,
    abort_upload,
    download,
    download_resource,
    upload_file,
)

ORIGIN = "http://localhost:8002"
BASE = f"{ORIGIN}/v1/accounts/me"
CONTENT = bytes(range(256)) * 4  # 1024 bytes, every offset distinguishable


@pytest.fixture
def account() -> Iterator[Account]:
    acc = Account(token="secret-token", base_url=ORIGIN, max_retries=0)
    yield acc
    acc.close()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    delays: list[float] = []
    monkeypatch.setattr(transfer, "_sleep", delays.append)
    return delays


class Recorder:
    """A progress callback that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []
        self.lock = threading.Lock()

    def __call__(self, done: int, total: int | None) -> None:
        with self.lock:
            self.calls.append((done, total))


# --------------------------------------------------------------------------------------------
# A file server whose connections can drop mid-body
# --------------------------------------------------------------------------------------------


class _DroppingRaw(io.RawIOBase):
    """A raw stream serving ``data`` that fails like a reset socket after ``drop_at`` bytes."""

    def __init__(self, data: bytes, drop_at: int | None) -> None:
        self._data = data
        self._pos = 0
        self._drop_at = drop_at

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._drop_at is not None and self._pos >= self._drop_at:
            raise ConnectionResetError("connection reset by peer")
        end = len(self._data) if self._drop_at is None else min(len(self._data), self._drop_at)
        count = min(len(buffer), end - self._pos)
        buffer[:count] = self._data[self._pos : self._pos + count]
        self._pos += count
        return count


class FileServer:
    """Serves ``GET storage/files/F1`` (metadata) and ``.../contents`` with optional faults."""

    def __init__(
        self,
        rsps: responses.RequestsMock,
        content: bytes = CONTENT,
        *,
        name: str | None = "report.bin",
        size: Any = "same",
        accept_ranges: bool = True,
        honour_range: bool = True,
        etag: str | None = '"v1"',
        content_length: bool = True,
        drops: list[int | None] | None = None,
        cuts: list[int] | None = None,
        bad_range_start: bool = False,
        body: bytes | None = None,
        extra_headers: dict[str, str] | None = None,
        status: int = 200,
        refuse: list[bool] | None = None,
    ) -> None:
        self.content = content
        self.accept_ranges = accept_ranges
        self.honour_range = honour_range
        self.etag = etag
        self.content_length = content_length
        self.drops = list(drops or [])
        self.cuts = list(cuts or [])
        self.bad_range_start = bad_range_start
        self.body = body
        self.extra_headers = extra_headers or {}
        self.status = status
        self.refuse = list(refuse or [])
        self.requests: list[dict[str, str]] = []
        meta: dict[str, Any] = {
            "id": "F1",
            "api": "storage",
            "type": "file",
            "size": len(content) if size == "same" else size,
        }
        if name is not None:
            meta["name"] = name
        rsps.add(responses.GET, f"{BASE}/storage/files/F1", json=meta)
        rsps.add_callback(responses.GET, f"{BASE}/storage/files/F1/contents", callback=self._serve)

    def _serve(self, request: requests.PreparedRequest) -> Any:
        self.requests.append(dict(request.headers))
        if self.refuse and self.refuse.pop(0):
            return requests.ConnectionError("connection refused")
        if self.status != 200:
            return self.status, {"Content-Type": "application/json"}, b'{"error_code": "boom"}'
        headers = {"Content-Type": "application/octet-stream", **self.extra_headers}
        if self.accept_ranges:
            headers["Accept-Ranges"] = "bytes"
        if self.etag:
            headers["ETag"] = self.etag
        status, start = 200, 0
        wanted = request.headers.get("Range")
        if wanted and self.accept_ranges and self.honour_range:
            status, start = 206, int(wanted.split("=", 1)[1].rstrip("-"))
            shown = start + 1 if self.bad_range_start else start
            headers["Content-Range"] = f"bytes {shown}-{len(self.content) - 1}/{len(self.content)}"
        body = self.content[start:] if self.body is None else self.body
        if self.cuts:
            body = body[: self.cuts.pop(0)]  # a clean but early end of the body
        if self.content_length:
            headers["Content-Length"] = str(len(body))
        drop = self.drops.pop(0) if self.drops else None
        return status, headers, io.BufferedReader(_DroppingRaw(body, drop))


def _resource(account: Account) -> Any:
    return account.get("storage/files/F1")


def _files(folder: pathlib.Path) -> list[str]:
    return sorted(os.listdir(folder))


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------


def test_download_to_path(account: Account, mocked: Any, tmp_path: pathlib.Path) -> None:
    server = FileServer(mocked)
    progress = Recorder()
    dest = tmp_path / "out.bin"
    result = download_resource(_resource(account), dest, chunk_size=100, progress=progress)
    assert result == str(dest)
    assert dest.read_bytes() == CONTENT
    assert _files(tmp_path) == ["out.bin"]  # the temporary file is gone
    assert progress.calls[0] == (0, len(CONTENT))
    assert progress.calls[-1] == (len(CONTENT), len(CONTENT))
    assert [d for d, _ in progress.calls] == sorted(d for d, _ in progress.calls)
    (headers,) = server.requests
    assert headers["Accept-Encoding"] == "identity"
    assert "Range" not in headers
    assert headers["Authorization"] == "Bearer secret-token"


def test_resource_download_method_uses_the_helper(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    FileServer(mocked)
    dest = tmp_path / "via-method.bin"
    assert _resource(account).download(str(dest)) == str(dest)
    assert dest.read_bytes() == CONTENT


def test_download_replaces_existing_file(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    FileServer(mocked)
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old contents")
    download_resource(_resource(account), dest)
    assert dest.read_bytes() == CONTENT


def test_download_into_folder_uses_safe_name(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    FileServer(mocked, name="../../escape\x00.txt")
    inner = tmp_path / "inner"
    inner.mkdir()
    result = download_resource(_resource(account), inner)
    assert result == str(inner / "escape.txt")
    assert (inner / "escape.txt").read_bytes() == CONTENT
    assert _files(tmp_path) == ["inner"]


def test_download_into_folder_without_name(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    FileServer(mocked, name=None)
    assert download_resource(_resource(account), str(tmp_path)) == str(tmp_path / "download")


def test_download_to_file_object_returns_byte_count(account: Account, mocked: Any) -> None:
    FileServer(mocked)
    out = io.BytesIO()
    out.write(b"header:")
    assert download_resource(_resource(account), out, chunk_size=300) == len(CONTENT)
    assert out.getvalue() == b"header:" + CONTENT


def test_download_refuses_text_and_non_files(account: Account, mocked: Any) -> None:
    FileServer(mocked)
    resource = _resource(account)
    with pytest.raises(TypeError, match="binary mode"):
        download_resource(resource, io.StringIO())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path or a binary file object"):
        download_resource(resource, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_size"):
        download_resource(resource, io.BytesIO(), chunk_size=0)


def test_download_refuses_folders(account: Account, mocked: Any) -> None:
    mocked.add(
        responses.GET,
        f"{BASE}/storage/folders/D1",
        json={"id": "D1", "api": "storage", "type": "folder", "name": "docs"},
    )
    folder = account.get("storage/folders/D1")
    with pytest.raises(TransferError, match="only files"):
        download_resource(folder, io.BytesIO())


def test_http_error_leaves_nothing(account: Account, mocked: Any, tmp_path: pathlib.Path) -> None:
    FileServer(mocked, status=500)
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"keep me")
    with pytest.raises(ServerException):
        download_resource(_resource(account), dest)
    assert dest.read_bytes() == b"keep me"
    assert _files(tmp_path) == ["out.bin"]


def test_failure_mid_stream_leaves_no_partial_file(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    FileServer(mocked, drops=[500])
    dest = tmp_path / "out.bin"
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        download_resource(_resource(account), dest, chunk_size=100, resume=False)
    assert _files(tmp_path) == []


def test_progress_callback_can_cancel(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    FileServer(mocked)

    def cancel(done: int, total: int | None) -> None:
        if done >= 300:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_resource(_resource(account), tmp_path / "x", chunk_size=100, progress=cancel)
    assert _files(tmp_path) == []


def test_more_bytes_than_announced_is_an_error(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    # No Content-Length: the resource's size is the reference.
    FileServer(mocked, size=100, content_length=False)
    with pytest.raises(SizeMismatchError) as info:
        download_resource(_resource(account), tmp_path / "out.bin")
    assert (info.value.expected, info.value.actual) == (100, len(CONTENT))
    assert isinstance(info.value, KloudlessException)
    assert _files(tmp_path) == []


def test_short_body_without_resume_is_an_error(account: Account, mocked: Any) -> None:
    FileServer(mocked, size=len(CONTENT) + 10, content_length=False)
    with pytest.raises(
        SizeMismatchError, match=f"after {len(CONTENT)} bytes of {len(CONTENT) + 10}"
    ):
        download_resource(_resource(account), io.BytesIO(), resume=False)


def test_resume_after_dropped_connection_uses_range(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    server = FileServer(mocked, drops=[300, 400])  # offsets within each body
    progress = Recorder()
    dest = tmp_path / "out.bin"
    download_resource(_resource(account), dest, chunk_size=100, progress=progress)
    assert dest.read_bytes() == CONTENT
    assert [h.get("Range") for h in server.requests] == [None, "bytes=300-", "bytes=700-"]
    assert [h.get("If-Range") for h in server.requests] == [None, '"v1"', '"v1"']
    done = [d for d, _ in progress.calls]
    assert done == sorted(done)  # never went back: nothing was downloaded twice
    assert done[-1] == len(CONTENT)


def test_resume_after_clean_short_body(account: Account, mocked: Any) -> None:
    # The body ends early without an error and without Content-Length: the size tells.
    server = FileServer(mocked, content_length=False, cuts=[400])
    out = io.BytesIO()
    assert download_resource(_resource(account), out) == len(CONTENT)
    assert out.getvalue() == CONTENT
    assert [h.get("Range") for h in server.requests] == [None, "bytes=400-"]


def test_resume_without_range_support_restarts_cleanly(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    server = FileServer(mocked, accept_ranges=False, drops=[500])
    progress = Recorder()
    dest = tmp_path / "out.bin"
    download_resource(_resource(account), dest, chunk_size=100, progress=progress)
    assert dest.read_bytes() == CONTENT
    assert [h.get("Range") for h in server.requests] == [None, None]
    assert (0, len(CONTENT)) in progress.calls[1:]  # progress went back to zero


def test_server_ignoring_range_restarts_cleanly(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    server = FileServer(mocked, honour_range=False, drops=[500])
    dest = tmp_path / "out.bin"
    download_resource(_resource(account), dest, chunk_size=100)
    assert dest.read_bytes() == CONTENT  # not the first 500 bytes twice
    assert [h.get("Range") for h in server.requests] == [None, "bytes=500-"]


def test_wrong_content_range_start_restarts(account: Account, mocked: Any) -> None:
    server = FileServer(mocked, drops=[200], bad_range_start=True)
    out = io.BytesIO()
    assert download_resource(_resource(account), out, chunk_size=100) == len(CONTENT)
    assert out.getvalue() == CONTENT
    assert [h.get("Range") for h in server.requests] == [None, "bytes=200-", None]


def test_resume_attempts_are_bounded(account: Account, mocked: Any, tmp_path: pathlib.Path) -> None:
    server = FileServer(mocked, drops=[10] * 50)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        download_resource(_resource(account), tmp_path / "out.bin", chunk_size=100)
    assert len(server.requests) == 1 + transfer.MAX_RESUME_ATTEMPTS
    assert _files(tmp_path) == []


@pytest.mark.parametrize(("refuse", "requests_made"), [([True], 1), ([False, True], 2)])
def test_failed_request_is_not_repeated_by_the_helper(
    account: Account, mocked: Any, tmp_path: pathlib.Path, refuse: list[bool], requests_made: int
) -> None:
    # The client's retry policy already handled a request that failed outright.
    server = FileServer(mocked, drops=[100], refuse=refuse)
    with pytest.raises(ConnectionException):
        download_resource(_resource(account), tmp_path / "out.bin")
    assert len(server.requests) == requests_made
    assert _files(tmp_path) == []


def test_short_body_after_attempts_is_size_error(account: Account, mocked: Any) -> None:
    server = FileServer(mocked, content_length=False, accept_ranges=False)
    with pytest.raises(SizeMismatchError):
        download(
            account,
            f"{BASE}/storage/files/F1/contents",
            io.BytesIO(),
            expected_size=2000,
            max_resume_attempts=2,
        )
    assert len(server.requests) == 3


def test_restart_into_non_seekable_file_object_fails(account: Account, mocked: Any) -> None:
    FileServer(mocked, accept_ranges=False, drops=[300])

    class Sink(io.RawIOBase):
        def __init__(self) -> None:
            self.data = b""

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            self.data += bytes(b)
            return len(b)

    with pytest.raises(TransferError, match="cannot be rewound"):
        download_resource(_resource(account), Sink(), chunk_size=100)


def test_restart_into_seekable_file_object_rewinds(account: Account, mocked: Any) -> None:
    FileServer(mocked, accept_ranges=False, drops=[300])
    out = io.BytesIO(b"keep")
    out.seek(4)
    assert download_resource(_resource(account), out, chunk_size=100) == len(CONTENT)
    assert out.getvalue() == b"keep" + CONTENT


def test_object_without_seekable_is_treated_as_non_seekable(account: Account, mocked: Any) -> None:
    FileServer(mocked)

    class Minimal:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def write(self, b: bytes) -> int:
            self.chunks.append(b)
            return len(b)

    sink = Minimal()
    assert download_resource(_resource(account), sink) == len(CONTENT)  # type: ignore[arg-type]
    assert b"".join(sink.chunks) == CONTENT


def test_weak_etag_not_used_for_if_range(account: Account, mocked: Any) -> None:
    server = FileServer(mocked, etag='W/"weak"', drops=[100])
    out = io.BytesIO()
    download_resource(_resource(account), out, chunk_size=50)
    assert out.getvalue() == CONTENT
    assert "If-Range" not in server.requests[1]
    assert server.requests[1]["Range"] == "bytes=100-"


def test_compressed_answer_counts_decoded_bytes(account: Account, mocked: Any) -> None:
    # A server that compresses despite "identity": Content-Length is not the file size, and
    # ranges would apply to the compressed bytes, so the size check uses the resource's size.
    packed = gzip.compress(CONTENT)
    server = FileServer(mocked, body=packed, extra_headers={"Content-Encoding": "gzip"})
    progress = Recorder()
    out = io.BytesIO()
    assert download_resource(_resource(account), out, progress=progress) == len(CONTENT)
    assert out.getvalue() == CONTENT
    assert progress.calls[-1] == (len(CONTENT), len(CONTENT))
    assert len(server.requests) == 1


def test_low_level_download_relative_path(account: Account, mocked: Any) -> None:
    FileServer(mocked, size=None)
    out = io.BytesIO()
    assert download(account, "storage/files/F1/contents", out, headers={"X-Test": "1"}) == 1024
    assert out.getvalue() == CONTENT


def test_unknown_size_accepts_whatever_arrives(account: Account, mocked: Any) -> None:
    FileServer(mocked, size=None, content_length=False)
    progress = Recorder()
    assert download(account, "storage/files/F1/contents", io.BytesIO(), progress=progress) == 1024
    assert progress.calls[-1] == (1024, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (None, None)),
        ("", (None, None)),
        ("items 0-1/2", (None, None)),
        ("bytes 5-9/10", (5, 10)),
        ("bytes 5-9/*", (5, None)),
        ("bytes */10", (None, 10)),
    ],
)
def test_content_range_parsing(value: str | None, expected: tuple[Any, Any]) -> None:
    assert transfer._content_range(value) == expected


def test_content_range_total_change_restarts(account: Account, mocked: Any) -> None:
    server = FileServer(mocked, drops=[100])
    original = server._serve

    def serve(request: requests.PreparedRequest) -> Any:
        status, headers, body = original(request)
        if status == 206:
            headers["Content-Range"] = "bytes 100-1023/9999"
        return status, headers, body

    mocked.remove(responses.GET, f"{BASE}/storage/files/F1/contents")
    mocked.add_callback(responses.GET, f"{BASE}/storage/files/F1/contents", callback=serve)
    out = io.BytesIO()
    assert download_resource(_resource(account), out, chunk_size=50) == 1024
    assert out.getvalue() == CONTENT
    assert [h.get("Range") for h in server.requests] == [None, "bytes=100-", None]


# --------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------


def _file_object(data: dict[str, Any]) -> dict[str, Any]:
    return {"api": "storage", "type": "file", **data}


class SmallUploadServer:
    def __init__(self, rsps: responses.RequestsMock, *, size_delta: int = 0, no_size: bool = False):
        self.requests: list[requests.PreparedRequest] = []
        self.size_delta = size_delta
        self.no_size = no_size
        rsps.add_callback(responses.POST, f"{BASE}/storage/files", callback=self._upload)

    def _upload(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        self.requests.append(request)
        meta = json.loads(request.headers["X-Kloudless-Metadata"])
        body = request.body or b""
        assert isinstance(body, bytes)
        data = _file_object(
            {"id": "NEW", "name": meta["name"], "parent": {"id": meta["parent_id"]}}
        )
        if not self.no_size:
            data["size"] = len(body) + self.size_delta
        return 201, {"Content-Type": "application/json"}, json.dumps(data)


def test_small_upload_from_path(account: Account, mocked: Any, tmp_path: pathlib.Path) -> None:
    server = SmallUploadServer(mocked)
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello world")
    progress = Recorder()
    result = upload_file(account, str(path), progress=progress)
    assert result.data["id"] == "NEW"
    assert result.url == f"{BASE}/storage/files/NEW"
    (request,) = server.requests
    assert request.body == b"hello world"
    assert json.loads(request.headers["X-Kloudless-Metadata"]) == {
        "name": "notes.txt",
        "parent_id": "root",
    }
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.headers["Content-Length"] == "11"
    assert request.headers["Idempotency-Key"]
    assert str(request.url).endswith("/storage/files?overwrite=false")
    assert progress.calls[0] == (0, 11)
    assert progress.calls[-1] == (11, 11)


def test_small_upload_options_and_account_method(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    server = SmallUploadServer(mocked)
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")
    result = account.upload(path, parent_id="D9", name="renamed é.txt", overwrite=True)
    assert result.data["name"] == "renamed é.txt"
    (request,) = server.requests
    assert str(request.url).endswith("overwrite=true")
    # Non-ASCII names travel JSON-escaped, so the header stays ASCII.
    assert request.headers["X-Kloudless-Metadata"].isascii()
    assert json.loads(request.headers["X-Kloudless-Metadata"])["parent_id"] == "D9"


def test_small_upload_of_empty_file(account: Account, mocked: Any, tmp_path: pathlib.Path) -> None:
    server = SmallUploadServer(mocked)
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert upload_file(account, path).data["size"] == 0
    assert server.requests[0].headers["Content-Length"] == "0"


def test_small_upload_from_file_object_position(account: Account, mocked: Any) -> None:
    server = SmallUploadServer(mocked)
    source = io.BytesIO(b"skip:payload")
    source.seek(5)
    upload_file(account, source, name="p.bin")
    assert server.requests[0].body == b"payload"
    with pytest.raises(ValueError, match="name= is required"):
        upload_file(account, io.BytesIO(b"x"))


def test_small_upload_takes_name_from_open_file(
    account: Account, mocked: Any, tmp_path: pathlib.Path
) -> None:
    server = SmallUploadServer(mocked)
    path = tmp_path / "opened.dat"
    path.write_bytes(b"data")
    with open(path, "rb") as fh:
        upload_file(account, fh)
    assert json.loads(server.requests[0].headers["X-Kloudless-Metadata"])["name"] == "opened.dat"


def test_upload_refuses_text_and_non_files(account: Account, tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError, match="binary mode"):
        upload_file(account, io.StringIO("text"), name="t.txt")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path or a binary file object"):
        upload_file(account, 3.5, name="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_workers"):
        upload_file(account, io.BytesIO(b""), name="x", max_workers=0)
    with pytest.raises(ValueError, match="part_size"):
        upload_file(account, io.BytesIO(b""), name="x", part_size=-1)
    with pytest.raises(ValueError, match="multipart_threshold"):
        upload_file(account, io.BytesIO(b""), name="x", multipart_threshold=-1)


def test_small_upload_size_mismatch(account: Account, mocked: Any) -> None:
    SmallUploadServer(mocked, size_delta=-1)
    with pytest.raises(SizeMismatchError) as info:
        upload_file(account, io.BytesIO(b"12345"), name="n")
    assert (info.value.expected, info.value.actual) == (5, 4)


def test_small_upload_without_size_in_answer(account: Account, mocked: Any) -> None:
    SmallUploadServer(mocked, no_size=True)
    assert upload_file(account, io.BytesIO(b"12345"), name="n").data["id"] == "NEW"


class NonSeekable(io.RawIOBase):
    """A pipe-like binary stream."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.name = "stream.bin"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), len(self._data), 7)
        buffer[:count] = self._data[:count]
        self._data = self._data[count:]
        return count


def test_small_upload_from_non_seekable_stream(account: Account, mocked: Any) -> None:
    server = SmallUploadServer(mocked)
    upload_file(account, NonSeekable(b"streamed bytes"))
    assert server.requests[0].body == b"streamed bytes"
    assert server.requests[0].headers["Content-Length"] == "14"


def test_progress_reader_is_a_rewindable_streamed_body() -> None:
    source = transfer._Source(io.BytesIO(b"0123456789-tail"), 0, 10, "x")
    progress = Recorder()
    reader = transfer._ProgressReader(source, transfer._Progress(progress, 10))
    assert super_len(reader) == 10  # what requests uses for Content-Length
    assert reader.seekable()
    assert reader.read(4) == b"0123"
    assert reader.read(0) == b""
    assert reader.tell() == 4
    assert reader.seek(0) == 0  # a retry rewinds the body...
    assert reader.read() == b"0123456789"  # ...and the size limit holds (no "-tail")
    assert reader.read(5) == b""
    assert reader.seek(-3, io.SEEK_END) == 7
    assert reader.seek(1, io.SEEK_CUR) == 8
    assert reader.read(None) == b"89"
    assert [d for d, _ in progress.calls] == [4, 0, 10, 7, 8, 10]


def test_upload_from_object_with_only_read(account: Account, mocked: Any) -> None:
    server = SmallUploadServer(mocked)

    class OnlyRead:
        def __init__(self) -> None:
            self._parts = [b"ab", b"cd"]

        def read(self, size: int = -1) -> bytes:
            return self._parts.pop(0) if self._parts else b""

    upload_file(account, OnlyRead(), name="r.bin")  # type: ignore[arg-type]
    assert server.requests[0].body == b"abcd"


@pytest.mark.parametrize(("value", "expected"), [(5, 5), ("4420", 4420), (None, None), ("x", None)])
def test_size_fields(value: Any, expected: int | None) -> None:
    # Older payloads sent sizes as strings; junk counts as unknown.
    assert transfer._as_size(value) == expected


def test_source_that_shrinks_is_detected() -> None:
    source = transfer._Source(io.BytesIO(b"short"), 0, 10, "x")
    with pytest.raises(TransferError, match="changed during the upload"):
        source.read_at(0, 10)


class MultipartServer:
    """Serves ``storage/multipart`` and records every call; faults can be injected per part."""

    def __init__(
        self,
        rsps: responses.RequestsMock,
        *,
        part_size: int | None = 10,
        parallel: bool = False,
        faults: dict[int, list[Any]] | None = None,
        part_size_delta: int = 0,
        final_size_delta: int = 0,
        session_id: Any = "S1",
    ) -> None:
        self.part_size = part_size
        self.parallel = parallel
        self.faults = faults or {}
        self.part_size_delta = part_size_delta
        self.final_size_delta = final_size_delta
        self.session_id = session_id
        self.lock = threading.Lock()
        self.parts: dict[int, bytes] = {}
        self.puts: list[int] = []
        self.inits: list[requests.PreparedRequest] = []
        self.completes: list[requests.PreparedRequest] = []
        self.meta: dict[str, Any] = {}
        self.on_put: Any = None
        url = re.escape(f"{BASE}/storage/multipart")
        rsps.add_callback(responses.POST, re.compile(url + r"(\?.*)?$"), callback=self._init)
        rsps.add_callback(responses.GET, re.compile(url + r"/(\w+)$"), callback=self._status)
        rsps.add_callback(responses.PUT, re.compile(url + r"/(\w+)\?.*$"), callback=self._put)
        rsps.add_callback(
            responses.POST, re.compile(url + r"/(\w+)/complete$"), callback=self._complete
        )
        rsps.add(responses.DELETE, re.compile(url + r"/(\w+)$"), status=204)

    def session(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.session_id,
            "api": "storage",
            "type": "multipart",
            "parallel_uploads": self.parallel,
            "parts": [{"part_number": n, "size": len(b)} for n, b in sorted(self.parts.items())],
            **self.meta,
        }
        if self.part_size is not None:
            data["part_size"] = self.part_size
        return data

    def _json(self, status: int, data: Any) -> tuple[int, dict[str, str], str]:
        return status, {"Content-Type": "application/json"}, json.dumps(data)

    def _init(self, request: requests.PreparedRequest) -> Any:
        self.inits.append(request)
        self.meta = json.loads(request.body or b"{}")
        return self._json(200, self.session())

    def _status(self, request: requests.PreparedRequest) -> Any:
        return self._json(200, self.session())

    def _put(self, request: requests.PreparedRequest) -> Any:
        number = int(str(request.url).split("part_number=")[1])
        if self.on_put is not None:
            self.on_put(number)
        with self.lock:
            self.puts.append(number)
            pending = self.faults.get(number)
            fault = pending.pop(0) if pending else None
        if fault == "drop":
            return requests.ConnectionError("connection dropped")
        if isinstance(fault, int):
            return self._json(fault, {"error_code": "fault", "message": "injected"})
        body = request.body or b""  # an empty part has no body at all
        assert isinstance(body, bytes)
        with self.lock:
            self.parts[number] = body
        return self._json(200, {"part_number": number, "size": len(body) + self.part_size_delta})

    def _complete(self, request: requests.PreparedRequest) -> Any:
        self.completes.append(request)
        content = b"".join(b for _, b in sorted(self.parts.items()))
        data = _file_object(
            {
                "id": "BIG",
                "name": self.meta.get("name"),
                "size": len(content) + self.final_size_delta,
            }
        )
        self.content = content
        return self._json(201, data)


BIG = bytes(range(35))  # 4 parts of 10 (the last has 5)


def test_multipart_serial_upload(account: Account, mocked: Any, tmp_path: pathlib.Path) -> None:
    server = MultipartServer(mocked)
    path = tmp_path / "big.bin"
    path.write_bytes(BIG)
    progress = Recorder()
    result = upload_file(account, path, multipart_threshold=20, progress=progress, overwrite=True)
    assert result.data["id"] == "BIG"
    assert server.content == BIG
    assert server.puts == [1, 2, 3, 4]
    (init,) = server.inits
    assert json.loads(init.body or b"") == {"parent_id": "root", "name": "big.bin", "size": 35}
    assert str(init.url).endswith("/storage/multipart?overwrite=true")
    assert init.headers["Idempotency-Key"]
    (complete,) = server.completes
    assert complete.headers["Idempotency-Key"]
    assert complete.headers["Idempotency-Key"] != init.headers["Idempotency-Key"]
    assert [d for d, _ in progress.calls] == [0, 10, 20, 30, 35]
    assert {t for _, t in progress.calls} == {35}


def test_serial_parts_are_read_ahead_while_one_is_sent(
    account: Account, mocked: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = MultipartServer(mocked)
    read: dict[int, threading.Event] = {n: threading.Event() for n in range(5)}
    real = transfer._Source.read_at

    def recording(self: Any, offset: int, length: int) -> bytes:
        data = real(self, offset, length)
        read[offset // 10].set()
        return data

    monkeypatch.setattr(transfer._Source, "read_at", recording)
    waited: list[bool] = []
    # While part n is being sent, part n + 1 is read (not after part n's answer).
    server.on_put = lambda number: waited.append(read[number].wait(10) if number < 4 else True)
    upload_file(account, io.BytesIO(BIG), name="p", multipart_threshold=1, max_workers=1)
    assert server.puts == [1, 2, 3, 4]
    assert waited == [True, True, True, True]
    assert server.content == BIG


def test_a_serial_part_that_cannot_be_read_interrupts_the_upload(
    account: Account, mocked: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = MultipartServer(mocked)
    real = transfer._Source.read_at

    def failing(self: Any, offset: int, length: int) -> bytes:
        if offset >= 20:
            raise TransferError("the source ended")
        return real(self, offset, length)

    monkeypatch.setattr(transfer._Source, "read_at", failing)
    with pytest.raises(UploadInterrupted, match="the source ended") as caught:
        upload_file(account, io.BytesIO(BIG), name="p", multipart_threshold=1, max_workers=1)
    assert server.puts == [1, 2]  # the parts read before are sent
    assert caught.value.done == 20
    assert server.completes == []


def test_multipart_parallel_upload(account: Account, mocked: Any) -> None:
    server = MultipartServer(mocked, parallel=True)
    # The first two parts wait for each other: this only passes if they really run in parallel.
    barrier = threading.Barrier(2, timeout=10)

    def on_put(number: int) -> None:
        if number in (1, 2):
            barrier.wait()

    server.on_put = on_put
    data = bytes(range(256)) * 2  # 52 parts
    progress = Recorder()
    upload_file(
        account,
        io.BytesIO(data),
        name="p.bin",
        multipart_threshold=1,
        max_workers=4,
        progress=progress,
    )
    assert server.content == data
    assert sorted(server.puts) == list(range(1, 53))
    done = [d for d, _ in progress.calls]
    assert done == sorted(done)
    assert done[-1] == len(data)


def test_parallel_flag_ignored_with_one_worker(account: Account, mocked: Any) -> None:
    server = MultipartServer(mocked, parallel=True)
    upload_file(account, io.BytesIO(BIG), name="p", multipart_threshold=1, max_workers=1)
    assert server.puts == [1, 2, 3, 4]


def test_multipart_from_non_seekable_stream(account: Account, mocked: Any) -> None:
    server = MultipartServer(mocked)
    upload_file(account, NonSeekable(BIG), multipart_threshold=20)
    assert server.content == BIG
    assert json.loads(server.inits[0].body or b"")["size"] == 35


def test_part_size_fallback_when_server_gives_none(account: Account, mocked: Any) -> None:
    server = MultipartServer(mocked, part_size=None)
    upload_file(account, io.BytesIO(BIG), name="p", multipart_threshold=1, part_size=20)
    assert server.puts == [1, 2]
    assert server.content == BIG


def test_dropped_part_is_sent_again(account: Account, mocked: Any, _no_sleep: list[float]) -> None:
    server = MultipartServer(mocked, faults={2: ["drop", "drop"]})
    upload_file(account, io.BytesIO(BIG), name="p", multipart_threshold=1)
    assert server.puts == [1, 2, 2, 2, 3, 4]
    assert server.content == BIG
    assert _no_sleep == [0.5, 1.0]  # bounded, growing pauses


def test_part_dropping_every_time_interrupts_upload(account: Account, mocked: Any) -> None:
    server = MultipartServer(mocked, faults={3: ["drop"] * 5})
    with pytest.raises(UploadInterrupted) as info:
        upload_file(account, io.BytesIO(BIG), name="p", multipart_threshold=1)
    error = info.value
    assert isinstance(error.__cause__, ConnectionException)
    assert (error.session_id, error.done, error.total) == ("S1", 20, 35)
    assert "session_id='S1'" in str(error)
    assert server.puts.count(3) == transfer.PART_ATTEMPTS
    assert server.completes == []


def test_interrupted_upload_resumes_sending_only_missing_parts(
    account: Account, mocked: Any
) -> None:
    server = MultipartServer(mocked, faults={3: [503]})
    with pytest.raises(UploadInterrupted) as info:
        upload_file(account, io.BytesIO(BIG), name="p", multipart_threshold=1)
    assert isinstance(info.value.__cause__, ServerException)
    assert server.puts == [1, 2, 3]
    server.puts.clear()
    progress = Recorder()
    result = upload_file(
        account, io.BytesIO(BIG), name="p", session_id=info.value.session_id, progress=progress
    )
    assert result.data["id"] == "BIG"
    assert server.puts == [3, 4]  # 1 and 2 were not sent again
    assert len(server.inits) == 1  # no new session
    assert server.content == BIG
    assert progress.calls[0] == (20, 35)
    assert progress.calls[-1] == (35, 35)


def test_resume_resends_parts_with_wrong_size(account: Account, mocked: Any) -> None:
    server = MultipartServer(mocked)
    server.meta = {"name": "p", "size": 35}
    server.parts = {1: BIG[:10], 2: b"truncated", 4: BIG[30:]}
    session = account.get("storage/multipart/S1")
    upload_file(account, io.BytesIO(BIG), name="p", session_id=session)  # a session resource
    assert server.puts == [2, 3]
    assert server.content == BIG


def test_resume_with_other_file_is_refused(account: Account, mocked: Any) -> None:
    server = MultipartServer(mocked)
    server.meta = {"name": "p", "size": 99}
    with pytest.raises(TransferError, match="is for 99 bytes"):
        upload_file(account, io.BytesIO(BIG), name="p", session_id="S1")
    assert server.puts == []


def test_session_without_id_is_refused(account: Account, mocked: Any) -> None:
    MultipartServer(mocked, session_id=None)
    with pytest.raises(TransferError, match="no id"):
        upload_file(account, io.BytesIO(BIG), name="p", multipart_threshold=1)


def test_part_size_reported_wrong_interrupts(account: Account, mocked: Any) -> None:
    MultipartServer(mocked, part_size_delta=-1)
    with pytest.raises(UploadInterrupted) as info:
        upload_file(account, io.BytesIO(BIG), name="p", multipart_threshold=1)
    assert isinstance(info.value.__cause__, SizeMismatchError)


def test_final_size_mismatch(account: Account, mocked: Any) -> None:
    MultipartServer(mocked, final_size_delta=1)
    with pytest.raises(SizeMismatchError) as info:
        upload_file(account, io.BytesIO(BIG), name="p", multipart_threshold=1)
    assert (info.value.expected, info.value.actual) == (35, 36)


def test_parallel_failure_stops_the_upload(account: Account, mocked: Any) -> None:
    server = MultipartServer(mocked, parallel=True, faults={1: [400]})
    with pytest.raises(UploadInterrupted) as info:
        upload_file(account, io.BytesIO(BIG * 10), name="p", multipart_threshold=1, max_workers=2)
    assert info.value.__cause__ is not None
    assert getattr(info.value.__cause__, "status", None) == 400
    assert server.completes == []


def test_empty_file_multipart_sends_one_empty_part(account: Account, mocked: Any) -> None:
    server = MultipartServer(mocked)
    upload_file(account, io.BytesIO(b""), name="empty", multipart_threshold=0)
    assert server.puts == [1]
    assert server.content == b""


def test_abort_upload(account: Account, mocked: Any) -> None:
    MultipartServer(mocked)
    abort_upload(account, "S1")
    assert mocked.calls[-1].request.method == "DELETE"
    assert mocked.calls[-1].request.url == f"{BASE}/storage/multipart/S1"


def test_ctrl_c_during_multipart_upload_keeps_the_session_id(
    account: Account, mocked: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = MultipartServer(mocked)

    def stop_after_first_part(done: int, total: int | None) -> None:
        if done >= 10:
            raise KeyboardInterrupt

    with caplog.at_level(logging.WARNING, logger="kloudless"):
        with pytest.raises(KeyboardInterrupt) as info:  # still a KeyboardInterrupt
            upload_file(
                account,
                io.BytesIO(BIG),
                name="p",
                multipart_threshold=1,
                max_workers=1,
                progress=stop_after_first_part,
            )
    assert getattr(info.value, "kloudless_session_id", None) == "S1"
    assert "session_id='S1'" in caplog.text
    assert server.completes == []
