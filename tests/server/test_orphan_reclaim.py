"""Blobs a kill left behind are removed by the start-up sweep, in the background.

An upload writes its blob in place before the commit of its row, so a kill in between leaves a
blob no row names. A process that starts alone (no other live instance shares the database)
takes its start on the blob store's clock (:func:`~kloudless.server.recovery.orphan_cutoff`)
and lists nothing at start-up; its start-up sweep then removes the unnamed blobs older than
that start, and never one written after it (an upload of this process between its write and
its commit). With other live processes there is no such cutoff: the grace of an hour applies.
A multipart file linked in as a blob before its commit is made new first, so neither the cutoff
nor the grace can take it for an orphan.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import pytest
from werkzeug.test import Client

from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.blobs import FileBlobStore
from kloudless.server.sweep import Sweeper, sweep

S = "/v1/accounts/me/storage"
#: Blobs written in place (the file store); S3 puts are journalled and settled by age only.
pytestmark = pytest.mark.only_config("sqlite-files", reason="blobs written in the data dir")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Every file in the blob store, small ones too (by default those keep their bytes in the
    database: test_inline_files.py): these tests are about blobs."""
    return make_settings(multipart_part_size=4, inline_file_bytes=0)


def _folder(app: ServerApp) -> str:
    return os.path.join(app.settings.data_dir, "accounts", "1", "blobs")


def _orphan(app: ServerApp, name: str) -> str:
    """Write a blob no row names (what a kill between an upload's write and its commit
    leaves). :returns: its path."""
    path = os.path.join(_folder(app), name)
    with open(path, "wb") as out:
        out.write(b"never committed")
    return path


def _kept(client: Client, auth: dict[str, str]) -> None:
    meta = json.dumps({"name": "kept.txt", "parent_id": "root"})
    answer = client.post(f"{S}/files", data=b"kept", headers={**auth, "X-Kloudless-Metadata": meta})
    assert answer.status_code == 201


def _kept_blob(app: ServerApp) -> str:
    row = app.store.one("SELECT blob FROM objects WHERE name = 'kept.txt'")
    return os.path.join(_folder(app), str(row["blob"]))


def _restart_without_sweep(app: ServerApp, monkeypatch: pytest.MonkeyPatch) -> ServerApp:
    """Close ``app`` and start it again with its start-up sweep not started yet."""
    settings = app.settings
    app.close()
    real = Sweeper.maybe_run
    monkeypatch.setattr(Sweeper, "maybe_run", lambda self: False)
    try:
        return create_app(settings)
    finally:
        monkeypatch.setattr(Sweeper, "maybe_run", real)


def test_start_up_lists_no_blob(
    app: ServerApp, client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _kept(client, auth)
    orphan = _orphan(app, "0" * 32)

    def listing(self: FileBlobStore, prefix: str) -> Any:
        raise AssertionError("the blob store was listed at start-up")

    monkeypatch.setattr(FileBlobStore, "list_keys", listing)
    restarted = _restart_without_sweep(app, monkeypatch)
    try:
        assert os.path.exists(orphan)  # left to the start-up sweep
        assert restarted.sweeper.orphans_before is not None
        assert "orphan_blobs" not in restarted.recovered
    finally:
        restarted.close()


def test_the_start_up_sweep_removes_only_what_is_older_than_the_start(
    app: ServerApp, client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _kept(client, auth)
    orphan = _orphan(app, "0" * 32)
    restarted = _restart_without_sweep(app, monkeypatch)
    try:
        in_flight = _orphan(restarted, "1" * 32)  # written after the start, row not committed
        assert restarted.sweeper.maybe_run()
        restarted.sweeper.wait()
        assert restarted.sweeper.last["blobs"] == 1
        assert not os.path.exists(orphan)
        assert os.path.exists(in_flight) and os.path.exists(_kept_blob(restarted))
        # Later sweeps keep to the grace: the young blob stays until it is an hour old.
        assert restarted.sweeper.orphans_before is None
        assert sweep(restarted)["blobs"] == 0
        assert os.path.exists(in_flight)
    finally:
        restarted.close()


def test_with_another_live_process_the_grace_applies(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    _kept(client, auth)
    app.sweeper.wait()
    orphan = _orphan(app, "0" * 32)
    second = create_app(app.settings)  # app still runs: the second does not start alone
    try:
        assert second.sweeper.orphans_before is None
        second.sweeper.wait()
        assert os.path.exists(orphan)  # maybe an upload of the first process, about to commit
    finally:
        second.close()


def test_a_multipart_file_is_new_when_it_is_linked_in(
    app: ServerApp, client: Client, auth: dict[str, str], settings: Settings
) -> None:
    data = b"abcdefghij"  # part_size 4 in tests
    session = client.post(
        f"{S}/multipart", headers=auth, json={"name": "m.bin", "parent_id": "root", "size": 10}
    ).get_json()
    url = f"{S}/multipart/{session['id']}"
    for number in (1, 2, 3):
        part = data[(number - 1) * 4 : number * 4]
        answer = client.put(url, headers=auth, data=part, query_string={"part_number": number})
        assert answer.status_code == 200
    parts = os.path.join(settings.data_dir, "multipart", str(session["id"]), "data")
    os.utime(parts, (1, 1))  # parts sent long ago (before this process started, or an hour)
    before = time.time() - 5
    done = client.post(f"{url}/complete", headers=auth)
    assert done.status_code == 201, done.data
    row = app.store.one("SELECT blob FROM objects WHERE name = 'm.bin'")
    assert os.stat(os.path.join(_folder(app), str(row["blob"]))).st_mtime >= before


def test_the_store_clock_is_that_of_its_files(tmp_path: Any) -> None:
    store = FileBlobStore(str(tmp_path))
    now = store.clock()
    (tmp_path / "later").write_bytes(b"x")
    assert os.stat(tmp_path / "later").st_mtime >= now
    assert os.listdir(tmp_path) == ["later"]  # the clock's file is gone
    missing = FileBlobStore(str(tmp_path / "missing"))  # not created yet: a second earlier
    assert missing.clock() <= time.time() - 0.5
