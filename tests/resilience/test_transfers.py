"""Transfers interrupted on purpose: a multipart upload resumed from its session id (only the
missing parts are sent) and a download resumed with ``Range`` after its body was cut."""

from __future__ import annotations

import hashlib
import io
import os
import random
from typing import Any

import pytest

from kloudless import transfer
from kloudless.transfer import UploadInterrupted

from .conftest import PART_SIZE, Server, account
from .faults import FaultProxy


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def part_number(target: str) -> int | None:
    if "part_number=" not in target:
        return None
    return int(target.split("part_number=", 1)[1].split("&", 1)[0])


def direct_bytes(server: Server, file_id: str) -> bytes:
    with account(server.base_url, server.creds.token) as direct:
        out = io.BytesIO()
        direct.get(f"storage/files/{file_id}").download(out)
        return out.getvalue()


@pytest.mark.parametrize("workers", [1, 4])
def test_multipart_upload_resumed_sends_only_missing_parts(
    server: Server, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(transfer, "_sleep", lambda seconds: None)
    data = random.Random(7).randbytes(4 * PART_SIZE + 1234)  # 5 parts, the last one short
    name = f"resumed-{workers}.bin"
    # Kill every connection that carries part 3 or later while its body is being sent.
    proxy.override = lambda method, target: (
        "drop_request" if method == "PUT" and (part_number(target) or 0) >= 3 else None
    )
    with account(proxy.base_url, server.creds.token, max_retries=1) as acc:
        with pytest.raises(UploadInterrupted) as info:
            acc.upload(
                io.BytesIO(data), name=name, max_workers=workers, multipart_threshold=PART_SIZE
            )
        error = info.value
        assert error.total == len(data) and error.done == 2 * PART_SIZE
        with account(server.base_url, server.creds.token) as direct:
            session = direct.get(f"storage/multipart/{error.session_id}").data
        assert [p["part_number"] for p in session["parts"]] == [1, 2]
        assert [p["size"] for p in session["parts"]] == [PART_SIZE, PART_SIZE]
        assert {part_number(s.target) for s in proxy.log if s.fault == "drop_request"} >= {3}

        proxy.override = lambda method, target: None
        mark = len(proxy.log)
        progress: list[tuple[int, int | None]] = []
        resumed = acc.upload(
            io.BytesIO(data),
            name=name,
            session_id=error.session_id,
            max_workers=workers,
            progress=lambda done, total: progress.append((done, total)),
        )
    sent = sorted(part_number(s.target) or 0 for s in proxy.log[mark:] if s.method == "PUT")
    assert sent == [3, 4, 5]  # parts 1 and 2 were not sent again
    assert not any(s.method == "POST" and s.target.endswith("/multipart") for s in proxy.log[mark:])
    assert progress[0] == (2 * PART_SIZE, len(data)) and progress[-1] == (len(data), len(data))
    assert resumed.data["size"] == len(data) and resumed.data["name"] == name
    assert sha(direct_bytes(server, resumed.data["id"])) == sha(data)


def test_download_resumed_with_range_after_cut_bodies(
    server: Server, proxy: FaultProxy, tmp_path: Any
) -> None:
    data = random.Random(8).randbytes(200 * 1024)
    with account(server.base_url, server.creds.token) as direct:
        file_id = direct.upload(io.BytesIO(data), name="download-me.bin").data["id"]
    cuts = iter(["cut", "cut"])
    proxy.override = lambda method, target: (
        next(cuts, None) if target.endswith("/contents") else None
    )
    dest = tmp_path / "out.bin"
    with account(proxy.base_url, server.creds.token) as acc:
        resource = acc.get(f"storage/files/{file_id}")
        path = resource.download(str(dest), chunk_size=4096)
    assert path == str(dest)
    assert sha(dest.read_bytes()) == sha(data)
    assert os.listdir(tmp_path) == ["out.bin"]  # no temporary file left behind
    gets = [s for s in proxy.log if s.path.endswith("/contents")]
    assert [s.fault for s in gets] == ["cut", "cut", "pass"]
    # Each resume asks only for the bytes still missing. A cut keeps half the body rounded
    # down to 4 KiB (the proxy's cut_align, equal to the chunk size).
    first = 100 * 1024
    second = first + (len(data) - first) // 2 // 4096 * 4096
    assert "range" not in gets[0].headers
    assert gets[1].headers["range"] == f"bytes={first}-"
    assert gets[2].headers["range"] == f"bytes={second}-"


def test_cut_download_without_resume_leaves_no_file(
    server: Server, proxy: FaultProxy, tmp_path: Any
) -> None:
    data = random.Random(9).randbytes(64 * 1024)
    with account(server.base_url, server.creds.token) as direct:
        file_id = direct.upload(io.BytesIO(data), name="no-resume.bin").data["id"]
    proxy.override = lambda method, target: "cut" if target.endswith("/contents") else None
    dest = tmp_path / "out.bin"
    with account(proxy.base_url, server.creds.token) as acc:
        resource = acc.get(f"storage/files/{file_id}")
        with pytest.raises(Exception) as info:
            resource.download(str(dest), chunk_size=4096, resume=False)
    assert isinstance(info.value, (transfer.TransferError, *transfer._DROPPED))
    assert os.listdir(tmp_path) == []  # neither the final name nor a temporary file
