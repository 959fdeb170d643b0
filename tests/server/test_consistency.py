"""Consistency under concurrency and for arbitrary names: no orphans, no leaked or missing blobs,
names either refused with a 400 or stored exactly."""

from __future__ import annotations

import json
import os
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from kloudless.server.app import ServerApp
from kloudless.server.blobs import blob_store
from kloudless.server.connectors.local_storage import is_inline

from .conftest import BufferedClient, mkdir, upload

S = "/v1/accounts/me/storage"


def _check_store(app: ServerApp) -> None:
    orphans = app.store.one(
        "SELECT COUNT(*) AS n FROM objects o WHERE o.trashed = 0 AND o.parent_id != 'root'"
        " AND NOT EXISTS (SELECT 1 FROM objects p WHERE p.id = o.parent_id AND p.trashed = 0)"
    )
    assert orphans is not None and orphans["n"] == 0
    prefix = "accounts/1/blobs/"
    stored = {key[len(prefix) :] for key, _ in blob_store(app.settings).list_keys(prefix)}
    in_db = {r["blob"] for r in app.store.all("SELECT blob FROM objects WHERE kind = 'file'")}
    inline = {r["blob"] for r in app.store.all("SELECT blob FROM inline_blobs")}
    # Every file's bytes in one place, and nothing left that no file names.
    assert stored == {blob for blob in in_db if not is_inline(blob)}
    assert inline == {blob for blob in in_db if is_inline(blob)}
    tmp_dir = os.path.join(app.settings.data_dir, "accounts", "1", "tmp")
    assert not os.path.isdir(tmp_dir) or os.listdir(tmp_dir) == []


def test_delete_folder_while_uploading_into_it(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    lock = threading.Lock()
    for round_number in range(3):
        folder = mkdir(client, auth, f"victim-{round_number}").get_json()
        sub = mkdir(client, auth, "sub", parent=folder["id"]).get_json()
        statuses: list[int] = []

        def uploader(n: int, target: str = sub["id"], statuses: list[int] = statuses) -> None:
            local = BufferedClient(app)
            for i in range(10):
                status = upload(local, auth, f"f{n}-{i}", b"x" * 100, parent=target).status_code
                with lock:
                    statuses.append(status)

        def deleter(target: str = folder["id"], statuses: list[int] = statuses) -> None:
            local = BufferedClient(app)
            response = local.delete(
                f"{S}/folders/{target}",
                headers=auth,
                query_string={"recursive": "true", "permanent": "true"},
            )
            with lock:
                statuses.append(response.status_code)

        threads = [threading.Thread(target=uploader, args=(n,)) for n in range(3)]
        threads.append(threading.Thread(target=deleter))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert set(statuses) <= {201, 204, 400}
        assert 204 in statuses
        _check_store(app)
        listing = client.get(f"{S}/folders/root/contents", headers=auth).get_json()
        assert folder["id"] not in [o["id"] for o in listing["objects"]]


def test_parallel_same_name_uploads_all_kept(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        local = BufferedClient(app)
        for _ in range(5):
            response = upload(local, auth, "same.txt", f"{n}".encode())
            assert response.status_code == 201
            with lock:
                ids.append(response.get_json()["id"])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    listing = client.get(f"{S}/folders/root/contents", headers=auth).get_json()
    names = [o["name"] for o in listing["objects"]]
    assert (
        len(ids) == 20
        and len(set(names)) == 20
        and set(ids) == {o["id"] for o in listing["objects"]}
    )
    _check_store(app)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=0, max_size=300))
def test_names_refused_or_exact(
    client: Client, app: ServerApp, auth: dict[str, str], name: str
) -> None:
    response = client.post(
        f"{S}/files",
        data=b"n",
        headers=dict(
            auth,
            **{"X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": "root"})},
        ),
        query_string={"overwrite": "true"},
    )
    if response.status_code == 201:
        assert response.get_json()["name"] == name
        assert len(name.encode("utf-8")) <= 255 and name not in ("", ".", "..")
        assert "/" not in name and "\\" not in name and "\x00" not in name
    else:
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.get_json()["error_code"] == "invalid_parameters"
    _check_store(app)


def test_helpers_cover_empty_store(app: ServerApp, client: Client, auth: dict[str, str]) -> None:
    assert client.get(f"{S}/quota", headers=auth).get_json()["used"] == 0
    _check_store(app)
