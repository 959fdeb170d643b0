"""Regression tests for the review findings (P1-1 .. P2-12): each test names its item."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import sqlite3
import threading
import time
from typing import Any

import pytest
import requests
from werkzeug.test import Client

import kloudless
from kloudless.cli import main as cli_main
from kloudless.server import Settings, create_app
from kloudless.server.api import multipart as multipart_api
from kloudless.server.api import storage as storage_api
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials, bootstrap
from kloudless.server.connectors import local_storage
from kloudless.server.connectors.local_storage import LocalStorage
from kloudless.server.errors import ApiError
from kloudless.server.runner import ServerThread
from kloudless.server.spool import spool_to_temp
from kloudless.server.store import Store, now_iso
from kloudless.server.sweep import Sweeper, sweep

from .conftest import (
    BLOB_SIZE,
    BufferedClient,
    SettingsMaker,
    assert_error,
    blob_keys,
    cli_options,
    upload,
)

S = "/v1/accounts/me/storage"


def _session(client: Client, auth: dict[str, str], size: int = 8, name: str = "m.bin") -> str:
    response = client.post(f"{S}/multipart", headers=auth, json={"name": name, "size": size})
    assert response.status_code == 201, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def _put(client: Client, auth: dict[str, str], sid: str, number: int, data: bytes) -> Any:
    return client.put(f"{S}/multipart/{sid}?part_number={number}", headers=auth, data=data)


def _root_names(client: Client, auth: dict[str, str]) -> list[str]:
    body = client.get(f"{S}/folders/root/contents", headers=auth).get_json()
    return [o["name"] for o in body["objects"]]


# -- P1-1 multipart complete claims the session ---------------------------------------------------
def test_p1_1_claimed_session_refuses_complete_part_and_abort(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    sid = _session(client, auth)
    assert _put(client, auth, sid, 1, b"abcd").status_code == 200
    assert _put(client, auth, sid, 2, b"efgh").status_code == 200
    # What a running complete does first:
    app.store.execute("UPDATE multipart SET state = 'completing' WHERE id = ?", (sid,))
    assert_error(client.post(f"{S}/multipart/{sid}/complete", headers=auth), 409, "conflict")
    assert_error(_put(client, auth, sid, 1, b"zzzz"), 409, "conflict")
    body = assert_error(client.delete(f"{S}/multipart/{sid}", headers=auth), 409, "conflict")
    assert "being completed" in body["message"]
    assert os.path.isdir(os.path.join(app.settings.data_dir, "multipart", sid))
    app.store.execute("UPDATE multipart SET state = 'open' WHERE id = ?", (sid,))
    done = client.post(f"{S}/multipart/{sid}/complete", headers=auth)
    assert done.status_code == 201
    content = client.get(f"{S}/files/{done.get_json()['id']}/contents", headers=auth)
    assert content.get_data() == b"abcdefgh"  # the refused part did not replace part 1


def test_p1_1_failed_complete_reopens_the_session(client: Client, auth: dict[str, str]) -> None:
    sid = _session(client, auth)
    assert _put(client, auth, sid, 1, b"abcd").status_code == 200
    assert_error(
        client.post(f"{S}/multipart/{sid}/complete", headers=auth), 400, "invalid_parameters"
    )
    assert _put(client, auth, sid, 2, b"efgh").status_code == 200  # open again
    assert client.post(f"{S}/multipart/{sid}/complete", headers=auth).status_code == 201


def test_p1_1_parallel_completes_create_one_file(make_settings: SettingsMaker) -> None:
    server = ServerThread(make_settings(port=0, multipart_part_size=4)).start()
    try:
        assert server.credentials is not None
        headers = {"Authorization": f"Bearer {server.credentials.token}"}
        base = f"{server.base_url}{S}"
        sid = requests.post(
            f"{base}/multipart", headers=headers, json={"name": "p.bin", "size": 8}, timeout=10
        ).json()["id"]
        for number, data in ((1, b"abcd"), (2, b"efgh")):
            requests.put(
                f"{base}/multipart/{sid}?part_number={number}",
                headers=headers,
                data=data,
                timeout=10,
            ).raise_for_status()
        statuses: list[int] = []
        barrier = threading.Barrier(4, timeout=10)

        def complete() -> None:
            barrier.wait()
            answer = requests.post(f"{base}/multipart/{sid}/complete", headers=headers, timeout=10)
            statuses.append(answer.status_code)

        threads = [threading.Thread(target=complete) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert statuses.count(201) == 1, statuses
        assert all(s in (201, 404, 409) for s in statuses), statuses
        names = [
            o["name"]
            for o in requests.get(
                f"{base}/folders/root/contents", headers=headers, timeout=10
            ).json()["objects"]
        ]
        assert names.count("p.bin") == 1 and len(names) == 1
    finally:
        server.stop()


# -- P1-2 huge or out-of-range inputs -------------------------------------------------------------
def test_p1_2_out_of_range_inputs_are_4xx(client: Client, auth: dict[str, str]) -> None:
    big = "1" + "0" * 30
    assert_error(
        client.get(f"/v1/accounts/me/events?cursor={big}", headers=auth), 400, "invalid_parameters"
    )
    assert_error(client.get(f"/v1/accounts/me/events/{big}", headers=auth), 404, "not_found")
    fid = upload(client, auth, "a.txt", b"x").get_json()["id"]
    for expiration in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"):
        assert_error(
            client.post(
                f"{S}/links", headers=auth, json={"file_id": fid, "expiration": expiration}
            ),
            400,
            "invalid_parameters",
        )
    for after in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"):
        response = client.get(f"{S}/recent", headers=auth, query_string={"after": after})
        assert_error(response, 400, "invalid_parameters")
    ok = client.post(
        f"{S}/links", headers=auth, json={"file_id": fid, "expiration": "2999-01-01T00:00:00+01:00"}
    )
    assert ok.status_code == 201 and ok.get_json()["expiration"] == "2998-12-31T23:00:00Z"


# -- P1-3 copies do not hold the write transaction during the byte copy ---------------------------
def test_p1_3_copy_reads_bytes_outside_the_transaction(
    app: ServerApp, client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = client.post(f"{S}/folders", headers=auth, json={"name": "F", "parent_id": "root"})
    fid = folder.get_json()["id"]
    upload(client, auth, "a.bin", b"A" * 1000, parent=fid)
    sub = client.post(f"{S}/folders", headers=auth, json={"name": "G", "parent_id": fid})
    upload(client, auth, "b.bin", b"B" * 10, parent=sub.get_json()["id"])
    in_transaction: list[bool] = []
    real_copy = local_storage.shutil.copyfile

    def spy(src: str, dst: str) -> Any:
        in_transaction.append(app.store.conn.in_transaction)
        return real_copy(src, dst)

    monkeypatch.setattr(local_storage.shutil, "copyfile", spy)
    copied = client.post(f"{S}/folders/{fid}/copy", headers=auth, json={"parent_id": "root"})
    assert copied.status_code == 201 and copied.get_json()["name"] == "F (1)"
    # The blobs are hard-linked in the copy's transaction (a snapshot): no byte is copied
    # under the write lock, nor at all where the filesystem has hard links.
    assert in_transaction == []
    listing = client.get(
        f"{S}/folders/{copied.get_json()['id']}/contents?recursive=true", headers=auth
    ).get_json()
    files = {o["name"]: o for o in listing["objects"] if o["type"] == "file"}
    assert set(files) == {"a.bin", "b.bin"}
    data = client.get(f"{S}/files/{files['b.bin']['id']}/contents", headers=auth).get_data()
    assert data == b"B" * 10


def test_p1_3_failed_copy_leaves_no_temp_files(
    app: ServerApp, client: Client, auth: dict[str, str], creds: Credentials, monkeypatch: Any
) -> None:
    fid = upload(client, auth, "a.bin", b"A" * BLOB_SIZE).get_json()["id"]

    def fail(*args: Any, **kwargs: Any) -> str:
        raise ApiError(409, "naming_conflict", "boom")

    monkeypatch.setattr(LocalStorage, "_insert_copies", fail)
    assert_error(
        client.post(f"{S}/files/{fid}/copy", headers=auth, json={"parent_id": "root"}),
        409,
        "naming_conflict",
    )
    base = os.path.join(app.settings.data_dir, "accounts", str(creds.account_id))
    assert os.listdir(os.path.join(base, "tmp")) == []
    assert len(blob_keys(app, creds.account_id)) == 1


# -- P1-4 deletes are permanent for local ---------------------------------------------------------
def test_p1_4_delete_removes_blob_and_row(
    app: ServerApp, client: Client, auth: dict[str, str], creds: Credentials
) -> None:
    fid = upload(client, auth, "t.bin", b"q" * BLOB_SIZE).get_json()["id"]
    folder = client.post(f"{S}/folders", headers=auth, json={"name": "D", "parent_id": "root"})
    upload(client, auth, "in.bin", b"z" * (BLOB_SIZE + 10), parent=folder.get_json()["id"])
    assert len(blob_keys(app, creds.account_id)) == 2
    assert client.delete(f"{S}/files/{fid}", headers=auth).status_code == 204
    assert len(blob_keys(app, creds.account_id)) == 1
    assert client.get(f"{S}/quota", headers=auth).get_json()["used"] == BLOB_SIZE + 10
    assert_error(client.delete(f"{S}/files/{fid}?permanent=true", headers=auth), 404, "not_found")
    folder_id = folder.get_json()["id"]
    assert (
        client.delete(
            f"{S}/folders/{folder_id}?recursive=true&permanent=false", headers=auth
        ).status_code
        == 204
    )
    assert blob_keys(app, creds.account_id) == []
    assert app.store.one("SELECT COUNT(*) AS n FROM objects")["n"] == 0  # type: ignore[index]


# -- P1-5 host check, implicit-flow redirects, CLI ------------------------------------------------
def test_p1_5_unknown_host_refused(client: Client, auth: dict[str, str]) -> None:
    body = assert_error(
        client.get("/v1/accounts/me", headers={**auth, "Host": "attacker.example:8002"}),
        400,
        "bad_request",
    )
    assert body["message"].startswith("Unknown host")
    for host in ("localhost:8002", "127.0.0.1", "[::1]:8002", "LOCALHOST"):
        assert client.get("/v1/accounts/me", headers={**auth, "Host": host}).status_code == 200


@pytest.mark.parametrize(
    ("extra", "host", "status"),
    [
        ({"allowed_hosts": ["files.example"]}, "files.example:8002", 200),
        ({"allowed_hosts": ["*"]}, "anything.example", 200),
        ({"public_base_url": "https://api.example.org/"}, "api.example.org", 200),
        ({"host": "0.0.0.0"}, "192.0.2.7:8002", 200),
        ({"host": "0.0.0.0"}, "rebound.example", 400),
    ],
)
def test_p1_5_allowed_hosts(
    make_settings: SettingsMaker, extra: dict[str, Any], host: str, status: int
) -> None:
    app = create_app(make_settings(**extra))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        answer = BufferedClient(app).get(
            "/v1/accounts/me", headers={"Authorization": f"Bearer {creds.token}", "Host": host}
        )
        assert answer.status_code == status
    finally:
        app.close()


def test_p1_5_token_flow_needs_loopback_or_registered_redirect(
    app: ServerApp, client: Client, creds: Credentials, capsys: pytest.CaptureFixture[str]
) -> None:
    def page(uri: str) -> Any:
        query = {"client_id": creds.app_id, "response_type": "token", "redirect_uri": uri}
        return client.get("/v1/oauth", query_string=query)

    body = assert_error(page("https://attacker.example/cb"), 400, "invalid_parameters")
    assert "loopback" in body["message"]
    assert page("http://localhost:8020/cb").status_code == 200
    assert page("http://127.0.0.1/cb").status_code == 200
    code_flow = client.get(
        "/v1/oauth",
        query_string={"client_id": creds.app_id, "redirect_uri": "https://app.example/cb"},
    )
    # Both flows: without registered URIs only loopback redirects (issue #25: a code flow to
    # any URI was an open redirect, and Deny redirected anywhere).
    assert_error(code_flow, 400, "invalid_parameters")
    where = cli_options(app.settings)
    assert cli_main(["apps", "redirect-uri", "add", "https://app.example/cb", *where]) == 0
    assert "Registered redirect URI" in capsys.readouterr().out
    assert cli_main(["apps", "redirect-uri", "list", *where]) == 0
    assert capsys.readouterr().out.split() == ["https://app.example/cb"]
    assert page("https://app.example/cb").status_code == 200
    # Once URIs are registered, only those are accepted (loopback too).
    assert_error(page("http://localhost:8020/cb"), 400, "invalid_parameters")


# -- P2-2 /v2 alias -------------------------------------------------------------------------------
def test_p2_2_v2_paths_are_served_by_v1(
    client: Client, auth: dict[str, str], creds: Credentials
) -> None:
    v1 = client.get("/v1/accounts/me", headers=auth)
    v2 = client.get("/v2/accounts/me", headers=auth)
    assert v2.status_code == 200 and v2.get_json()["id"] == v1.get_json()["id"] == creds.account_id
    assert (
        client.get("/v2/accounts/me/storage/folders/root/contents", headers=auth).status_code == 200
    )
    assert_error(client.get("/v3/accounts/me", headers=auth), 404, "not_found")


def test_p2_2_sdk_account_get_api_version_2(make_settings: SettingsMaker) -> None:
    server = ServerThread(make_settings(port=0)).start()
    try:
        assert server.credentials is not None
        with kloudless.Account(token=server.credentials.token, base_url=server.base_url) as account:
            response = account.get(api_version=2)  # the original docs' example, unchanged
            assert response.data["id"] == server.credentials.account_id
    finally:
        server.stop()


# -- P2-4 / P2-5 downloads ------------------------------------------------------------------------
def test_p2_4_multi_range_answers_full_body(client: Client, auth: dict[str, str]) -> None:
    fid = upload(client, auth, "r.bin", b"0123456789").get_json()["id"]
    response = client.get(f"{S}/files/{fid}/contents", headers={**auth, "Range": "bytes=0-1,4-5"})
    assert response.status_code == 200 and response.get_data() == b"0123456789"
    single = client.get(f"{S}/files/{fid}/contents", headers={**auth, "Range": "bytes=2-4"})
    assert single.status_code == 206 and single.get_data() == b"234"


def test_p2_5_text_content_type_unchanged(client: Client, auth: dict[str, str]) -> None:
    fid = upload(client, auth, "notes.txt", b"hello").get_json()["id"]
    response = client.get(f"{S}/files/{fid}/contents", headers=auth)
    assert response.headers["Content-Type"] == "text/plain"


# -- P2-6 timestamps ------------------------------------------------------------------------------
def test_p2_6_fixed_timestamp_format_and_parsed_comparison(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", now_iso())
    fid = upload(client, auth, "old.bin", b"x").get_json()["id"]
    # A value in an older format (no fraction): as strings it sorts after ".5Z".
    app.store.execute("UPDATE objects SET modified = ? WHERE id = ?", ("2020-01-01T00:00:00Z", fid))
    later = client.get(
        f"{S}/recent", headers=auth, query_string={"after": "2020-01-01T00:00:00.5Z"}
    )
    assert later.get_json()["count"] == 0
    earlier = client.get(
        f"{S}/recent", headers=auth, query_string={"after": "2019-12-31T23:59:59.5Z"}
    )
    assert earlier.get_json()["count"] == 1


def test_p2_6_link_expiry_compares_instants(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    fid = upload(client, auth, "l.bin", b"x").get_json()["id"]
    link = client.post(f"{S}/links", headers=auth, json={"file_id": fid, "direct": True}).get_json()
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%S+00:00"
    )
    app.store.execute("UPDATE links SET expiration = ? WHERE id = ?", (soon, link["id"]))
    assert client.get(f"/l/{link['id']}").status_code == 200
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%S+01:00"
    )
    app.store.execute("UPDATE links SET expiration = ? WHERE id = ?", (past, link["id"]))
    assert_error(client.get(f"/l/{link['id']}"), 404, "not_found")


# -- P2-7 sweeping stale state --------------------------------------------------------------------
def test_p2_7_sweep_removes_only_stale_state(
    app: ServerApp, client: Client, auth: dict[str, str], creds: Credentials
) -> None:
    app.sweeper.wait()  # the start-up sweep is done
    store = app.store
    old = "2000-01-01T00:00:00.000000Z"
    for task_id, state, modified in (
        ("old-done", "SUCCESS", old),
        ("old-pending", "PENDING", old),
        ("new-done", "FAILURE", now_iso()),
    ):
        store.execute(
            "INSERT INTO tasks (id, account_id, state, created, modified) VALUES (?, ?, ?, ?, ?)",
            (task_id, creds.account_id, state, old, modified),
        )
    idle = _session(client, auth, name="idle.bin")
    assert _put(client, auth, idle, 1, b"abcd").status_code == 200
    store.execute("UPDATE multipart SET modified = ? WHERE id = ?", (old, idle))
    fresh = _session(client, auth, name="fresh.bin")
    tmp = os.path.join(app.settings.data_dir, "accounts", str(creds.account_id), "tmp")
    os.makedirs(tmp, exist_ok=True)
    stale_file, fresh_file = os.path.join(tmp, "up-stale"), os.path.join(tmp, "up-fresh")
    for path in (stale_file, fresh_file):
        with open(path, "wb") as out:
            out.write(b"x")
    os.utime(stale_file, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    for code_hash, expires in (("expired", time.time() - 10), ("valid", time.time() + 300)):
        store.execute(
            "INSERT INTO oauth_codes VALUES (?, ?, ?, ?, ?, ?, 0)",
            (code_hash, creds.app_id, creds.account_id, "http://localhost/cb", "all", expires),
        )
    counts = sweep(app)
    assert counts == {
        "tasks": 1,
        "multipart": 1,
        "temp_files": 1,
        "oauth_codes": 1,
        "blobs": 0,
        "part_folders": 0,
        "orphan_tasks": 0,
        "orphan_sessions": 0,
    }
    assert [r["id"] for r in store.all("SELECT id FROM tasks ORDER BY id")] == [
        "new-done",
        "old-pending",
    ]
    assert [r["id"] for r in store.all("SELECT id FROM multipart")] == [fresh]
    assert not os.path.exists(os.path.join(app.settings.data_dir, "multipart", idle))
    assert os.listdir(tmp) == ["up-fresh"]
    assert [r["code_hash"] for r in store.all("SELECT code_hash FROM oauth_codes")] == ["valid"]
    assert not any(sweep(app).values())


def test_p2_7_sweeper_runs_at_most_once_per_interval(app: ServerApp) -> None:
    sweeper = Sweeper(app, interval=3600)
    assert sweeper.maybe_run() is True
    assert sweeper.maybe_run() is False
    assert app.sweeper.maybe_run() is False  # the app's own ran at start-up


# -- P2-9 failed authentication is rate-limited ---------------------------------------------------
@pytest.mark.usefixtures("still_rate_window")
def test_p2_9_auth_failures_answer_429(make_settings: SettingsMaker) -> None:
    app = create_app(make_settings(auth_failures_per_minute=3))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        client = BufferedClient(app)
        for index in range(3):
            bad = client.get("/v1/accounts/me", headers={"Authorization": f"Bearer wrong{index}"})
            assert bad.status_code == 401
        limited = client.get("/v1/accounts/me", headers={"Authorization": "Bearer wrong"})
        assert_error(limited, 429, "too_many_requests")
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        good = {"Authorization": f"Bearer {creds.token}"}
        assert client.get("/v1/accounts/me", headers=good).status_code == 429  # same address
        verify = client.get("/v1/oauth/token", headers=good)
        assert verify.status_code == 429
        other = client.get(
            "/v1/accounts/me", headers=good, environ_base={"REMOTE_ADDR": "127.0.0.2"}
        )
        assert other.status_code == 200
    finally:
        app.close()


def test_p2_9_on_by_default() -> None:
    assert Settings().auth_failures_per_minute == 20


# -- P2-10 public link ids are redacted in the request log ----------------------------------------
def test_p2_10_link_id_not_logged(
    client: Client, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    fid = upload(client, auth, "l.bin", b"x").get_json()["id"]
    link = client.post(f"{S}/links", headers=auth, json={"file_id": fid}).get_json()
    caplog.set_level(logging.INFO, logger="kloudless.server")
    assert client.get(f"/l/{link['id']}?download=1").status_code == 200
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/l/[REDACTED]" in text and link["id"] not in text


# -- P2-11 dead code ------------------------------------------------------------------------------
def test_p2_11_dead_code_removed(client: Client, auth: dict[str, str]) -> None:
    assert not hasattr(storage_api, "account_storage")
    assert not hasattr(LocalStorage, "remove_all")
    assert_error(client.delete(f"{S}/folders/root", headers=auth), 403, "forbidden")


# -- P2-12 activity recorded inside the change's transaction --------------------------------------
def test_p2_12_event_and_change_commit_together(
    app: ServerApp, client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, bool]] = []

    def listener(account_id: int, cursor: int) -> None:
        # Runs after the commit: another connection already sees the event.
        other = Store(app.settings.db_path, app.settings.database_url)
        try:
            row = other.one("SELECT id FROM activity WHERE id = ?", (cursor,))
        finally:
            other.close()
        seen.append((cursor, row is not None))

    app.activity_listeners.append(listener)
    upload(client, auth, "one.txt", b"1")
    assert len(seen) == 1 and seen[0][1] is True

    def broken(*args: Any, **kwargs: Any) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(app.store, "append_activity", broken)
    assert client.post(f"{S}/folders", headers=auth, json={"name": "X"}).status_code == 500
    assert "X" not in _root_names(client, auth)  # no change without its event
    assert len(seen) == 1  # and no notification for a rolled-back change


def test_p2_12_event_order_matches_change_order(client: Client, auth: dict[str, str]) -> None:
    fid = upload(client, auth, "a.txt", b"1").get_json()["id"]
    client.patch(f"{S}/files/{fid}", headers=auth, json={"name": "b.txt"})
    client.put(f"{S}/files/{fid}", headers=auth, data=b"2")
    upload(client, auth, "b.txt", b"3", overwrite="true")
    client.post(f"{S}/files/{fid}/copy", headers=auth, json={"parent_id": "root"})
    client.delete(f"{S}/files/{fid}", headers=auth)
    events = client.get("/v1/accounts/me/events?cursor=0", headers=auth).get_json()["objects"]
    assert [e["type"] for e in events] == ["add", "rename", "update", "update", "copy", "delete"]


# -- P2-1 one spooling helper ---------------------------------------------------------------------
def test_p2_1_spool_helper_shared_and_cleans_up(tmp_path: Any) -> None:
    assert multipart_api.spool_to_temp is spool_to_temp
    path, size, digest = spool_to_temp(
        io.BytesIO(b"abc"), str(tmp_path), "up-", 3, lambda: ApiError(413, "too_large", "x")
    )
    with open(path, "rb") as written:
        assert size == 3 and written.read() == b"abc" and len(digest) == 64
    with pytest.raises(ApiError):
        spool_to_temp(
            io.BytesIO(b"abcd"), str(tmp_path), "up-", 3, lambda: ApiError(413, "too_large", "x")
        )
    assert os.listdir(tmp_path) == [os.path.basename(path)]


def test_p2_1_over_long_part_refused(client: Client, auth: dict[str, str]) -> None:
    sid = _session(client, auth)
    response = client.put(
        f"{S}/multipart/{sid}?part_number=1",
        headers=auth,
        input_stream=io.BytesIO(b"abcdef"),
    )
    assert_error(response, 400, "invalid_parameters")
    json.dumps(response.get_json())
