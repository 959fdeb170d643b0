"""Per-account storage quotas: reported by ``storage/quota``, enforced with 507 (before the body
is read when its size is known, and inside the write's transaction), per account or by default."""

from __future__ import annotations

import json
import os

import requests

from kloudless.server import quota

from .conftest import Hostile, assert_json_error, connect, read_response, start_server

LIMIT = 1_000_000


def _quota(hostile: Hostile) -> dict:
    response = requests.get(
        f"{hostile.base_url}/v1/accounts/me/storage/quota", headers=hostile.auth, timeout=30
    )
    assert response.status_code == 200
    data: dict = response.json()
    return data


def _post(hostile: Hostile, name: str, data, headers: dict | None = None) -> requests.Response:
    return requests.post(
        f"{hostile.base_url}/v1/accounts/me/storage/files",
        headers={
            **hostile.auth,
            "X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": "root"}),
            **(headers or {}),
        },
        data=data,
        timeout=30,
    )


def test_quota_is_reported_and_enforced(hostile: Hostile) -> None:
    app = hostile.thread.app
    assert _quota(hostile)["total"] is None  # unlimited by default
    quota.set_limit(app.store, hostile.creds.account_id, LIMIT)
    assert _quota(hostile)["total"] == LIMIT

    first = hostile.upload("a.bin", os.urandom(600_000))
    assert _quota(hostile)["used"] == 600_000

    # Known size: refused on the headers, before the body is read.
    with connect(hostile.port) as sock:
        sock.sendall(
            b"POST /v1/accounts/me/storage/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {hostile.creds.token}\r\n".encode()
            + b'X-Kloudless-Metadata: {"name": "b.bin", "parent_id": "root"}\r\n'
            + b"Content-Length: 600000\r\n\r\n"
        )
        status, headers, body = read_response(sock)
    data = assert_json_error(status, headers, body, 507)
    assert data["error_code"] == "insufficient_storage"

    # Unknown size (chunked): refused by the write itself, nothing stored.
    refused = _post(hostile, "c.bin", iter([os.urandom(300_000), os.urandom(300_000)]))
    assert refused.status_code == 507 and refused.json()["error_code"] == "insufficient_storage"

    # A copy that does not fit is refused too.
    copy = requests.post(
        f"{hostile.base_url}/v1/accounts/me/storage/files/{first['id']}/copy",
        headers=hostile.auth,
        json={"parent_id": "root", "name": "copy.bin"},
        timeout=30,
    )
    assert copy.status_code == 507
    assert _quota(hostile)["used"] == 600_000

    # Freeing space lets writes in again; a smaller file fits.
    deleted = requests.delete(
        f"{hostile.base_url}/v1/accounts/me/storage/files/{first['id']}",
        headers=hostile.auth,
        timeout=30,
    )
    assert deleted.status_code == 204
    assert _post(hostile, "d.bin", os.urandom(900_000)).status_code == 201
    assert _quota(hostile)["used"] == 900_000

    # Back to the (unlimited) default.
    quota.set_limit(app.store, hostile.creds.account_id, None, default=True)
    assert _quota(hostile)["total"] is None
    assert _post(hostile, "e.bin", os.urandom(600_000)).status_code == 201


def test_the_server_default_quota_applies_to_every_local_account(tmp_path) -> None:
    server = start_server(str(tmp_path / "data"), account_quota_bytes=100_000)
    try:
        assert server.credentials is not None
        auth = {"Authorization": f"Bearer {server.credentials.token}"}
        got = requests.get(f"{server.base_url}/v1/accounts/me/storage/quota", headers=auth)
        assert got.json()["total"] == 100_000
        meta = json.dumps({"name": "x.bin", "parent_id": "root"})
        too_big = requests.post(
            f"{server.base_url}/v1/accounts/me/storage/files",
            headers={**auth, "X-Kloudless-Metadata": meta},
            data=os.urandom(100_001),
            timeout=30,
        )
        assert too_big.status_code == 507
        fits = requests.post(
            f"{server.base_url}/v1/accounts/me/storage/files",
            headers={**auth, "X-Kloudless-Metadata": meta},
            data=os.urandom(100_000),
            timeout=30,
        )
        assert fits.status_code == 201
    finally:
        server.stop()


def test_kloudless_accounts_quota_sets_and_shows_a_quota(tmp_path, capsys) -> None:
    from kloudless.cli import main

    data_dir = str(tmp_path / "data")
    start_server(data_dir).stop()  # creates the data dir and account 1
    assert main(["accounts", "quota", "1", "5000", "--data-dir", data_dir]) == 0
    assert "quota 5000 bytes" in capsys.readouterr().out
    server = start_server(data_dir)
    try:
        assert server.app.store is not None
        limit = quota.limit_for(server.app.store, server.app.settings, 1)
        assert limit == 5000
    finally:
        server.stop()
    assert main(["accounts", "quota", "1", "unlimited", "--data-dir", data_dir]) == 0
    assert "unlimited" in capsys.readouterr().out
    assert main(["accounts", "quota", "1", "lots", "--data-dir", data_dir]) == 2
