"""Several threads uploading, renaming, replacing and listing at once: nothing lost or
corrupted (SHA-256 compared), no duplicate names, no 500s."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from .conftest import LiveServer

THREADS = 6
FILES_PER_THREAD = 8


def test_concurrent_uploads_renames_listing(live_server: LiveServer) -> None:
    from kloudless import Account

    token = live_server.creds.token
    with Account(token=token) as setup:
        folder = setup.post("storage/folders", json={"name": "concurrency", "parent_id": "root"})
    folder_id = folder.data["id"]
    expected: dict[str, str] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            with Account(token=token) as acc:
                for i in range(FILES_PER_THREAD):
                    payload = f"thread {n} file {i} ".encode() * (50 + i * 37)
                    # every thread uses the same names: the server must auto-rename, not lose
                    meta = {"name": f"shared-{i}.txt", "parent_id": folder_id}
                    created = acc.post(
                        "storage/files",
                        data=payload,
                        headers={"X-Kloudless-Metadata": json.dumps(meta)},
                    )
                    file_id = created.data["id"]
                    if i % 2:
                        acc.patch(f"storage/files/{file_id}", json={"name": f"renamed-{n}-{i}.txt"})
                    if i % 3 == 0:
                        payload = payload[::-1]
                        acc.put(f"storage/files/{file_id}", data=payload)
                    with lock:
                        expected[file_id] = hashlib.sha256(payload).hexdigest()
                    listing = acc.get(
                        f"storage/folders/{folder_id}/contents", params={"page_size": 1000}
                    )
                    assert listing.data["count"] >= 1
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []

    with Account(token=token) as acc:
        listing = acc.get(f"storage/folders/{folder_id}/contents", params={"page_size": 1000})
        objects: list[dict[str, Any]] = listing.data["objects"]
        assert len(objects) == THREADS * FILES_PER_THREAD
        assert len({o["name"] for o in objects}) == len(objects)
        assert {o["id"] for o in objects} == set(expected)
        for obj in objects:
            body = acc.get(f"storage/files/{obj['id']}/contents").content
            assert hashlib.sha256(body).hexdigest() == expected[obj["id"]]
            assert len(body) == obj["size"]
