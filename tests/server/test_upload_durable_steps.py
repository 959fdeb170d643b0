"""A small upload costs only the durable steps an acknowledged upload needs.

With a file blob store an upload writes its bytes straight into the blob folder under the new
blob's name (one data sync of the file, one sync of the folder), then commits one transaction
(the file's row and its activity event; no blob journal row, nothing to move or settle after
the commit). A request that fails removes the blob; a kill between the write and the commit
leaves a blob no row names, which the start-up sweep removes
(``tests/server/test_orphan_reclaim.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest
from werkzeug.test import Client

from kloudless.server import Settings, create_app, spool
from kloudless.server.app import ServerApp
from kloudless.server.errors import ApiError
from kloudless.server.spool import SpooledBody, spool_to_path

from .conftest import assert_error

S = "/v1/accounts/me/storage"
#: The file blob store's own steps (S3 puts are journaled: tests/s3/test_s3_blobs.py).
pytestmark = pytest.mark.only_config("sqlite-files", reason="blobs written in the data dir")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Every file in the blob store, small ones too (by default those keep their bytes in the
    database: test_inline_files.py): these tests are about blobs."""
    return make_settings(multipart_part_size=4, inline_file_bytes=0)


def _meta(name: str, **extra: Any) -> dict[str, str]:
    return {"X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": "root", **extra})}


def _blobs(app: ServerApp) -> list[str]:
    return sorted(os.listdir(os.path.join(app.settings.data_dir, "accounts", "1", "blobs")))


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """:returns: the data syncs (``("data", fd)``) and folder syncs (``("folder", path)``) of
    the spooling code from now on."""
    seen: list[tuple[str, Any]] = []
    datasync, fsync_dir = spool.datasync, spool.fsync_dir

    def data(fd: int) -> None:
        seen.append(("data", fd))
        datasync(fd)

    def folder(path: str) -> None:
        seen.append(("folder", path))
        fsync_dir(path)

    monkeypatch.setattr(spool, "datasync", data)
    monkeypatch.setattr(spool, "fsync_dir", folder)
    return seen


def test_a_small_upload_is_one_data_sync_one_folder_sync_and_one_commit(
    app: ServerApp, client: Client, auth: dict[str, str], syncs: list[tuple[str, Any]]
) -> None:
    assert client.post(f"{S}/files", data=b"warm", headers={**auth, **_meta("a")}).status_code
    syncs.clear()
    statements: list[str] = []
    app.store.conn.set_trace_callback(statements.append)
    try:
        answer = client.post(f"{S}/files", data=b"x" * 4096, headers={**auth, **_meta("b")})
    finally:
        app.store.conn.set_trace_callback(None)
    assert answer.status_code == 201, answer.data
    blob = app.store.one("SELECT blob FROM objects WHERE id = ?", (answer.get_json()["id"],))
    blob_folder = os.path.join(app.settings.data_dir, "accounts", "1", "blobs")
    assert [kind for kind, _ in syncs] == ["data", "folder"]
    assert syncs[1][1] == blob_folder  # the folder the bytes stay in, and no other
    with open(os.path.join(blob_folder, str(blob["blob"])), "rb") as fh:
        assert fh.read() == b"x" * 4096
    assert [s for s in statements if s == "COMMIT"] == ["COMMIT"]
    assert not [s for s in statements if "blob_journal" in s or "SAVEPOINT" in s]
    # Reading the file back after the commit: nothing left to settle.
    assert app.store.one("SELECT COUNT(*) AS n FROM blob_journal")["n"] == 0
    assert os.listdir(os.path.join(app.settings.data_dir, "accounts", "1", "tmp")) == []
    contents = client.get(f"{S}/files/{answer.get_json()['id']}/contents", headers=auth)
    assert contents.data == b"x" * 4096


def test_a_spooled_body_becomes_the_blob_by_a_rename(
    tmp_path: Path, syncs: list[tuple[str, Any]]
) -> None:
    body = SpooledBody.create(str(tmp_path / "tmp"))
    body.write(b"y" * 100_000)
    body.flush()
    body.seek(0)
    inode = os.fstat(body.fileno()).st_ino
    (tmp_path / "blobs").mkdir()
    target = str(tmp_path / "blobs" / "b1")

    def too_big() -> ApiError:
        raise AssertionError("not too big")

    try:
        assert spool_to_path(body, target, 10**6, too_big)[0] == 100_000
    finally:
        body.close()
    assert os.stat(target).st_ino == inode  # the spooled file itself: not copied
    assert os.listdir(tmp_path / "tmp") == []
    assert [kind for kind, _ in syncs] == ["data", "folder"]


def test_a_refused_upload_leaves_no_blob(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    folder = client.post(f"{S}/folders", json={"name": "taken", "parent_id": "root"}, headers=auth)
    assert folder.status_code == 201
    before = _blobs(app)
    refused = client.post(
        f"{S}/files?overwrite=true", data=b"some bytes", headers={**auth, **_meta("taken")}
    )
    assert_error(refused, 409, "naming_conflict")  # refused inside the transaction
    assert _blobs(app) == before


def test_start_up_recovery_removes_blobs_no_row_names(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    kept = client.post(f"{S}/files", data=b"kept", headers={**auth, **_meta("kept.txt")})
    assert kept.status_code == 201
    blob_folder = os.path.join(app.settings.data_dir, "accounts", "1", "blobs")
    # What a kill between an upload's write and its commit leaves: a blob no row names.
    with open(os.path.join(blob_folder, "0" * 32), "wb") as out:
        out.write(b"never committed")
    settings = app.settings
    app.close()
    restarted = create_app(settings)
    try:
        restarted.sweeper.wait()  # the start-up sweep removes it, in the background
        assert restarted.sweeper.last["blobs"] == 1
        assert _blobs(restarted) == [
            str(restarted.store.one("SELECT blob FROM objects WHERE name = 'kept.txt'")["blob"])
        ]
    finally:
        restarted.close()
