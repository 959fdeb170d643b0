"""Concurrency limits for uploads and downloads, per credential and per client address: past a
limit a transfer is refused with a JSON 429 and ``Retry-After`` (before an upload's body is
read), other credentials and addresses keep going, and a slot is free again once its transfer
ends, also when its client just went away.

Transfers are held open with raw sockets: a download that is never read (its answer stalls in
the socket buffers) and an upload whose headers were sent without its body.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.test import Client

from kloudless.server import Settings, create_app
from kloudless.server.errors import ApiError
from kloudless.server.transfer_limits import UPLOAD, TransferLimits, credential_key

from .conftest import (
    Hostile,
    assert_json_error,
    read_response,
    second_loopback_address,
    start_server,
    wait_until,
)

SIZE = 16 * 1024 * 1024  # far more than socket buffers hold: the download stays open


@pytest.fixture
def limited(tmp_path: Any) -> Iterator[Hostile]:
    server = start_server(
        str(tmp_path / "data"), transfers_per_credential=2, transfers_per_address=3
    )
    assert server.credentials is not None
    try:
        yield Hostile(server.base_url, server.port, server.credentials, server)
    finally:
        server.stop()


def _stalled_download(port: int, path: str, token: str | None) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode())
    return sock


def _stalled_upload(port: int, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    metadata = json.dumps({"name": f"up-{os.urandom(4).hex()}.bin", "parent_id": "root"})
    sock.sendall(
        (
            "POST /v1/accounts/me/storage/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nX-Kloudless-Metadata: {metadata}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
        ).encode()
        + b"x" * 1000  # a start, then nothing
    )
    return sock


def _second_token(hostile: Hostile) -> str:
    store = hostile.thread.app.store
    account = store.create_account(hostile.creds.app_id, "local", "second")
    return str(store.create_token(hostile.creds.app_id, account))


def _refused(response: requests.Response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error_code"] == "too_many_requests" and "concurrent" in body["message"]
    assert response.headers["Retry-After"] == "1"


def test_downloads_are_limited_per_credential_and_per_address(limited: Hostile) -> None:
    file_id = limited.upload("big.bin", b"\0" * SIZE)["id"]
    path = f"/v1/accounts/me/storage/files/{file_id}/contents"
    token = limited.creds.token
    other = _second_token(limited)
    other_id = requests.post(
        f"{limited.base_url}/v1/accounts/me/storage/files",
        headers={
            "Authorization": f"Bearer {other}",
            "X-Kloudless-Metadata": json.dumps({"name": "o.bin", "parent_id": "root"}),
        },
        data=b"\0" * SIZE,
        timeout=60,
    ).json()["id"]
    other_path = f"/v1/accounts/me/storage/files/{other_id}/contents"
    url = limited.base_url
    held = [_stalled_download(limited.port, path, token) for _ in range(2)]
    try:
        for sock in held:  # each answer has started: its slot is taken
            assert sock.recv(12).startswith(b"HTTP/1.1 200")
        # A third download with the same token: refused. Other requests still work.
        _refused(requests.get(url + path, headers=limited.auth, timeout=30))
        assert requests.get(f"{url}/v1/accounts/me", headers=limited.auth, timeout=30).ok
        # Another credential from the same address gets the address's third slot ...
        held.append(_stalled_download(limited.port, other_path, other))
        assert held[-1].recv(12).startswith(b"HTTP/1.1 200")
        # ... and then the address is full, whatever the credential.
        _refused(requests.get(url + other_path, headers={"Authorization": f"Bearer {other}"}))
        source = second_loopback_address()
        if source is not None:  # another address is not affected by this one's downloads
            with socket.create_connection(("127.0.0.1", limited.port), 30, (source, 0)) as sock:
                sock.sendall(
                    f"HEAD {other_path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {other}\r\nConnection: close\r\n\r\n".encode()
                )
                assert sock.recv(12).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()

    # The clients went away: their slots come free (bounded wait, generous for a loaded box).
    def downloads_again() -> bool:
        response = requests.get(url + path, headers=limited.auth, timeout=60)
        return response.status_code == 200 and len(response.content) == SIZE

    wait_until(downloads_again, 120, "the slots of closed downloads are free again")


def test_uploads_are_refused_before_their_body_past_the_limit(limited: Hostile) -> None:
    token = limited.creds.token
    held = [_stalled_upload(limited.port, token) for _ in range(2)]
    try:
        wait_until(
            lambda: limited.thread.app.transfer_limits._counts,  # the preflights took slots
            60,
            "the two uploads hold their slots",
        )
        sock = _stalled_upload(limited.port, token)
        try:
            status, headers, body = read_response(sock, 30)  # answered without the body
            error = assert_json_error(status, headers, body, 429)
            assert error["error_code"] == "too_many_requests"
            assert headers["retry-after"] == "1"
        finally:
            sock.close()
        # Downloads are counted apart from uploads.
        assert requests.get(
            f"{limited.base_url}/v1/accounts/me/storage/folders/root/contents",
            headers=limited.auth,
            timeout=30,
        ).ok
    finally:
        for sock in held:
            sock.close()

    def uploads_again() -> bool:
        response = requests.post(
            f"{limited.base_url}/v1/accounts/me/storage/files",
            headers={
                **limited.auth,
                "X-Kloudless-Metadata": json.dumps({"name": "after.bin", "parent_id": "root"}),
            },
            data=b"ok",
            timeout=60,
        )
        return response.status_code == 201

    wait_until(uploads_again, 120, "the slots of abandoned uploads are free again")


def test_without_the_http_server_the_app_holds_the_upload_slot_while_it_runs(
    tmp_path: Any,
) -> None:
    """Under another WSGI server (here the test client) no preflight runs: the app takes the
    slot itself, for the handler's run, and frees it afterwards."""
    from kloudless.server.bootstrap import bootstrap

    app = create_app(Settings(data_dir=str(tmp_path / "d"), transfers_per_credential=1))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        client = Client(app)
        auth = f"Bearer {creds.token}"
        headers = {
            "Authorization": auth,
            "X-Kloudless-Metadata": json.dumps({"name": "a.bin", "parent_id": "root"}),
        }
        for _ in range(2):  # one at a time: each frees its slot
            url = "/v1/accounts/me/storage/files?overwrite=true"
            assert client.post(url, headers=headers, data=b"x").status_code == 201
        release = app.transfer_limits.acquire(UPLOAD, credential_key(auth), "10.0.0.1")
        try:
            refused = client.post("/v1/accounts/me/storage/files", headers=headers, data=b"x")
            assert refused.status_code == 429
            assert refused.get_json()["error_code"] == "too_many_requests"
        finally:
            release()
        assert client.post(url, headers=headers, data=b"x").status_code == 201
    finally:
        app.close()


def test_transfer_limits_count_each_kind_and_key_apart() -> None:
    limits = TransferLimits(per_credential=1, per_address=2)
    first = limits.acquire(UPLOAD, "cred-a", "1.2.3.4")
    with pytest.raises(ApiError) as refused:
        limits.acquire(UPLOAD, "cred-a", "5.6.7.8")
    assert refused.value.status == 429
    download = limits.acquire("download", "cred-a", "1.2.3.4")  # another kind
    second = limits.acquire(UPLOAD, "cred-b", "1.2.3.4")
    with pytest.raises(ApiError):
        limits.acquire(UPLOAD, "cred-c", "1.2.3.4")  # the address is full
    first()
    first()  # a second release changes nothing
    again = limits.acquire(UPLOAD, "cred-a", "9.9.9.9")
    for release in (download, second, again):
        release()
    assert limits._counts == {}
    unlimited = TransferLimits(per_credential=0, per_address=0)
    assert all(unlimited.acquire(UPLOAD, "x", "y") for _ in range(100))
    assert credential_key(None) is None and credential_key("Bearer t") != "Bearer t"


def test_serve_takes_the_limits_from_options_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from kloudless.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.transfers_per_credential, args.transfers_per_address) == (8, 32)
    monkeypatch.setenv("KLOUDLESS_TRANSFERS_PER_CREDENTIAL", "3")
    monkeypatch.setenv("KLOUDLESS_TRANSFERS_PER_ADDRESS", "0")
    args = build_parser().parse_args(["serve"])
    assert (args.transfers_per_credential, args.transfers_per_address) == (3, 0)
    args = build_parser().parse_args(["serve", "--transfers-per-credential", "5"])
    assert args.transfers_per_credential == 5
    monkeypatch.setenv("KLOUDLESS_TRANSFERS_PER_ADDRESS", "many")
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve"])
    assert exited.value.code == 2
    assert "not a whole number" in capsys.readouterr().err
    assert Settings().transfers_per_credential == 8 and Settings().transfers_per_address == 32
