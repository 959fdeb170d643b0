"""Small files keep their bytes in the database (``Settings.inline_file_bytes``): written with
their row in one transaction, read with it in one statement, released, copied and deleted by
the statements of the change's own transaction; larger files and the setting at 0 use the blob
store as before."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any, Callable

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from kloudless.server import create_app, spool
from kloudless.server.app import ServerApp
from kloudless.server.blobs import blob_store
from kloudless.server.bootstrap import Credentials
from kloudless.server.connectors.local_storage import INLINE_PREFIX, LocalStorage, is_inline
from kloudless.server.context import RequestContext
from kloudless.server.settings import Settings
from kloudless.server.spool import HashingStream, Prefixed, read_at_most

from .conftest import BufferedClient, assert_error, blob_keys, mkdir, upload

S = "/v1/accounts/me/storage"
LIMIT = 100


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(multipart_part_size=4, inline_file_bytes=LIMIT)


def inline_rows(app: ServerApp) -> dict[str, bytes]:
    """:returns: the ``inline_blobs`` rows of account 1: blob name -> bytes."""
    rows = app.store.all("SELECT blob, data FROM inline_blobs WHERE account_id = 1")
    return {str(r["blob"]): bytes(r["data"]) for r in rows}


def blob_of(app: ServerApp, file_id: str) -> str:
    row = app.store.one("SELECT blob FROM objects WHERE id = ?", (file_id,))
    assert row is not None
    return str(row["blob"])


def contents(client: Client, auth: dict[str, str], file_id: str, **headers: str) -> Any:
    return client.get(f"{S}/files/{file_id}/contents", headers={**auth, **headers})


def test_a_small_file_is_stored_with_its_row(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    data = b"x" * LIMIT  # the limit itself is small enough
    made = upload(client, auth, "small.txt", data)
    assert made.status_code == 201, made.get_data(as_text=True)
    file_id = made.get_json()["id"]
    blob = blob_of(app, file_id)
    assert blob.startswith(INLINE_PREFIX) and is_inline(blob)
    assert inline_rows(app) == {blob: data}
    assert blob_keys(app) == []  # nothing in the blob store
    got = contents(client, auth, file_id)
    assert got.status_code == 200
    assert got.data == data
    # The etag is the bytes' digest, as for a file in the blob store.
    assert got.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()[:32]}"'
    assert got.headers["Content-Length"] == str(LIMIT)


def test_a_file_over_the_limit_goes_to_the_blob_store(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    data = os.urandom(LIMIT + 1)
    made = upload(client, auth, "bigger.bin", data)
    assert made.status_code == 201
    file_id = made.get_json()["id"]
    blob = blob_of(app, file_id)
    assert not is_inline(blob)
    assert blob_keys(app) == [blob]
    assert inline_rows(app) == {}
    assert contents(client, auth, file_id).data == data
    assert made.get_json()["size"] == LIMIT + 1


def test_zero_keeps_every_file_in_the_blob_store(
    make_settings: Callable[..., Settings], creds_for: Callable[[ServerApp], Credentials]
) -> None:
    app = create_app(make_settings(inline_file_bytes=0))
    try:
        client = BufferedClient(app)
        auth = {"Authorization": f"Bearer {creds_for(app).token}"}
        made = upload(client, auth, "tiny.txt", b"hi")
        assert made.status_code == 201
        blob = blob_of(app, made.get_json()["id"])
        assert not is_inline(blob)
        assert blob_keys(app) == [blob]
        assert inline_rows(app) == {}
    finally:
        app.close()


@pytest.fixture
def creds_for() -> Callable[[ServerApp], Credentials]:
    from kloudless.server.bootstrap import bootstrap

    def make(app: ServerApp) -> Credentials:
        result = bootstrap(app.store)
        assert result is not None
        return result

    return make


def test_ranges_conditionals_and_head(client: Client, auth: dict[str, str]) -> None:
    data = b"0123456789"
    file_id = upload(client, auth, "digits.txt", data).get_json()["id"]
    part = contents(client, auth, file_id, Range="bytes=2-4")
    assert part.status_code == 206
    assert part.data == b"234"
    assert part.headers["Content-Range"] == "bytes 2-4/10"
    tail = contents(client, auth, file_id, Range="bytes=-3")
    assert tail.status_code == 206 and tail.data == b"789"
    etag = contents(client, auth, file_id).headers["ETag"]
    assert contents(client, auth, file_id, **{"If-None-Match": etag}).status_code == 304
    refused = contents(client, auth, file_id, Range="bytes=50-60")
    assert_error(refused, 416, "invalid_range")
    head = client.head(f"{S}/files/{file_id}/contents", headers=auth)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "10"
    assert head.data == b""


def test_new_contents_move_between_the_database_and_the_blob_store(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    file_id = upload(client, auth, "moving.bin", b"small").get_json()["id"]
    first = blob_of(app, file_id)
    big = os.urandom(LIMIT * 3)
    replaced = client.put(f"{S}/files/{file_id}", headers=auth, data=big)
    assert replaced.status_code == 200, replaced.get_data(as_text=True)
    second = blob_of(app, file_id)
    assert not is_inline(second)
    assert inline_rows(app) == {}  # the old bytes went with the change
    assert blob_keys(app) == [second]
    assert contents(client, auth, file_id).data == big
    # Overwritten by an upload of a small file of the same name: back in the database, and
    # the blob the row no longer names is removed.
    again = upload(client, auth, "moving.bin", b"small again", overwrite="true")
    assert again.status_code in (200, 201), again.get_data(as_text=True)
    assert again.get_json()["id"] == file_id
    third = blob_of(app, file_id)
    assert is_inline(third) and third != first
    assert inline_rows(app) == {third: b"small again"}
    assert blob_keys(app) == []
    assert contents(client, auth, file_id).data == b"small again"


def test_copies_get_bytes_of_their_own(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    folder = mkdir(client, auth, "originals").get_json()["id"]
    small = upload(client, auth, "a.txt", b"alpha", parent=folder).get_json()["id"]
    big_data = os.urandom(LIMIT * 2)
    upload(client, auth, "b.bin", big_data, parent=folder)
    one = client.post(
        f"{S}/files/{small}/copy", headers=auth, json={"parent_id": "root", "name": "a2.txt"}
    )
    assert one.status_code == 201, one.get_data(as_text=True)
    tree = client.post(
        f"{S}/folders/{folder}/copy", headers=auth, json={"parent_id": "root", "name": "copies"}
    )
    assert tree.status_code == 201, tree.get_data(as_text=True)
    rows = inline_rows(app)
    assert sorted(rows.values()) == [b"alpha"] * 3  # the original and two copies
    assert len(set(rows)) == 3
    gone = client.delete(f"{S}/folders/{folder}", headers=auth, query_string={"recursive": "true"})
    assert gone.status_code == 204
    assert list(inline_rows(app).values()) == [b"alpha"] * 2
    assert contents(client, auth, one.get_json()["id"]).data == b"alpha"
    listed = client.get(f"{S}/folders/{tree.get_json()['id']}/contents", headers=auth)
    by_name = {item["name"]: item["id"] for item in listed.get_json()["objects"]}
    assert contents(client, auth, by_name["a.txt"]).data == b"alpha"
    assert contents(client, auth, by_name["b.bin"]).data == big_data


def test_a_deleted_file_takes_its_bytes(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    file_id = upload(client, auth, "doomed.txt", b"bye").get_json()["id"]
    assert len(inline_rows(app)) == 1
    assert client.delete(f"{S}/files/{file_id}", headers=auth).status_code == 204
    assert inline_rows(app) == {}
    assert_error(contents(client, auth, file_id), 404, "not_found")


def test_a_refused_upload_leaves_no_bytes(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    mkdir(client, auth, "taken")
    refused = upload(client, auth, "taken", b"not a folder", overwrite="true")
    assert_error(refused, 409, "naming_conflict")
    assert inline_rows(app) == {}
    assert app.store.one("SELECT COUNT(*) AS n FROM objects WHERE kind = 'file'")["n"] == 0


def test_over_quota_leaves_no_bytes(
    make_settings: Callable[..., Settings], creds_for: Callable[[ServerApp], Credentials]
) -> None:
    app = create_app(make_settings(inline_file_bytes=LIMIT, account_quota_bytes=10))
    try:
        client = BufferedClient(app)
        auth = {"Authorization": f"Bearer {creds_for(app).token}"}
        assert upload(client, auth, "fits.txt", b"12345").status_code == 201
        refused = upload(client, auth, "over.txt", b"123456")
        assert refused.status_code == 507, refused.get_data(as_text=True)
        assert list(inline_rows(app).values()) == [b"12345"]
    finally:
        app.close()


def test_a_deleted_account_takes_its_bytes(
    app: ServerApp, client: Client, auth: dict[str, str], api_key_auth: dict[str, str]
) -> None:
    upload(client, auth, "mine.txt", b"account data")
    assert len(inline_rows(app)) == 1
    gone = client.delete("/v1/accounts/1", headers=api_key_auth)
    assert gone.status_code == 204, gone.get_data(as_text=True)
    assert app.store.all("SELECT * FROM inline_blobs") == []


def test_an_idempotent_upload_is_stored_once(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    keyed = {**auth, "Idempotency-Key": "inline-once"}
    first = upload(client, keyed, "keyed.txt", b"exactly once")
    again = upload(client, keyed, "keyed.txt", b"exactly once")
    assert first.status_code == again.status_code == 201
    assert first.get_json()["id"] == again.get_json()["id"]
    assert list(inline_rows(app).values()) == [b"exactly once"]


def test_an_upload_failing_after_its_change_keeps_no_bytes(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    """The bytes are part of the request's unit of work: a failure before its commit rolls
    them back with the row."""

    def fail_after(ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
        call_next()
        raise RuntimeError("the request fails before it commits")

    app.handler_wrappers.append(fail_after)
    try:
        failed = upload(client, {**auth, "Idempotency-Key": "k-1"}, "lost.txt", b"rolled back")
    finally:
        app.handler_wrappers.remove(fail_after)
    assert failed.status_code == 500
    assert inline_rows(app) == {}
    assert app.store.one("SELECT COUNT(*) AS n FROM objects WHERE kind = 'file'")["n"] == 0
    retried = upload(client, {**auth, "Idempotency-Key": "k-1"}, "lost.txt", b"rolled back")
    assert retried.status_code == 201
    assert list(inline_rows(app).values()) == [b"rolled back"]


def test_a_small_upload_makes_no_sync_of_its_own(
    app: ServerApp, client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database's commit is its one sync (inside SQLite or PostgreSQL); a file in the blob
    store syncs its data and its folder entry first."""
    # The first request writes the data dir's reserve file (synced once).
    assert upload(client, auth, "first.txt", b"first").status_code == 201
    synced: list[int] = []
    for name in ("fsync", "fdatasync"):
        original = getattr(os, name)

        def counting(fd: int, original: Callable[[int], None] = original) -> None:
            synced.append(fd)
            original(fd)

        monkeypatch.setattr(os, name, counting)
    monkeypatch.setattr(spool, "datasync", lambda fd: synced.append(fd))
    assert upload(client, auth, "quick.txt", b"q" * LIMIT).status_code == 201
    assert synced == []
    assert upload(client, auth, "slow.bin", b"s" * (LIMIT + 1)).status_code == 201
    if not app.settings.blob_store:  # a file blob: its data, then its folder entry
        assert len(synced) >= 2


def test_a_keyed_body_is_hashed_once_either_way(
    app: ServerApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The idempotency layer's hash of the body (a HashingStream) is the blob's too, for a body
    kept in the database and for one just over the limit that goes on to the blob store."""
    storage = LocalStorage(
        app.store,
        app.settings.data_dir,
        1,
        blobs=blob_store(app.settings),
        inline_bytes=LIMIT,
    )
    real = hashlib.sha256
    hashed = [0]

    class Counting:
        def __init__(self, data: bytes = b"") -> None:
            self._sha = real()
            self.update(data)

        def update(self, data: bytes) -> None:
            hashed[0] += len(data)
            self._sha.update(data)

        def hexdigest(self) -> str:
            return self._sha.hexdigest()

        def copy(self) -> Any:
            return self

    for size in (0, 10, LIMIT, LIMIT + 1, LIMIT * 50):
        data = os.urandom(size)
        hashed[0] = 0
        monkeypatch.setattr(hashlib, "sha256", Counting)
        body = HashingStream(io.BytesIO(data))
        blob, stored, digest = storage._write_blob(body, 10**6)
        monkeypatch.setattr(hashlib, "sha256", real)
        assert (stored, digest) == (size, real(data).hexdigest())
        assert body.hexdigest() == digest and body.eof
        assert hashed[0] == size, (size, hashed[0])
        assert is_inline(blob) == (size <= LIMIT)
        storage._drop_new_blob(blob)


def test_the_sweep_removes_bytes_no_file_names(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    """What a process of an older version leaves when it deletes such a file (it journals the
    blob as a blob store key): the bytes, which the sweep removes; those of live files stay."""
    from kloudless.server.sweep import sweep

    app.sweeper.wait()
    kept = upload(client, auth, "kept.txt", b"kept").get_json()["id"]
    app.store.execute(
        "INSERT INTO inline_blobs (account_id, blob, data) VALUES (1, ?, ?)",
        (INLINE_PREFIX + "0" * 32, b"left behind"),
    )
    assert len(inline_rows(app)) == 2
    assert sweep(app)["blobs"] >= 1
    assert list(inline_rows(app).values()) == [b"kept"]
    assert contents(client, auth, kept).data == b"kept"
    assert sweep(app)["blobs"] == 0  # nothing more to remove


def test_read_at_most_and_prefixed_streams() -> None:
    source = io.BytesIO(b"abcdefghij")
    head = read_at_most(source, 4)
    assert head == b"abcd"
    joined = Prefixed(head, source)
    assert joined.read(2) == b"ab"
    assert joined.read(5) == b"cd"  # the head first, then the rest
    assert joined.read(3) == b"efg"
    assert joined.read() == b"hij"
    assert joined.read(1) == b""
    assert read_at_most(io.BytesIO(b"xy"), 10) == b"xy"
    whole = Prefixed(b"12", io.BytesIO(b"345"))
    assert whole.read() == b"12345"
    buffer = bytearray(4)
    assert Prefixed(b"1", io.BytesIO(b"234")).readinto(buffer) == 1
    assert bytes(buffer[:1]) == b"1"


def test_the_answer_is_the_same_whichever_place_holds_the_bytes(
    make_settings: Callable[..., Settings],
    creds_for: Callable[[ServerApp], Credentials],
    tmp_path: Path,
) -> None:
    """The JSON of a new file does not tell where its bytes are."""
    answers = []
    for limit in (LIMIT, 0):
        app = create_app(make_settings(tmp_path / f"limit-{limit}", inline_file_bytes=limit))
        try:
            client = BufferedClient(app)
            auth = {"Authorization": f"Bearer {creds_for(app).token}"}
            made = upload(client, auth, "same.txt", b"same bytes").get_json()
        finally:
            app.close()
        varying = ("id", "href", "ids", "raw_id", "created", "modified")
        answers.append({k: v for k, v in made.items() if k not in varying})
    assert answers[0] == answers[1]
    assert answers[0]["size"] == 10 and answers[0]["mime_type"] == "text/plain"


def test_the_bytes_outlive_a_restart(
    app: ServerApp, client: Client, auth: dict[str, str], settings: Settings
) -> None:
    file_id = upload(client, auth, "kept.txt", b"still here").get_json()["id"]
    app.close()
    restarted = create_app(settings)
    try:
        again = BufferedClient(restarted)
        assert contents(again, auth, file_id).data == b"still here"
    finally:
        restarted.close()


def test_serve_takes_the_limit_from_its_option(capsys: pytest.CaptureFixture[str]) -> None:
    from kloudless.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["serve"]).inline_file_bytes == Settings.inline_file_bytes == 16 * 1024
    assert parse(["serve", "--inline-file-bytes", "64K"]).inline_file_bytes == 64 * 1024
    assert parse(["serve", "--inline-file-bytes", "0"]).inline_file_bytes == 0
    assert parse(["serve", "--inline-file-bytes", "1M"]).inline_file_bytes == 1024 * 1024
    for refused in ("-1", "2M", "lots"):
        with pytest.raises(SystemExit) as exited:
            parse(["serve", "--inline-file-bytes", refused])
        assert exited.value.code == 2
        assert "--inline-file-bytes" in capsys.readouterr().err
