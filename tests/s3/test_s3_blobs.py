"""The S3 blob store (``--blob-store s3://bucket/prefix``) against moto on loopback: where the
bytes go, ranged reads, the journal of puts made before a commit (failed requests and crashes
leave nothing behind), S3 multipart sessions (continued by another server instance, assembled
in the store), sweeps, account deletion, the CLI option, and secrets kept out of logs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Callable

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from kloudless.cli import main
from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.blobs import (
    S3_MIN_PART_SIZE,
    BlobStoreError,
    FileBlobStore,
    S3BlobStore,
    blob_store,
    open_blob_store,
)
from kloudless.server.connectors import local_storage
from kloudless.server.connectors.local_storage import (
    abort_orphan_uploads,
    reclaim_orphans,
    settle_all,
)
from kloudless.server.context import RequestContext
from kloudless.server.sweep import sweep
from tests.server.conftest import BufferedClient, assert_error, upload

from .servers import SECRET_KEY, S3Endpoint

S = "/v1/accounts/me/storage"
PREFIX = "kl/accounts/1/blobs/"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Every file's bytes in the bucket, small ones too (by default those stay in the database,
    tests/server/test_inline_files.py): these tests are about the bucket's objects."""
    return make_settings(multipart_part_size=4, inline_file_bytes=0)


def _blob(app: ServerApp, file_id: str) -> str:
    row = app.store.one("SELECT blob FROM objects WHERE id = ?", (file_id,))
    assert row is not None
    return str(row["blob"])


def _count(app: ServerApp, table: str) -> int:
    return int(app.store.one(f"SELECT COUNT(*) AS n FROM {table}")["n"])


def test_contents_live_in_the_bucket_not_the_data_dir(
    app: ServerApp, client: Client, auth: dict[str, str], s3: S3Endpoint, bucket: str
) -> None:
    data = os.urandom(300_000)
    posted = upload(client, auth, "a.bin", data)
    assert posted.status_code == 201, posted.data
    file_id = posted.get_json()["id"]
    assert s3.keys(bucket) == [PREFIX + _blob(app, file_id)]
    blobs_dir = os.path.join(app.settings.data_dir, "accounts", "1", "blobs")
    assert not os.path.exists(blobs_dir) or os.listdir(blobs_dir) == []
    assert os.listdir(os.path.join(app.settings.data_dir, "accounts", "1", "tmp")) == []
    assert client.get(f"{S}/files/{file_id}/contents", headers=auth).data == data
    # Replacing the contents puts a new blob and removes the old one after the commit.
    old = _blob(app, file_id)
    put = client.put(f"{S}/files/{file_id}", headers=auth, data=b"second")
    assert put.status_code == 200
    assert s3.keys(bucket) == [PREFIX + _blob(app, file_id)] != [PREFIX + old]
    assert client.delete(f"{S}/files/{file_id}", headers=auth).status_code == 204
    assert s3.keys(bucket) == []
    assert _count(app, "blob_journal") == 0 and _count(app, "blob_puts") == 0


def test_range_downloads_are_ranged_gets(
    app: ServerApp,
    client: Client,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = os.urandom(5 * 1024 * 1024)
    file_id = upload(client, auth, "big.bin", data).get_json()["id"]
    store = blob_store(app.settings)
    assert isinstance(store, S3BlobStore)
    ranges: list[str] = []
    real = store._client.get_object

    def spy(**kwargs: Any) -> Any:
        ranges.append(kwargs.get("Range", "whole"))
        return real(**kwargs)

    monkeypatch.setattr(store._client, "get_object", spy)
    part = client.get(
        f"{S}/files/{file_id}/contents", headers={**auth, "Range": "bytes=3000000-3000999"}
    )
    assert part.status_code == 206 and part.data == data[3000000:3001000]
    # Opening fetches the first 64 KiB (a small file is one request); the range is its own GET.
    assert ranges[0] == "bytes=0-65535", ranges
    assert ranges[1:] and all(r.startswith("bytes=3000000-") for r in ranges[1:]), ranges
    last = int(ranges[-1].rsplit("-", 1)[1])
    assert last < 3000000 + 2 * 1024 * 1024  # a window, not the rest of the object
    ranges.clear()
    whole = client.get(f"{S}/files/{file_id}/contents", headers=auth)
    assert hashlib.sha256(whole.data).digest() == hashlib.sha256(data).digest()
    assert "whole" not in ranges and len(ranges) >= 2  # streamed in windows


def _fail_after(ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
    call_next()  # the upload puts its blob and writes its row inside the unit...
    raise RuntimeError("...and the request fails before it commits")


def test_a_request_failing_after_its_put_leaves_no_blob(
    app: ServerApp, client: Client, auth: dict[str, str], s3: S3Endpoint, bucket: str
) -> None:
    app.handler_wrappers.append(_fail_after)  # a keyed request: the wrapper is in its unit
    assert upload(client, {**auth, "Idempotency-Key": "k-1"}, "a.txt", b"hello").status_code == 500
    app.handler_wrappers.remove(_fail_after)
    assert _count(app, "objects") == 0
    assert s3.keys(bucket) == []
    assert _count(app, "blob_puts") == 0


def test_copies_are_made_in_the_store(
    app: ServerApp, client: Client, auth: dict[str, str], s3: S3Endpoint, bucket: str
) -> None:
    folder = client.post(f"{S}/folders", headers=auth, json={"name": "d", "parent_id": "root"})
    folder_id = folder.get_json()["id"]
    for n in range(3):
        assert upload(client, auth, f"f{n}", b"x" * (n + 1), parent=folder_id).status_code == 201
    copied = client.post(f"{S}/folders/{folder_id}/copy", headers=auth, json={"parent_id": "root"})
    assert copied.status_code == 201
    blobs = {
        str(r["blob"]) for r in app.store.all("SELECT blob FROM objects WHERE blob IS NOT NULL")
    }
    assert len(blobs) == 6
    assert s3.keys(bucket) == sorted(PREFIX + b for b in blobs)
    assert os.listdir(os.path.join(app.settings.data_dir, "accounts", "1", "tmp")) == []
    assert _count(app, "blob_puts") == 0


def test_puts_a_crash_left_are_settled_after_the_grace(
    app: ServerApp, client: Client, auth: dict[str, str], s3: S3Endpoint, bucket: str
) -> None:
    kept = upload(client, auth, "kept.txt", b"kept").get_json()["id"]
    kept_blob = _blob(app, kept)
    client_s3 = s3.client()
    # A process died after putting a blob and before its row committed ...
    client_s3.put_object(Bucket=bucket, Key=PREFIX + "deadbeef", Body=b"lost request")
    app.store.execute(
        "INSERT INTO blob_puts (account_id, blob, size, created) VALUES (1, 'deadbeef', 12, ?)",
        ("2020-01-01T00:00:00.000000Z",),
    )
    # ... and one that may still commit (young): left alone.
    client_s3.put_object(Bucket=bucket, Key=PREFIX + "cafe", Body=b"in flight")
    app.store.execute(
        "INSERT INTO blob_puts (account_id, blob, size, created) VALUES (1, 'cafe', 9, ?)",
        (local_storage.now_iso(),),
    )
    # ... and a row whose referencing row did commit (a crash between the two deletes).
    app.store.execute(
        "INSERT INTO blob_puts (account_id, blob, size, created) VALUES (1, ?, 4, ?)",
        (kept_blob, "2020-01-01T00:00:00.000000Z"),
    )
    app.sweeper.wait()
    counts = sweep(app)
    assert counts["blobs"] == 2
    assert s3.keys(bucket) == sorted([PREFIX + "cafe", PREFIX + kept_blob])
    assert [r["blob"] for r in app.store.all("SELECT blob FROM blob_puts")] == ["cafe"]
    assert client.get(f"{S}/files/{kept}/contents", headers=auth).data == b"kept"
    # Once old enough, the young one goes too; the referenced blob stays.
    assert settle_all(app.store, app.settings.data_dir, blob_store(app.settings), 0) == 1
    assert s3.keys(bucket) == [PREFIX + kept_blob]


def test_unjournaled_orphans_and_uploads_are_reclaimed(
    app: ServerApp, client: Client, auth: dict[str, str], s3: S3Endpoint, bucket: str
) -> None:
    kept = _blob(app, upload(client, auth, "kept.txt", b"kept").get_json()["id"])
    # The sweep the first request started, done first: it would abort the upload below (moto
    # dates every upload 2010), racing the calls of the test on a busy machine.
    app.sweeper.wait()
    s3.client().put_object(Bucket=bucket, Key=PREFIX + "orphan", Body=b"x")
    s3.client().create_multipart_upload(Bucket=bucket, Key=PREFIX + "half")
    store = blob_store(app.settings)
    assert reclaim_orphans(app.store, app.settings.data_dir, blobs=store) == 0  # too young
    # (moto reports every upload as initiated in 2010, so the grace of uploads is not seen here)
    assert reclaim_orphans(app.store, app.settings.data_dir, grace=0, blobs=store) == 1
    # An upload whose session is about to commit is journalled before it starts: kept.
    s3.client().create_multipart_upload(Bucket=bucket, Key=PREFIX + "starting")
    app.store.execute(
        "INSERT INTO blob_puts (account_id, blob, size, created) VALUES (1, 'starting', 0, 'x')"
    )
    assert abort_orphan_uploads(app.store, store, grace=0) == 1
    assert s3.keys(bucket) == [PREFIX + kept]
    assert s3.uploads(bucket) == [PREFIX + "starting"]


def _init(client: Client, auth: dict[str, str], name: str, size: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "parent_id": "root"}
    if size is not None:
        body["size"] = size
    response = client.post(f"{S}/multipart", headers=auth, json=body)
    assert response.status_code == 201, response.data
    return dict(response.get_json())


def test_multipart_is_an_s3_multipart_upload_continued_by_another_instance(
    make_settings: Callable[..., Settings],
    s3: S3Endpoint,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real S3 rule: parts of at least 5 MiB, whatever smaller size the server is given.
    monkeypatch.setattr(S3BlobStore, "min_part_size", S3_MIN_PART_SIZE)
    settings = make_settings(multipart_part_size=4)
    data = os.urandom(S3_MIN_PART_SIZE + 1000)
    first = create_app(settings)
    from kloudless.server.bootstrap import bootstrap

    creds = bootstrap(first.store)
    assert creds is not None
    auth = {"Authorization": f"Bearer {creds.token}"}
    try:
        session = _init(BufferedClient(first), auth, "big.bin", len(data))
        assert session["part_size"] == S3_MIN_PART_SIZE
        url = f"{S}/multipart/{session['id']}"
        put = BufferedClient(first).put(
            url, headers=auth, data=data[:S3_MIN_PART_SIZE], query_string={"part_number": 1}
        )
        assert put.status_code == 200, put.data
        assert s3.uploads(bucket) == [
            PREFIX + str(first.store.one("SELECT blob FROM multipart")["blob"])
        ]
    finally:
        first.close()
    # Another server instance (a new process, or another machine) takes the rest.
    second = create_app(settings)
    try:
        client = BufferedClient(second)
        tail = data[S3_MIN_PART_SIZE:]
        assert (
            client.put(url, headers=auth, data=tail, query_string={"part_number": 2}).status_code
            == 200
        )
        done = client.post(f"{url}/complete", headers=auth)
        assert done.status_code == 201, done.data
        file_id = done.get_json()["id"]
        body = client.get(f"{S}/files/{file_id}/contents", headers=auth).data
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        assert s3.uploads(bucket) == []
        assert s3.keys(bucket) == [PREFIX + _blob(second, file_id)]
        assert not os.path.exists(os.path.join(settings.data_dir, "multipart", str(session["id"])))
    finally:
        second.close()


def test_a_complete_failing_after_the_assembly_can_be_retried(
    app: ServerApp,
    client: Client,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    s3: S3Endpoint,
    bucket: str,
) -> None:
    session = _init(client, auth, "m.bin", 6)
    url = f"{S}/multipart/{session['id']}"
    for number, part in ((1, b"abcd"), (2, b"ef")):
        assert (
            client.put(
                url, headers=auth, data=part, query_string={"part_number": number}
            ).status_code
            == 200
        )
    real = local_storage.LocalStorage.adopt_blob

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the process failed after S3 assembled the object")

    monkeypatch.setattr(local_storage.LocalStorage, "adopt_blob", broken)
    assert client.post(f"{url}/complete", headers=auth).status_code == 500
    assert s3.uploads(bucket) == [] and len(s3.keys(bucket)) == 1  # assembled, kept
    app.sweeper.wait()
    sweep(app)  # the session still references the blob: the sweep keeps it
    assert len(s3.keys(bucket)) == 1
    monkeypatch.setattr(local_storage.LocalStorage, "adopt_blob", real)
    done = client.post(f"{url}/complete", headers=auth)
    assert done.status_code == 201, done.data
    assert client.get(f"{S}/files/{done.get_json()['id']}/contents", headers=auth).data == b"abcdef"
    assert _count(app, "objects") == 1


def test_aborting_a_session_aborts_its_s3_upload(
    client: Client, auth: dict[str, str], s3: S3Endpoint, bucket: str
) -> None:
    session = _init(client, auth, "m.bin", 6)
    url = f"{S}/multipart/{session['id']}"
    assert (
        client.put(url, headers=auth, data=b"abcd", query_string={"part_number": 1}).status_code
        == 200
    )
    assert len(s3.uploads(bucket)) == 1
    assert client.delete(url, headers=auth).status_code == 204
    assert s3.uploads(bucket) == [] and s3.keys(bucket) == []


def test_deleting_an_account_removes_its_blobs(
    app: ServerApp, client: Client, creds: Any, auth: dict[str, str], s3: S3Endpoint, bucket: str
) -> None:
    other = app.store.create_account(creds.app_id, "local", "other")
    other_auth = {"Authorization": f"Bearer {app.store.create_token(creds.app_id, other)}"}
    assert upload(client, auth, "mine.txt", b"mine").status_code == 201
    assert upload(client, other_auth, "theirs.txt", b"theirs").status_code == 201
    assert len(s3.keys(bucket, f"kl/accounts/{other}/")) == 1
    key_auth = {"Authorization": f"APIKey {creds.api_key}"}
    assert client.delete(f"/v1/accounts/{other}", headers=key_auth).status_code == 204
    assert s3.keys(bucket, f"kl/accounts/{other}/") == []
    assert len(s3.keys(bucket, "kl/accounts/1/")) == 1


def test_an_unreachable_store_is_a_503_and_nothing_is_kept(
    app: ServerApp, client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = blob_store(app.settings)
    assert isinstance(store, S3BlobStore)

    def down(*args: Any, **kwargs: Any) -> None:
        raise OSError(5, "the blob store cannot be reached (EndpointConnectionError)")

    monkeypatch.setattr(store, "put_file", down)
    assert_error(upload(client, auth, "a.txt", b"hello"), 503, "service_unavailable")
    assert _count(app, "objects") == 0 and _count(app, "blob_puts") == 0


def test_blob_store_urls() -> None:
    assert isinstance(open_blob_store("", "/tmp/d"), FileBlobStore)
    assert open_blob_store("file:///srv/blobs", "/tmp/d").local_path("a/b") == "/srv/blobs/a/b"
    s3_store = open_blob_store("s3://bucket/some/prefix/", "/tmp/d")
    assert isinstance(s3_store, S3BlobStore) and s3_store.url == "s3://bucket/some/prefix"
    for bad in (
        "http://x",
        "s3://AKIA:secret@bucket/p",
        "s3:///nobucket",
        "file://host/p",
        "ftp:x",
    ):
        with pytest.raises(BlobStoreError) as caught:
            open_blob_store(bad, "/tmp/d")
        assert "secret" not in str(caught.value)


def test_serve_refuses_a_missing_bucket_without_showing_secrets(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            "0",
            "--blob-store",
            "s3://no-such-bucket-kl/x",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "blob store: s3://no-such-bucket-kl/x: the bucket does not exist" in err
    assert SECRET_KEY not in err and "AKIA" not in err


def test_secrets_never_reach_the_logs(
    app: ServerApp, client: Client, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    file_id = upload(client, auth, "a.txt", b"hello").get_json()["id"]
    assert client.get(f"{S}/files/{file_id}/contents", headers=auth).data == b"hello"
    session = _init(client, auth, "m.bin", 4)
    client.put(
        f"{S}/multipart/{session['id']}",
        headers=auth,
        data=b"abcd",
        query_string={"part_number": 1},
    )
    client.post(f"{S}/multipart/{session['id']}/complete", headers=auth)
    assert caplog.records  # botocore logs at DEBUG: the secret key is never among it
    assert SECRET_KEY not in caplog.text
    assert json.dumps(SECRET_KEY) not in caplog.text


def test_contact_photos_are_blobs_of_the_bucket(
    app: ServerApp, client: Client, auth: dict[str, str], s3: S3Endpoint, bucket: str
) -> None:
    contacts = "/v1/accounts/me/crm/contacts"
    contact = client.post(contacts, headers=auth, json={"name": "Pic"}).get_json()
    url = f"{contacts}/{contact['id']}/photo"
    photo = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)
    for _ in range(2):  # a replaced photo leaves nothing behind
        put = client.put(url, headers={**auth, "Content-Type": "image/png"}, data=photo)
        assert put.status_code == 200, put.data
    keys = s3.keys(bucket, "kl/accounts/1/contact-photos/")
    assert len(keys) == 1
    assert client.get(url, headers=auth).data == photo
    assert client.delete(url, headers=auth).status_code == 204
    assert s3.keys(bucket, "kl/accounts/1/contact-photos/") == []
    tmp = os.path.join(app.settings.data_dir, "accounts", "1", "tmp")
    assert [n for n in os.listdir(tmp) if n.startswith("ph-")] == []


def test_through_waitress_spooled_bodies_go_to_the_bucket_and_ranges_stream(
    make_settings: Callable[..., Settings], s3: S3Endpoint, bucket: str
) -> None:
    import requests

    from kloudless.server.runner import ServerThread

    settings = make_settings(port=0)
    server = ServerThread(settings).start()
    try:
        assert server.credentials is not None
        headers = {"Authorization": f"Bearer {server.credentials.token}"}
        data = os.urandom(3 * 1024 * 1024)  # over waitress's 512 KiB: spooled into the data dir
        meta = json.dumps({"name": "big.bin", "parent_id": "root"})
        posted = requests.post(
            f"{server.base_url}{S}/files",
            data=data,
            headers={**headers, "X-Kloudless-Metadata": meta},
            timeout=60,
        )
        assert posted.status_code == 201, posted.text
        file_id = posted.json()["id"]
        assert len(s3.keys(bucket, PREFIX)) == 1
        url = f"{server.base_url}{S}/files/{file_id}/contents"
        whole = requests.get(url, headers=headers, timeout=60)
        assert whole.status_code == 200 and whole.content == data
        part = requests.get(url, headers={**headers, "Range": "bytes=1000000-1999999"}, timeout=60)
        assert part.status_code == 206 and part.content == data[1000000:2000000]
        assert part.headers["Content-Range"] == f"bytes 1000000-1999999/{len(data)}"
    finally:
        server.stop()
    leftovers = [
        name
        for folder in ("tmp", os.path.join("accounts", "1", "tmp"))
        if os.path.isdir(os.path.join(settings.data_dir, folder))
        for name in os.listdir(os.path.join(settings.data_dir, folder))
    ]
    assert leftovers == []
