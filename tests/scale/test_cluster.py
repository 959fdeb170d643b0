"""A cluster: two ``kloudless serve`` processes, each with a data dir of its own (as on two
machines), over one PostgreSQL database and one S3 endpoint (moto in server mode), behind a
round-robin proxy. An SDK workload (default retries: keyed uploads, listings, events with a
cursor, a multipart upload begun on one process and completed on the other, webhooks) runs
while one process is SIGKILLed and restarted. Then: nothing lost, nothing duplicated, every
byte intact and in the bucket (none in the data dirs), no unfinished S3 upload left, the events
cursor never went backwards, and no webhook notification was delivered twice except the one a
killed process may have sent without recording it."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import threading
import time
from typing import Any, Callable

import requests

from kloudless.server import webhooks as hooks
from kloudless.server.connectors.registry import services
from kloudless.server.store import Store
from tests.pgserver import PostgresServer
from tests.s3.servers import S3Endpoint, moto_s3
from tests.security.conftest import LoopbackServer, Reply, Seen

from .processes import Served, free_port
from .proxy import RoundRobinProxy

UPLOADS = 40
KILL_AFTER = 12  # uploads done when the first process is killed
WAIT = 120.0


def _serve(data: str, port: int, url: str, s3: S3Endpoint, bucket: str) -> Served:
    return Served(
        ["--data-dir", data, "--port", str(port), "--allow-upstream", "127.0.0.1"],
        env={
            "KLOUDLESS_DATABASE_URL": url,
            "KLOUDLESS_BLOB_STORE": f"s3://{bucket}/kl",
            **s3.env(),
        },
    )


def _names(listing: Any) -> list[str]:
    return sorted(o["name"] for o in listing.data["objects"])


def test_two_processes_over_postgres_and_s3_survive_a_sigkill(
    tmp_path: Any, postgres: PostgresServer, loopback: Callable[[Reply], LoopbackServer]
) -> None:
    with moto_s3() as s3:
        _cluster_run(tmp_path, postgres, loopback, s3, s3.new_bucket())


def _cluster_run(
    tmp_path: Any,
    postgres: PostgresServer,
    loopback: Callable[[Reply], LoopbackServer],
    s3: S3Endpoint,
    bucket: str,
) -> None:
    from kloudless import Account

    url = postgres.new_database()
    datas = [str(tmp_path / "data-a"), str(tmp_path / "data-b")]
    ports = [free_port(), free_port()]
    first = _serve(datas[0], ports[0], url, s3, bucket).start()
    second = _serve(datas[1], ports[1], url, s3, bucket).start()
    proxy = RoundRobinProxy([("127.0.0.1", p) for p in ports]).start()
    restarted: Served | None = None
    try:
        exports = first.exports()
        assert second.exports() == {}  # one process created the application
        token, app_id = exports["KLOUDLESS_TOKEN"], exports["KLOUDLESS_APP_ID"]

        seen: list[Seen] = []
        lock = threading.Lock()

        def receive(request: Seen) -> tuple[int, dict[str, str], bytes]:
            with lock:
                seen.append(request)
            return 200, {}, app_id.encode()

        receiver = loopback(receive)
        services()
        store = Store(str(tmp_path / "unused.sqlite3"), url)
        try:
            hooks.configure_webhook(store, app_id, receiver.url)
        finally:
            store.close()

        expected: dict[str, str] = {}
        in_bucket: set[str] = set()
        cursors: list[int] = []
        cursor: Any = None

        def account() -> Any:
            # A new client (and connection) per call: the proxy alternates the processes.
            return Account(token=token, base_url=proxy.url)

        def read_events() -> None:
            nonlocal cursor
            with account() as acc:
                if cursor is None:
                    cursor = acc.get("events/latest").data["cursor"]
                    return
                page = acc.get("events", params={"cursor": cursor, "page_size": 1000}).data
            ids = [int(e["event_id"]) for e in page["objects"]]
            assert ids == sorted(ids) and all(i > int(cursor) for i in ids)
            assert int(page["cursor"]) >= int(cursor)  # never backwards
            cursor = page["cursor"]
            cursors.append(int(cursor))

        read_events()
        for n in range(UPLOADS):
            if n == KILL_AFTER:
                assert first.proc is not None
                # Killed while the next requests are sent: the proxy's next connection, or a
                # retry, reaches the other process.
                threading.Timer(0.05, first.proc.send_signal, (signal.SIGKILL,)).start()
            if n == KILL_AFTER + 8:
                first.stop()
                restarted = _serve(datas[0], ports[0], url, s3, bucket).start()
                assert restarted.exports() == {}
            body = f"file {n} ".encode() * (100 + n)
            if n % 2 == 0:  # over 16 KiB: into the bucket (smaller ones: into the database)
                body *= 30
                in_bucket.add(f"f{n}.txt")
            with account() as acc:
                created = acc.post(
                    "storage/files",
                    data=body,
                    headers={"X-Kloudless-Metadata": json.dumps({"name": f"f{n}.txt"})},
                )
            expected[f"f{n}.txt"] = hashlib.sha256(body).hexdigest()
            assert created.data["name"] == f"f{n}.txt"
            if n % 5 == 0:
                read_events()
        read_events()

        # A multipart upload begun on one process, its parts sent to both, completed on the
        # other (the parts are an S3 multipart upload, the session is in the database).
        auth = {"Authorization": f"Bearer {token}"}
        base = [f"http://127.0.0.1:{p}/v1/accounts/me/storage/multipart" for p in ports]
        session = requests.post(
            base[0], headers=auth, json={"name": "big.bin", "parent_id": "root"}, timeout=60
        ).json()
        parts = [b"a" * session["part_size"], b"b" * 10]
        for number, part in enumerate(parts, 1):
            answer = requests.put(
                f"{base[number % 2]}/{session['id']}",
                params={"part_number": number},
                data=part,
                headers=auth,
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
        done = requests.post(f"{base[1]}/{session['id']}/complete", headers=auth, timeout=60)
        assert done.status_code in (200, 201), done.text
        expected["big.bin"] = hashlib.sha256(b"".join(parts)).hexdigest()

        with account() as acc:
            listing = acc.get("storage/folders/root/contents", params={"page_size": 1000})
            names = _names(listing)
            assert names == sorted(expected)  # nothing lost, nothing duplicated
        for obj in listing.data["objects"]:
            content = requests.get(
                f"{proxy.url}/v1/accounts/me/storage/files/{obj['id']}/contents",
                headers=auth,
                timeout=60,
            )
            assert content.status_code == 200
            assert hashlib.sha256(content.content).hexdigest() == expected[obj["name"]]
        assert cursors == sorted(cursors)
        assert min(proxy.counts) > 0  # both processes answered
        # The bytes are in the bucket (the multipart file's too) or, for small files, in the
        # shared database, none in the data dirs; the multipart upload finished.
        assert len(s3.keys(bucket, "kl/accounts/")) >= len(in_bucket) + 1
        assert s3.uploads(bucket) == []
        for data in datas:
            assert glob.glob(os.path.join(data, "accounts", "*", "blobs", "*")) == []

        def delivered() -> bool:
            with lock:
                return any(s.body for s in seen[-1:]) and _queue_empty(url, tmp_path)

        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not delivered():
            time.sleep(0.2)
        with lock:
            notes = [s for s in seen if s.body]
        assert notes, "no webhook notification arrived"
        ids = [s.headers[hooks.DELIVERY_HEADER] for s in notes]
        assert len(ids) - len(set(ids)) <= 1  # at most the one the SIGKILL interrupted
    finally:
        proxy.stop()
        for served in (first, second, restarted):
            if served is not None and served.proc is not None:
                served.stop()


def _queue_empty(url: str, tmp_path: Any) -> bool:
    store = Store(str(tmp_path / "unused.sqlite3"), url)
    try:
        return store.one("SELECT 1 FROM webhook_queue LIMIT 1") is None
    finally:
        store.close()
