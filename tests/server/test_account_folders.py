"""A ``local`` account's folders are checked level by level once per process, then only the
folders used are looked at (still real folders): the blob folder on every request, the temp
folder when first written into (reads and in-place uploads never are). Anything else found
there (missing, a symlink) sends the request through the full check again."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from werkzeug.test import Client

from kloudless.server import Settings

from .conftest import BLOB_SIZE, upload

S = "/v1/accounts/me/storage"


def test_folders_are_checked_once_then_only_looked_at(
    client: Client, auth: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blob-sized files: their bytes go through the folders (small ones stay in the database).
    assert upload(client, auth, "first.txt", b"creates the folders" * BLOB_SIZE).status_code == 201
    accounts = os.path.join(settings.data_dir, "accounts")
    checked: list[str] = []
    real_islink = os.path.islink

    def counting(path: Any) -> bool:
        if str(path).startswith(accounts):
            checked.append(str(path))
        return real_islink(path)

    monkeypatch.setattr(os.path, "islink", counting)  # each level of the full check
    for index in range(3):
        assert upload(client, auth, f"f{index}.txt", b"x" * BLOB_SIZE).status_code == 201
        assert client.get(f"{S}/folders/root/contents", headers=auth).status_code == 200
    assert checked == []
    # A folder gone (removed by hand): the next request checks and creates every level again.
    (account,) = os.listdir(accounts)
    # The blob folder of a file store (checked on every request), else the temp folder (a
    # remote store's uploads are written there first).
    used = "blobs" if os.path.isdir(os.path.join(accounts, account, "blobs")) else "tmp"
    shutil.rmtree(os.path.join(accounts, account, used))
    made = upload(client, auth, "again.txt", b"y" * BLOB_SIZE)
    assert made.status_code == 201
    assert os.path.join(accounts, account, used) in checked
    answer = client.get(f"{S}/files/{made.get_json()['id']}/contents", headers=auth)
    assert answer.data == b"y" * BLOB_SIZE


@pytest.mark.only_config("sqlite-files", reason="the temp folder of a file blob store")
def test_the_temp_folder_is_checked_when_first_written_into(
    client: Client, auth: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = upload(client, auth, "first.txt", b"creates the folders".ljust(BLOB_SIZE))
    assert made.status_code == 201
    file_id = made.get_json()["id"]
    (account,) = os.listdir(os.path.join(settings.data_dir, "accounts"))
    tmp = os.path.join(settings.data_dir, "accounts", account, "tmp")
    looked_at: list[str] = []
    real_lstat = os.lstat

    def counting(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        looked_at.append(str(path))
        return real_lstat(path, *args, **kwargs)

    shutil.rmtree(tmp)
    monkeypatch.setattr(os, "lstat", counting)
    # Reads and uploads (written in place in the blob folder) do not use it.
    assert client.get(f"{S}/files/{file_id}/contents", headers=auth).status_code == 200
    assert upload(client, auth, "second.txt", b"z" * BLOB_SIZE).status_code == 201
    assert tmp not in looked_at and not os.path.exists(tmp)
    # A copy links the blob in the temp folder first: it is checked, found missing, made again.
    copied = client.post(
        f"{S}/files/{file_id}/copy", json={"parent_id": "root", "name": "copy.txt"}, headers=auth
    )
    assert copied.status_code == 201, copied.get_data(as_text=True)
    assert tmp in looked_at and os.path.isdir(tmp)
    copy_id = copied.get_json()["id"]
    copy = client.get(f"{S}/files/{copy_id}/contents", headers=auth)
    assert copy.data == b"creates the folders".ljust(BLOB_SIZE)
