"""A multipart part is received straight into its place in the session file.

Over real HTTP (waitress, :mod:`kloudless.server.serving`), the app's preflight gives the first
upload of a part of a local session (known size, the exact length) its place in
``multipart/<id>/data``: the HTTP server writes the body there as it arrives, instead of
spooling it into ``tmp/body-*`` to copy it there afterwards; the handler only syncs and
records it. Parts sent again, or of another length, are
spooled as before. A write that fails on a full disk is a JSON 507. The write-out of a part's
range is started as it arrives (``sync_file_range``, every
:data:`~kloudless.server.spool.PART_WRITE_OUT_STEP`), received in place or spooled and written
by the handler, so that the data sync before its answer finds little left to write.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from kloudless.server import spool
from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings

MIB = 1024 * 1024
#: Above waitress's in-memory body buffer (512 KiB): such a body would be spooled to a file.
PART = MIB + MIB // 2
# The file store's multipart layout (multipart/<id>/data): on sqlite-files only, as the module's
# own server below is (S3 sessions are S3 multipart uploads: tests/s3/test_s3_blobs.py).


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    data_dir = tmp_path_factory.mktemp("parts-in-place")
    settings = Settings(data_dir=str(data_dir), port=0, multipart_part_size=PART)
    thread = ServerThread(settings).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """:returns: the paths of the request bodies the HTTP server spools from now on."""
    made: list[str] = []
    create = spool.SpooledBody.create.__func__  # type: ignore[attr-defined]

    def counting(
        cls: type[spool.SpooledBody], directory: str, hashed: bool = False
    ) -> spool.SpooledBody:
        body: spool.SpooledBody = create(cls, directory, hashed)
        made.append(body.path)
        return body

    monkeypatch.setattr(spool.SpooledBody, "create", classmethod(counting))
    return made


def _auth(server: ServerThread) -> dict[str, str]:
    assert server.credentials is not None
    return {"Authorization": f"Bearer {server.credentials.token}"}


def _session(server: ServerThread, size: int, name: str) -> str:
    answer = requests.post(
        f"{server.base_url}/v1/accounts/me/storage/multipart",
        json={"name": name, "parent_id": "root", "size": size},
        headers=_auth(server),
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["part_size"] == PART
    return str(answer.json()["id"])


def _put(server: ServerThread, session: str, number: int, data: bytes) -> Any:
    return requests.put(
        f"{server.base_url}/v1/accounts/me/storage/multipart/{session}",
        params={"part_number": number},
        data=data,
        headers=_auth(server),
        timeout=60,
    )


def _complete(server: ServerThread, session: str) -> bytes:
    done = requests.post(
        f"{server.base_url}/v1/accounts/me/storage/multipart/{session}/complete",
        headers=_auth(server),
        timeout=60,
    )
    assert done.status_code == 201, done.text
    contents = requests.get(
        f"{server.base_url}/v1/accounts/me/storage/files/{done.json()['id']}/contents",
        headers=_auth(server),
        timeout=60,
    )
    assert contents.status_code == 200
    return contents.content


def test_first_parts_are_written_in_place_as_they_arrive(
    server: ServerThread, spooled: list[str]
) -> None:
    data = os.urandom(2 * PART + 1000)
    session = _session(server, len(data), "in-place.bin")
    for number in (3, 1, 2):
        part = data[(number - 1) * PART : number * PART]
        answer = _put(server, session, number, part)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"part_number": number, "size": len(part)}
    assert spooled == []  # no body went through a spool file
    assert _complete(server, session) == data


def test_a_part_sent_again_is_spooled_and_replaces_the_first(
    server: ServerThread, spooled: list[str]
) -> None:
    first, second = os.urandom(PART), os.urandom(PART)
    session = _session(server, 2 * PART, "again.bin")
    assert _put(server, session, 1, first).status_code == 200
    assert _put(server, session, 2, first).status_code == 200
    assert spooled == []
    assert _put(server, session, 2, second).status_code == 200
    assert len(spooled) == 1  # the known part goes the careful way (row deleted first)
    assert _complete(server, session) == first + second


def test_a_part_of_another_length_is_refused_without_being_placed(
    server: ServerThread, spooled: list[str]
) -> None:
    session = _session(server, 2 * PART, "short.bin")
    answer = _put(server, session, 1, os.urandom(PART - 1))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "invalid_parameters"
    assert len(spooled) == 1  # not given a place: spooled, then refused
    data_file = os.path.join(server.app.settings.data_dir, "multipart", session, "data")
    assert not os.path.exists(data_file) or os.path.getsize(data_file) == 0


def test_a_full_disk_while_a_part_arrives_is_a_json_507(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = _session(server, PART, "full.bin")

    def full(self: spool.InPlaceBody, data: bytes) -> None:
        self.error = OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool.InPlaceBody, "write", full)
    answer = _put(server, session, 1, os.urandom(PART))
    assert answer.status_code == 507, answer.text
    body = answer.json()
    assert body["error_code"] == "insufficient_storage"
    assert set(body) >= {"status_code", "error_code", "message", "id"}
    monkeypatch.undo()
    # Nothing was recorded: the part can be sent again, in place.
    data = os.urandom(PART)
    assert _put(server, session, 1, data).status_code == 200
    assert _complete(server, session) == data


@pytest.fixture
def write_outs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int, int]]:
    """:returns: ``(inode, offset, length, flags)`` of each write-out started from now on."""
    calls: list[tuple[int, int, int, int]] = []

    def recording(fd: int, offset: int, length: int, flags: int) -> int:
        calls.append((os.fstat(fd).st_ino, offset, length, flags))
        return 0

    monkeypatch.setattr(spool, "_sync_file_range", recording)
    return calls


def _assert_part_written_out(
    calls: list[tuple[int, int, int, int]], inode: int, offset: int, length: int
) -> None:
    """The write-out of the part at ``offset`` was started in contiguous steps from its start,
    up to its last step, on page boundaries, never past it."""
    mine = [call for call in calls if call[0] == inode and offset <= call[1] < offset + length]
    assert mine, f"no write-out of the part at {offset}: {calls}"
    started = offset
    for _, start, size, flags in mine:
        assert (start, flags) == (started, 2)  # contiguous, SYNC_FILE_RANGE_WRITE only
        assert size >= spool.PART_WRITE_OUT_STEP
        started = start + size
        assert started % mmap.PAGESIZE == 0
    assert offset + length - spool.PART_WRITE_OUT_STEP - mmap.PAGESIZE <= started
    assert started <= offset + length


def test_a_part_in_place_is_written_out_as_it_arrives(
    server: ServerThread, spooled: list[str], write_outs: list[tuple[int, int, int, int]]
) -> None:
    data = os.urandom(2 * PART)
    session = _session(server, len(data), "written-out.bin")
    for number in (2, 1):
        assert _put(server, session, number, data[(number - 1) * PART : number * PART]).ok
    assert spooled == []
    inode = os.stat(os.path.join(server.app.settings.data_dir, "multipart", session, "data"))
    for offset in (0, PART):
        _assert_part_written_out(write_outs, inode.st_ino, offset, PART)
    assert _complete(server, session) == data  # the same bytes


def test_a_part_sent_again_is_written_out_as_the_handler_writes_it(
    server: ServerThread, spooled: list[str], write_outs: list[tuple[int, int, int, int]]
) -> None:
    first, second = os.urandom(PART), os.urandom(PART)
    session = _session(server, 2 * PART, "again-written-out.bin")
    assert _put(server, session, 1, first).ok
    assert _put(server, session, 2, first).ok
    write_outs.clear()
    assert _put(server, session, 2, second).ok
    assert len(spooled) == 1  # spooled, then written at its offset by the handler
    inode = os.stat(os.path.join(server.app.settings.data_dir, "multipart", session, "data"))
    _assert_part_written_out(write_outs, inode.st_ino, PART, PART)
    assert _complete(server, session) == first + second


def test_a_session_folder_is_synced_once_per_file(
    server: ServerThread, spooled: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = spool.fsync_dir
    monkeypatch.setattr(spool, "fsync_dir", lambda path: synced.append(path) or real(path))
    data = os.urandom(3 * PART)
    session = _session(server, len(data), "entry.bin")
    folder = os.path.join(server.app.settings.data_dir, "multipart", session)
    for number in (1, 2):  # received in place
        assert _put(server, session, number, data[(number - 1) * PART : number * PART]).ok
    assert _put(server, session, 2, data[PART : 2 * PART]).ok  # sent again: the handler's way
    assert len(spooled) == 1
    assert synced.count(folder) == 1  # the file's entry once, not once per part
    # A new process (or a file made anew there, another inode) syncs the entry again.
    monkeypatch.setattr(spool, "_ENTRIES_SYNCED", set())
    assert _put(server, session, 3, data[2 * PART :]).ok
    assert synced.count(folder) == 2
    assert _complete(server, session) == data


def test_a_file_made_anew_has_its_entry_synced(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    monkeypatch.setattr(spool, "fsync_dir", synced.append)
    path = str(tmp_path / "data")
    for _ in range(2):
        with open(path, "wb") as first:
            spool.sync_entry_once(first.fileno(), path)
            spool.sync_entry_once(first.fileno(), path)
        moved = str(tmp_path / "kept")
        os.rename(path, moved)  # keeps the inode in use: the new file gets another one
    assert synced == [str(tmp_path)] * 2
