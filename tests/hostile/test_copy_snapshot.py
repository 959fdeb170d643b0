"""Folder copies while the folder's files change: every copy succeeds (never a 409 "source
changed, try again", which a client cannot prevent) and is a consistent snapshot: the versions of
its files are those the source held together at one moment.

A real editor thread replaces the files one after the other (each version's bytes name the
file and the version) through the API of a real server while the main thread copies the folder.
Because the editor waits for each answer, the edits commit in the order it made them, so "one
moment" can be checked exactly: with ``t`` the newest version found in a copy, no file of the
copy may be older than that file's newest version at ``t``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from typing import Any

import pytest
import requests

from .conftest import Hostile

FILES = 5
COPIES = 12
SIZE = 20_000
#: A file copied before the edited ones (it sorts first: a direct child of the copied folder,
#: the edited files are in a subfolder), so that they change while it is copied.
BIG = 1024 * 1024
#: Seconds each file of a copy takes (see :func:`slow_copies`).
SLOW = 0.03
#: The editor's bounds (it stops earlier, once the copies are done).
MAX_EDITS = 5000
EDIT_SECONDS = 120.0


def _content(file_index: int, version: int) -> bytes:
    tag = f"file {file_index} version {version};".encode()
    return (tag * (SIZE // len(tag) + 1))[:SIZE]


def _version(data: bytes) -> tuple[int, int]:
    words = data.split(b";", 1)[0].split()
    return int(words[1]), int(words[3])


@pytest.fixture
def slow_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make each file a copy takes (a byte copy or a hard link into ``tmp/cp-*``) cost
    :data:`SLOW` seconds, as big files on a slow disk would, so that the edits really happen
    while the folder is being copied (the server runs in this process)."""
    for module, name in ((shutil, "copyfile"), (os, "link")):
        original = getattr(module, name)

        def slow(source: Any, dest: Any, *args: Any, _original: Any = original) -> Any:
            if os.path.basename(str(dest)).startswith("cp-"):
                time.sleep(SLOW)
            return _original(source, dest, *args)

        monkeypatch.setattr(module, name, slow)


def test_folder_copies_during_edits_are_consistent_snapshots(
    hostile: Hostile, slow_copies: None
) -> None:
    api = f"{hostile.base_url}/v1/accounts/me/storage"
    session = requests.Session()
    session.headers.update(hostile.auth)

    def upload(name: str, parent_id: str, data: bytes) -> str:
        metadata = json.dumps({"name": name, "parent_id": parent_id})
        response = session.post(
            f"{api}/files",
            headers={"X-Kloudless-Metadata": metadata, "Content-Type": "application/octet-stream"},
            data=data,
            timeout=60,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def new_folder(name: str, parent_id: str) -> str:
        answer = session.post(
            f"{api}/folders", json={"name": name, "parent_id": parent_id}, timeout=30
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    folder = new_folder("busy", "root")
    edited = new_folder("edited", folder)
    upload("big.bin", folder, b"\0" * BIG)
    # edits[k] = the file that version k is of; versions 0..FILES-1 are the first uploads.
    edits: list[int] = []
    ids = []
    for index in range(FILES):
        ids.append(upload(f"f{index}.txt", edited, _content(index, len(edits))))
        edits.append(index)

    stop = threading.Event()
    failures: list[str] = []

    def editor() -> None:
        deadline = time.monotonic() + EDIT_SECONDS
        with requests.Session() as own:
            own.headers.update(hostile.auth)
            while not stop.is_set() and len(edits) < MAX_EDITS and time.monotonic() < deadline:
                index = len(edits) % FILES
                answer = own.put(
                    f"{api}/files/{ids[index]}", data=_content(index, len(edits)), timeout=60
                )
                if answer.status_code != 200:
                    failures.append(f"edit: {answer.status_code} {answer.text[:200]}")
                    return
                edits.append(index)

    thread = threading.Thread(target=editor, daemon=True)
    thread.start()
    statuses = []
    copies = []
    edits_before = len(edits)
    try:
        for n in range(COPIES):
            # A copy holds the write lock, so back-to-back copies could starve the editor
            # (SQLite's busy wait): let it commit an edit first (bounded).
            seen = len(edits)
            deadline = time.monotonic() + 30
            while len(edits) == seen and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            answer = session.post(
                f"{api}/folders/{folder}/copy",
                json={"parent_id": "root", "name": f"copy {n}"},
                timeout=60,
            )
            statuses.append(answer.status_code)
            if answer.status_code == 201:
                copies.append(answer.json()["id"])
    finally:
        edits_during = len(edits) - edits_before
        stop.set()
        thread.join(90)
    assert not thread.is_alive()
    assert failures == []
    assert statuses == [201] * COPIES
    assert edits_during > 0  # the folder really changed while it was copied

    inconsistent = []
    for copy_id in copies:
        top = session.get(f"{api}/folders/{copy_id}/contents", timeout=30).json()["objects"]
        assert sorted((o["name"], o["size"]) for o in top) == [("big.bin", BIG), ("edited", None)]
        sub = next(o["id"] for o in top if o["type"] == "folder")
        listing = session.get(f"{api}/folders/{sub}/contents", timeout=30).json()
        found: dict[int, int] = {}
        for item in listing["objects"]:
            data = session.get(f"{api}/files/{item['id']}/contents", timeout=30).content
            assert len(data) == item["size"] == SIZE
            file_index, version = _version(data)
            assert data == _content(file_index, version)
            assert item["name"] == f"f{file_index}.txt" and edits[version] == file_index
            found[file_index] = version
        assert sorted(found) == list(range(FILES))
        moment = max(found.values())
        for file_index, version in found.items():
            newer = [k for k in range(version + 1, moment + 1) if edits[k] == file_index]
            if newer:
                inconsistent.append((copy_id, file_index, version, newer[0]))
    print(f"\ncopy during edits: {COPIES} copies, {edits_during} concurrent edits")
    assert inconsistent == []
