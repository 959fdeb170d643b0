"""What a worker of ``kloudless serve --workers 2`` had in progress when it was killed with
SIGKILL is taken over by the processes that live on: a task it was running is failed with
``task_interrupted`` (not left ``PENDING`` forever), and a multipart upload it was completing
is reopened, so the retried ``complete`` creates the file (once)."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import requests

from kloudless.server.settings import Settings
from tests.security.conftest import LoopbackServer, Reply, Seen

from .processes import Served, free_port, live_pids

WAIT = 120.0
MIB = 1024 * 1024
PARTS = 8  # of the default 8 MiB: a complete that takes a while to assemble
ATTEMPTS = 3  # kills that may land after the complete finished (then another session)


class Cluster:
    def __init__(self, served: Served, db: str, token: str) -> None:
        self.served = served
        self.db = db
        self.auth = {"Authorization": f"Bearer {token}"}
        self.api = f"{served.base_url}/v1/accounts/me"

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db, timeout=30) as conn:
            return list(conn.execute(sql, params).fetchall())

    def pid_of(self, instance: str) -> int:
        rows = self.query("SELECT pid FROM server_instances WHERE id = ?", (instance,))
        assert rows, f"instance {instance} is not registered"
        return int(rows[0][0])

    def kill(self, pid: int) -> None:
        assert self.served.proc is not None and pid != self.served.proc.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + WAIT
        while pid in live_pids(self.db) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid not in live_pids(self.db)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data = str(tmp_path_factory.mktemp("takeover") / "data")
    args = ["--data-dir", data, "--port", str(free_port()), "--workers", "2"]
    with Served([*args, "--allow-upstream", "127.0.0.1"]) as served:
        yield Cluster(served, Settings(data_dir=data).db_path, served.exports()["KLOUDLESS_TOKEN"])


def _poll(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_task_of_a_killed_worker_fails_instead_of_staying_pending(
    cluster: Cluster, loopback: Callable[[Reply], LoopbackServer]
) -> None:
    release = threading.Event()

    def slow_source(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        release.wait(WAIT)  # the worker's Saver task waits here until it is killed
        return 200, {"Content-Type": "application/octet-stream"}, b"late bytes"

    source = loopback(slow_source)
    try:
        answer = requests.post(
            f"{cluster.api}/storage/files",
            headers=dict(cluster.auth, **{"X-Kloudless-Async": "true"}),
            json={"url": f"{source.url}/file.bin", "name": "from-url.bin", "parent_id": "root"},
            timeout=60,
        )
        assert answer.status_code == 202, answer.text
        task_id = answer.json()["id"]
        _poll("the task to fetch its source", lambda: source.seen)
        rows = cluster.query("SELECT owner, state FROM tasks WHERE id = ?", (task_id,))
        assert rows and rows[0][1] == "PENDING"
        cluster.kill(cluster.pid_of(rows[0][0]))
    finally:
        release.set()

    def ended() -> dict[str, Any] | None:
        polled = requests.get(f"{cluster.api}/tasks/{task_id}", headers=cluster.auth, timeout=60)
        body: dict[str, Any] = polled.json()
        return None if body.get("state") == "PENDING" else dict(body, status=polled.status_code)

    body = _poll("the interrupted task to end", ended)
    assert body["status"] == 500 and body["error_code"] == "task_interrupted", body
    names = requests.get(
        f"{cluster.api}/storage/folders/root/contents", headers=cluster.auth, timeout=60
    ).json()["objects"]
    assert "from-url.bin" not in {o["name"] for o in names}  # nothing half-made


def _session_with_parts(cluster: Cluster, name: str) -> tuple[str, bytes]:
    part_size = 8 * MIB
    content = b"".join(bytes([65 + n]) * part_size for n in range(PARTS))
    session = requests.post(
        f"{cluster.api}/storage/multipart",
        headers=cluster.auth,
        json={"name": name, "parent_id": "root", "size": len(content)},
        timeout=60,
    ).json()
    assert session["part_size"] == part_size, session
    with requests.Session() as http:
        for n in range(PARTS):
            put = http.put(
                f"{cluster.api}/storage/multipart/{session['id']}",
                params={"part_number": n + 1},
                data=content[n * part_size : (n + 1) * part_size],
                headers=cluster.auth,
                timeout=120,
            )
            assert put.status_code == 200, put.text
    return str(session["id"]), content


def _complete_in_background(cluster: Cluster, session_id: str) -> threading.Thread:
    def complete() -> None:
        try:
            requests.post(
                f"{cluster.api}/storage/multipart/{session_id}/complete",
                headers=cluster.auth,
                timeout=WAIT,
            )
        except requests.RequestException:
            pass  # the worker was killed under it

    thread = threading.Thread(target=complete, daemon=True)
    thread.start()
    return thread


def test_a_complete_interrupted_by_a_killed_worker_can_be_retried(cluster: Cluster) -> None:
    for attempt in range(ATTEMPTS):
        name = f"big-{attempt}.bin"
        session_id, content = _session_with_parts(cluster, name)
        thread = _complete_in_background(cluster, session_id)

        deadline = time.monotonic() + WAIT
        owner = None
        while time.monotonic() < deadline:
            rows = cluster.query(
                "SELECT owner FROM multipart WHERE id = ? AND state = 'completing'", (session_id,)
            )
            if rows:
                owner = str(rows[0][0])
                break
            if not cluster.query("SELECT 1 FROM multipart WHERE id = ?", (session_id,)):
                break  # completed before it was seen completing
            time.sleep(0.002)
        if owner is None:
            thread.join(WAIT)
            continue
        cluster.kill(cluster.pid_of(owner))
        thread.join(WAIT)
        left = cluster.query("SELECT state FROM multipart WHERE id = ?", (session_id,))
        if not left:
            continue  # the kill came after the commit: nothing to take over this time
        assert left[0][0] == "completing"  # what the dead worker left
        done = requests.post(
            f"{cluster.api}/storage/multipart/{session_id}/complete",
            headers=cluster.auth,
            timeout=WAIT,
        )
        assert done.status_code == 201, done.text
        assert done.json()["name"] == name and done.json()["size"] == len(content)
        listing = requests.get(
            f"{cluster.api}/storage/folders/root/contents", headers=cluster.auth, timeout=60
        ).json()["objects"]
        assert [o["name"] for o in listing].count(name) == 1
        body = requests.get(
            f"{cluster.api}/storage/files/{done.json()['id']}/contents",
            headers=cluster.auth,
            timeout=WAIT,
        )
        assert hashlib.sha256(body.content).digest() == hashlib.sha256(content).digest()
        return
    pytest.fail(f"in {ATTEMPTS} attempts the kill never landed while a complete ran")
