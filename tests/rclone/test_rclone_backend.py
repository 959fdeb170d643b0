"""The rclone storage backend against every upstream kind (local, S3, SFTP, WebDAV, FTP, crypt),
each a real protocol server on loopback (``rclone serve ...``) reached through the rcd."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from kloudless.server.connectors.rclone_storage import UPLOAD_PREFIX, RcloneStorage
from kloudless.server.errors import ApiError

from .servers import Upstream

#: The slow multi-step tests run on these kinds only (every kind runs the rest, and the storage
#: e2e tests in test_rclone_e2e.py): server-side copy (local, S3), none (WebDAV: rclone copies
#: through the rcd), and end-to-end encryption.
SOME_KINDS = pytest.mark.parametrize("upstream", ["local", "s3", "webdav", "crypt"], indirect=True)


def _files_on_disk(folder: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _dirs, names in os.walk(folder)
        for name in names
    )


def _read(backend: RcloneStorage, file_id: str) -> bytes:
    opened = backend.open_contents(file_id)
    with opened.stream:
        return opened.stream.read()


def test_folders_files_and_listing(backend: RcloneStorage, upstream: Upstream) -> None:
    docs, created = backend.create_folder("root", "docs", False)
    assert created and docs.type == "folder" and docs.parent_id == "root"
    again, created_again = backend.create_folder("root", "docs", False)
    assert (again.id, created_again) == (docs.id, False)
    with pytest.raises(ApiError) as conflict:
        backend.create_folder("root", "docs", True)
    assert conflict.value.status == 409
    assert conflict.value.extra["conflicting_resource_id"] == docs.id

    sub, _ = backend.create_folder(docs.id, "sub", False)
    report = backend.upload(docs.id, "report.txt", io.BytesIO(b"quarterly"), False, 1000)
    assert (report.size, report.name, report.parent_id) == (9, "report.txt", docs.id)
    assert report.ancestors == [("root", ""), (docs.id, "docs")]
    assert backend.get(report.id, "file").id == report.id
    listed = backend.list_folder(docs.id)
    assert [(o.name, o.type) for o in listed] == [("sub", "folder"), ("report.txt", "file")]
    assert [o.id for o in listed] == [sub.id, report.id]
    everything = backend.list_folder("root", recursive=True)
    assert {o.name for o in everything} == {"docs", "sub", "report.txt"}
    page, more = backend.list_folder_page(docs.id, False, 1, 1)
    assert not more and [o.name for o in page] == ["report.txt"]
    first, more = backend.list_folder_page(docs.id, False, 0, 1)
    assert more and [o.name for o in first] == ["sub"]
    with pytest.raises(ApiError) as wrong_kind:
        backend.get(report.id, "folder")
    assert wrong_kind.value.status == 404
    with pytest.raises(ApiError) as unknown:
        backend.get("Fxxxxxxxxxxxxxxxxxxxx", "file")
    assert unknown.value.status == 404
    if upstream.encrypted:
        # crypt: neither the names nor the contents are readable on the disk below.
        stored = _files_on_disk(upstream.folder)
        assert stored and not any("report" in name for name in stored)
        for name in stored:
            assert b"quarterly" not in (upstream.folder / name).read_bytes()
    else:
        assert (upstream.folder / "docs" / "report.txt").read_bytes() == b"quarterly"


def test_upload_overwrite_and_auto_rename(backend: RcloneStorage, upstream: Upstream) -> None:
    first = backend.upload("root", "notes.txt", io.BytesIO(b"one"), False, 100)
    renamed = backend.upload("root", "notes.txt", io.BytesIO(b"two"), False, 100)
    assert renamed.name == "notes (1).txt" and renamed.id != first.id
    replaced = backend.upload("root", "notes.txt", io.BytesIO(b"three"), True, 100)
    assert replaced.id == first.id and _read(backend, first.id) == b"three"
    updated = backend.replace_contents(first.id, io.BytesIO(b"four!"), 100)
    assert (updated.id, updated.size) == (first.id, 5)
    assert _read(backend, first.id) == b"four!"
    names = sorted(o.name for o in backend.list_folder("root"))
    assert names == ["notes (1).txt", "notes.txt"]


def test_names_with_awkward_characters(backend: RcloneStorage, upstream: Upstream) -> None:
    name = 'fa "quoted" 100% sûr #1?.txt'
    obj = backend.upload("root", name, io.BytesIO(b"x"), False, 10)
    assert obj.name == name
    assert [o.name for o in backend.list_folder("root")] == [name]
    assert _read(backend, obj.id) == b"x"


def test_ranged_and_large_download(backend: RcloneStorage, upstream: Upstream) -> None:
    data = os.urandom(300_000)
    obj = backend.upload("root", "blob.bin", io.BytesIO(data), False, len(data))
    opened = backend.open_contents(obj.id)
    assert opened.size == len(data)
    with opened.stream as stream:
        stream.seek(123_456)
        assert stream.read(1000) == data[123_456:124_456]
    assert _read(backend, obj.id) == data


def test_too_large_upload_leaves_nothing(backend: RcloneStorage, upstream: Upstream) -> None:
    with pytest.raises(ApiError) as too_large:
        backend.upload("root", "big.bin", io.BytesIO(b"z" * 200_000), False, 100_000)
    assert too_large.value.status == 413
    assert backend.list_folder("root") == []
    leftovers = [n for n in _files_on_disk(upstream.folder) if UPLOAD_PREFIX in n]
    if not upstream.encrypted:
        assert leftovers == []
    assert _files_on_disk(upstream.folder) == []


def test_rename_and_move_keep_ids(backend: RcloneStorage, upstream: Upstream) -> None:
    a, _ = backend.create_folder("root", "a", False)
    b, _ = backend.create_folder("root", "b", False)
    inner, _ = backend.create_folder(a.id, "inner", False)
    deep = backend.upload(inner.id, "deep.txt", io.BytesIO(b"deep"), False, 100)
    top = backend.upload(a.id, "top.txt", io.BytesIO(b"top"), False, 100)

    renamed = backend.update(top.id, "file", name="renamed.txt")
    assert (renamed.id, renamed.name) == (top.id, "renamed.txt")
    moved = backend.update(a.id, "folder", parent_id=b.id, name="a2")
    assert moved.id == a.id and moved.parent_id == b.id
    # Everything below the moved folder keeps its id and is found at its new place.
    assert backend.get(inner.id, "folder").ancestors[-1] == (a.id, "a2")
    assert _read(backend, deep.id) == b"deep"
    assert backend.get(renamed.id, "file").parent_id == a.id
    assert [o.name for o in backend.list_folder("root")] == ["b"]

    other = backend.upload("root", "other.txt", io.BytesIO(b"o"), False, 100)
    with pytest.raises(ApiError) as taken:
        backend.update(other.id, "file", parent_id=a.id, name="renamed.txt")
    assert taken.value.status == 409
    with pytest.raises(ApiError) as into_itself:
        backend.update(b.id, "folder", parent_id=inner.id)
    assert into_itself.value.status == 400


@SOME_KINDS
def test_copy_and_delete(backend: RcloneStorage, upstream: Upstream) -> None:
    src, _ = backend.create_folder("root", "src", False)
    backend.upload(src.id, "f.txt", io.BytesIO(b"copy me"), False, 100)
    dst, _ = backend.create_folder("root", "dst", False)
    copied = backend.copy(src.id, "folder", dst.id, None)
    assert copied.name == "src" and copied.id != src.id
    assert [o.name for o in backend.list_folder(copied.id)] == ["f.txt"]
    again = backend.copy(src.id, "folder", dst.id, None)
    assert again.name == "src (1)"
    file_copy = backend.copy(backend.list_folder(src.id)[0].id, "file", "root", "g.txt")
    assert _read(backend, file_copy.id) == b"copy me"

    with pytest.raises(ApiError) as not_empty:
        backend.delete(src.id, "folder", recursive=False, permanent=True)
    assert (not_empty.value.status, not_empty.value.error_code) == (403, "folder_not_empty")
    gone = backend.delete(src.id, "folder", recursive=True, permanent=True)
    assert gone.id == src.id
    with pytest.raises(ApiError) as missing:
        backend.get(src.id, "folder")
    assert missing.value.status == 404
    backend.delete(file_copy.id, "file", recursive=False, permanent=True)
    assert sorted(o.name for o in backend.list_folder("root")) == ["dst"]
    with pytest.raises(ApiError) as root:
        backend.delete("root", "folder", recursive=True, permanent=True)
    assert root.value.status == 403


@SOME_KINDS
def test_search_recent_quota_and_capabilities(backend: RcloneStorage, upstream: Upstream) -> None:
    folder, _ = backend.create_folder("root", "Projects", False)
    backend.upload(folder.id, "Budget-2026.xlsx", io.BytesIO(b"1"), False, 10)
    backend.upload("root", "budget notes.txt", io.BytesIO(b"2"), False, 10)
    backend.upload("root", "other.txt", io.BytesIO(b"3"), False, 10)
    found = sorted(o.name for o in backend.search("BUDGET", None))
    assert found == ["Budget-2026.xlsx", "budget notes.txt"]
    assert [o.name for o in backend.search("budget", [folder.id])] == ["Budget-2026.xlsx"]
    recent = backend.recent(None)
    assert {o.name for o in recent} == {"Budget-2026.xlsx", "budget notes.txt", "other.txt"}
    assert backend.recent("2999-01-01T00:00:00Z") == []
    quota = backend.quota()
    assert set(quota) == {"used", "total"}
    if upstream.kind in ("local", "sftp", "crypt"):
        assert isinstance(quota["total"], int) and quota["total"] > 0
    assert backend.capabilities["can_upload_file"] is True
    assert backend.capabilities["can_create_public_links"] == (upstream.kind == "s3")


class Events:
    """Collects what a backend records (an ActivityRecorder stand-in)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def record(self, type_: str, obj: Any) -> int:
        self.events.append((type_, obj))
        return len(self.events)


def test_upstream_changes_become_events(
    backend: RcloneStorage, upstream: Upstream, store: Any
) -> None:
    from kloudless.server.connectors.webdav_snapshots import Snapshots

    events = Events()
    backend.snapshots = Snapshots(store, backend.ids.account_id)
    backend.activity = events  # type: ignore[assignment]
    kept = backend.upload("root", "kept.txt", io.BytesIO(b"v1"), False, 10)
    backend.upload("root", "doomed.txt", io.BytesIO(b"x"), False, 10)
    backend.list_folder("root")  # the baseline
    assert events.events == []
    # Changes made behind the API's back, straight through rclone (crypt included).
    rc, remote = backend.rc, backend.remote
    rc.upload_file(remote, "", "new.txt", io.BytesIO(b"made upstream"))
    rc.upload_file(remote, "", "kept.txt", io.BytesIO(b"changed upstream"))
    rc.call("operations/deletefile", {"fs": f"{remote}:", "remote": "doomed.txt"})
    backend.list_folder("root")
    seen = sorted((t, o.name) for t, o in events.events)
    assert seen == [("add", "new.txt"), ("delete", "doomed.txt"), ("update", "kept.txt")]
    assert [o.id for t, o in events.events if t == "update"] == [kept.id]
    events.events.clear()
    backend.list_folder("root")
    assert events.events == []
