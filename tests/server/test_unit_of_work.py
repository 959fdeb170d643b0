"""One unit of work per write request, the blob journal and start-up recovery.

The store's unit of work (``Store.unit_of_work``) is tested directly; then through the app: a
keyed write whose request fails after the change keeps nothing (no file, no event, no answer),
and what a crash leaves "in progress" (a multipart ``complete``, a task, blob journal rows) is
recovered when the server starts again on the same data dir.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.context import RequestContext
from kloudless.server.store import Store

from .conftest import BufferedClient, blob_keys

S = "/v1/accounts/me/storage"


#: Tests of the local file store's own crash handling (renames from tmp/, the orphan sweep of
#: the data dir); the S3 store's are in tests/s3/test_s3_blobs.py.
FILES_ONLY = pytest.mark.only_config("sqlite-files", reason="blobs in the data dir")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Every file in the blob store, small ones too (by default those keep their bytes in the
    database: test_inline_files.py): these tests are about the blob journal."""
    return make_settings(multipart_part_size=4, inline_file_bytes=0)


@pytest.fixture
def store(make_settings: Callable[..., Settings]) -> Iterator[Store]:
    settings = make_settings()
    db = Store(settings.db_path, settings.database_url)
    db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, v TEXT)")
    yield db
    db.close()


def values(store: Store) -> list[str]:
    return [str(r["v"]) for r in store.all("SELECT v FROM t ORDER BY n")]


# -- the store's unit of work ---------------------------------------------------------------------
def test_transactions_of_a_unit_commit_together(store: Store) -> None:
    seen: list[list[str]] = []
    with store.unit_of_work():
        with store.transaction():
            store.execute("INSERT INTO t (v) VALUES ('a')")
            store.after_commit(lambda: seen.append(values(store)))
        assert seen == []  # not committed yet: the unit is still open
        with store.transaction():
            store.execute("INSERT INTO t (v) VALUES ('b')")
    assert values(store) == ["a", "b"]
    assert seen == [["a", "b"]]  # after-commit calls run once the whole unit committed


def test_an_exception_rolls_back_the_whole_unit(store: Store) -> None:
    undone: list[str] = []
    committed: list[str] = []
    with pytest.raises(RuntimeError), store.unit_of_work():
        store.after_rollback(lambda: undone.append("claim released"))
        with store.transaction():
            store.execute("INSERT INTO t (v) VALUES ('a')")
            store.after_commit(lambda: committed.append("x"))
        raise RuntimeError("the request failed after the change")
    assert values(store) == []
    assert undone == ["claim released"] and committed == []


def test_a_failing_step_rolls_back_only_itself(store: Store) -> None:
    with store.unit_of_work():
        with store.transaction():
            store.execute("INSERT INTO t (v) VALUES ('kept')")
        with pytest.raises(ValueError), store.transaction():
            store.execute("INSERT INTO t (v) VALUES ('dropped')")
            raise ValueError("this step fails, the request goes on")
    assert values(store) == ["kept"]


def test_standalone_claims_commit_at_once_and_only_before_the_unit_began(store: Store) -> None:
    with store.unit_of_work():
        with store.transaction(standalone=True):
            store.execute("INSERT INTO t (v) VALUES ('claim')")
        other = Store(store.path, store.database_url)  # another connection sees the claim
        assert [r["v"] for r in other.all("SELECT v FROM t")] == ["claim"]
        other.close()
        with store.transaction():
            store.execute("INSERT INTO t (v) VALUES ('change')")
        with pytest.raises(RuntimeError), store.transaction(standalone=True):
            pass
    assert values(store) == ["claim", "change"]


@pytest.mark.only_config("sqlite-files", reason="SQLite's statement trace")
def test_a_step_without_savepoint_fails_the_whole_unit(store: Store) -> None:
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        with store.unit_of_work():
            with store.transaction():
                store.execute("INSERT INTO t (v) VALUES ('first')")
            with store.transaction(savepoint=False):
                store.execute("INSERT INTO t (v) VALUES ('second')")
        with pytest.raises(ValueError), store.unit_of_work():
            with store.transaction():
                store.execute("INSERT INTO t (v) VALUES ('third')")
            with store.transaction(savepoint=False):
                store.execute("INSERT INTO t (v) VALUES ('fourth')")
                raise ValueError("the request fails: nothing of it is kept")
    finally:
        store.conn.set_trace_callback(None)
    assert values(store) == ["first", "second"]
    assert not [s for s in statements if "SAVEPOINT" in s or "RELEASE" in s]


# -- a write request is one unit of work ----------------------------------------------------------
def _fail_after(ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
    call_next()  # the upload is done inside the unit...
    raise RuntimeError("...and the request fails before it commits")


def test_a_keyed_upload_failing_after_the_change_keeps_nothing(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    headers = {
        **auth,
        "X-Kloudless-Metadata": json.dumps({"name": "a.txt", "parent_id": "root"}),
        "Idempotency-Key": "k-1",
    }
    app.handler_wrappers.append(_fail_after)
    failed = client.post(f"{S}/files", data=b"hello", headers=headers)
    assert failed.status_code == 500
    app.handler_wrappers.remove(_fail_after)
    assert app.store.one("SELECT COUNT(*) AS n FROM objects WHERE kind = 'file'")["n"] == 0
    assert app.store.one("SELECT COUNT(*) AS n FROM activity")["n"] == 0
    assert app.store.one("SELECT COUNT(*) AS n FROM idempotency_keys")["n"] == 0
    assert blob_keys(app) == []
    assert os.listdir(os.path.join(app.settings.data_dir, "accounts", "1", "tmp")) == []
    # The retry runs once; its change, event and answer are stored together.
    first = client.post(f"{S}/files", data=b"hello", headers=headers)
    again = client.post(f"{S}/files", data=b"hello", headers=headers)
    assert first.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert app.store.one("SELECT COUNT(*) AS n FROM objects WHERE kind = 'file'")["n"] == 1
    assert [r["type"] for r in app.store.all("SELECT type FROM activity")] == ["add"]
    assert blob_keys(app) == [app.store.one("SELECT blob FROM objects")["blob"]]


# -- start-up recovery ----------------------------------------------------------------------------
def _restart(app: ServerApp) -> ServerApp:
    settings: Settings = app.settings
    app.close()
    return create_app(settings)


def test_an_interrupted_complete_can_be_completed_again(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    init = client.post(
        f"{S}/multipart", json={"name": "big.bin", "parent_id": "root", "size": 6}, headers=auth
    )
    session = str(init.get_json()["id"])
    for number, part in ((1, b"abcd"), (2, b"ef")):
        put = client.put(f"{S}/multipart/{session}?part_number={number}", data=part, headers=auth)
        assert put.status_code == 200
    # A crash during complete: the claim committed, nothing else did.
    app.store.execute("UPDATE multipart SET state = 'completing' WHERE id = ?", (session,))
    assert client.post(f"{S}/multipart/{session}/complete", headers=auth).status_code == 409
    app = _restart(app)
    try:
        assert app.recovered["multipart"] == 1
        restarted = BufferedClient(app)
        done = restarted.post(f"{S}/multipart/{session}/complete", headers=auth)
        assert done.status_code == 201, done.get_data()
        contents = restarted.get(f"{S}/files/{done.get_json()['id']}/contents", headers=auth)
        assert contents.get_data() == b"abcdef"
        assert app.store.one("SELECT COUNT(*) AS n FROM multipart")["n"] == 0
        assert not os.path.exists(os.path.join(app.settings.data_dir, "multipart", session))
    finally:
        app.close()


def test_an_interrupted_task_is_failed_with_a_clear_error(
    app: ServerApp, creds: Any, auth: dict[str, str]
) -> None:
    app.store.execute(
        "INSERT INTO tasks (id, account_id, state, created, modified)"
        " VALUES ('t-1', ?, 'PENDING', 'x', 'x')",
        (creds.account_id,),
    )
    app = _restart(app)
    try:
        assert app.recovered["tasks"] == 1
        task = BufferedClient(app).get("/v1/accounts/me/tasks/t-1", headers=auth)
        assert task.status_code == 500
        assert task.get_json()["error_code"] == "task_interrupted"
    finally:
        app.close()


@FILES_ONLY
def test_blob_journal_rows_left_by_a_crash_are_settled(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    meta = {"X-Kloudless-Metadata": json.dumps({"name": "a.txt", "parent_id": "root"})}
    upload = client.post(f"{S}/files", data=b"kept bytes", headers={**auth, **meta})
    file_id = upload.get_json()["id"]
    base = os.path.join(app.settings.data_dir, "accounts", "1")
    blob = app.store.one("SELECT blob FROM objects WHERE id = ?", (file_id,))["blob"]
    # A crash right after the commit: the bytes still wait at their temp name.
    os.replace(os.path.join(base, "blobs", blob), os.path.join(base, "tmp", "up-crash"))
    app.store.execute("INSERT INTO blob_journal VALUES (1, ?, 'tmp/up-crash', 10, 'x')", (blob,))
    # ... and a deleted file's blob that was never removed.
    with open(os.path.join(base, "blobs", "gone"), "wb") as out:
        out.write(b"12345")
    app.store.execute("INSERT INTO blob_journal VALUES (1, 'gone', NULL, 5, 'x')")
    quota = client.get(f"{S}/quota", headers=auth).get_json()
    assert quota["used"] == 15  # what is on disk, the removed-but-not-deleted blob included
    # Reads in between find the bytes at the temp name.
    assert client.get(f"{S}/files/{file_id}/contents", headers=auth).get_data() == b"kept bytes"
    app = _restart(app)
    try:
        assert app.recovered["blobs"] == 2
        assert sorted(os.listdir(os.path.join(base, "blobs"))) == [blob]
        assert os.listdir(os.path.join(base, "tmp")) == []
        assert app.store.one("SELECT COUNT(*) AS n FROM blob_journal")["n"] == 0
        restarted = BufferedClient(app)
        body = restarted.get(f"{S}/files/{file_id}/contents", headers=auth).get_data()
        assert body == b"kept bytes"
        assert restarted.get(f"{S}/quota", headers=auth).get_json()["used"] == 10
    finally:
        app.close()


def test_a_recursive_delete_journals_every_blob(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    folder = client.post(f"{S}/folders", json={"name": "d", "parent_id": "root"}, headers=auth)
    folder_id = folder.get_json()["id"]
    for n in range(30):
        meta = json.dumps({"name": f"f{n}", "parent_id": folder_id})
        posted = client.post(
            f"{S}/files", data=b"x" * n, headers={**auth, "X-Kloudless-Metadata": meta}
        )
        assert posted.status_code == 201
    assert len(blob_keys(app)) == 30
    seen: list[int] = []
    # Count the journal rows as the delete commits (the after-commit step removes them).
    app.activity_listeners.append(
        lambda account, cursor: seen.append(
            app.store.one("SELECT COUNT(*) AS n FROM blob_journal")["n"]
        )
    )
    deleted = client.delete(f"{S}/folders/{folder_id}?recursive=true", headers=auth)
    assert deleted.status_code == 204
    assert seen and seen[0] <= 30
    assert blob_keys(app) == []
    assert app.store.one("SELECT COUNT(*) AS n FROM blob_journal")["n"] == 0


@FILES_ONLY
def test_the_sweep_reclaims_old_unjournaled_orphans(app: ServerApp) -> None:
    from kloudless.server.sweep import sweep

    app.sweeper.wait()
    blobs = os.path.join(app.settings.data_dir, "accounts", "1", "blobs")
    os.makedirs(blobs, exist_ok=True)
    old, new = os.path.join(blobs, "old-orphan"), os.path.join(blobs, "new-orphan")
    for path in (old, new):
        with open(path, "wb") as out:
            out.write(b"x")
    os.utime(old, (1, 1))
    assert sweep(app)["blobs"] == 1
    assert os.listdir(blobs) == ["new-orphan"]  # younger than the grace period: kept
