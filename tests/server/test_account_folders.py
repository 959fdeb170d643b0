"""A ``local`` account's folders are checked level by level once per process, then only the
folders written into are looked at (still real folders): anything else found there (missing, a
symlink) sends the request through the full check again."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from werkzeug.test import Client

from kloudless.server import Settings

from .conftest import upload

S = "/v1/accounts/me/storage"


def test_folders_are_checked_once_then_only_looked_at(
    client: Client, auth: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert upload(client, auth, "first.txt", b"creates the folders").status_code == 201
    accounts = os.path.join(settings.data_dir, "accounts")
    checked: list[str] = []
    real_islink = os.path.islink

    def counting(path: Any) -> bool:
        if str(path).startswith(accounts):
            checked.append(str(path))
        return real_islink(path)

    monkeypatch.setattr(os.path, "islink", counting)  # each level of the full check
    for index in range(3):
        assert upload(client, auth, f"f{index}.txt", b"x").status_code == 201
        assert client.get(f"{S}/folders/root/contents", headers=auth).status_code == 200
    assert checked == []
    # A folder gone (removed by hand): the next request checks and creates every level again.
    (account,) = os.listdir(accounts)
    shutil.rmtree(os.path.join(accounts, account, "tmp"))
    assert upload(client, auth, "again.txt", b"y").status_code == 201
    assert os.path.join(accounts, account, "tmp") in checked
    assert os.path.isdir(os.path.join(accounts, account, "tmp"))
