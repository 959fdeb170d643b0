"""``kill -9`` under load: a real ``kloudless serve`` process is killed with SIGKILL at random
moments while SDK clients (default retries) write to it, and restarted on the same data dir.

Afterwards, with the server restarted once more (start-up recovery done) and then stopped
(SIGTERM: the server waits for its start-up sweep, which removes the blobs a kill left, to
finish), everything is checked against what the clients were told:

* no duplicates: every name an operation used exists at most once, and nothing exists under a
  name no operation used (an auto-renamed second upload or copy);
* nothing acknowledged is lost: every acknowledged file, folder, copy and event exists, files
  with their bytes (downloaded and hashed), and acknowledged deletes stay deleted;
* no missing activity: every object has its ``add``/``copy`` event (and nothing has an event
  without its change: events of objects that never existed are counted too);
* no multipart session is stuck in ``completing``;
* no orphan blob: every file in ``blobs/`` (and every small file's bytes kept in the database)
  is referenced by a row, and the blob journal is empty.

It runs twice: with the blobs in the data dir (the default), and in S3 (``--blob-store
s3://...`` on moto, started by the test on loopback), where the blobs are objects of the bucket
and a put a kill interrupted before its commit is left for the sweep: the checks run the sweeps
as they run once their graces have passed (an hour for puts and uploads, a week for idle
multipart sessions, which hold the blob a dying complete assembled), on the stopped server's
state, then count objects and unfinished uploads in the bucket.

The kill times and the operations come from a fixed seed; the run is bounded (kills, a time
limit per phase, bounded waits), so it takes well under a minute on an idle machine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import pytest

from tests.s3.servers import S3Endpoint, aws_environment, moto_s3

from .test_workload import list_events, list_storage

SEED = 20261201
KILLS = 8
CLIENTS = 4
#: Longest a client thread keeps starting operations (a bound; the kills normally end first).
WORKLOAD_SECONDS = 90.0
START_TIMEOUT = 60.0
SIZES = (0, 1, 100, 5_000, 40_000)
#: Above this the SDK uses a multipart upload (one 8 MiB-sized part on this server).
MULTIPART_THRESHOLD = 60_000
EVENT = {"start": "2026-01-05T10:00:00Z", "end": "2026-01-05T11:00:00Z"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """``kloudless serve`` on a fixed port and data dir, killable and restartable."""

    def __init__(
        self,
        data_dir: str,
        port: int,
        log_path: str,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = args
        self.env = env or {}
        self.data_dir = data_dir
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.token: str | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        log: IO[str] = open(self.log_path, "a")  # noqa: SIM115 - the child writes into it
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kloudless.cli",
                    "serve",
                    "--data-dir",
                    self.data_dir,
                    "--port",
                    str(self.port),
                    "--threads",
                    "8",
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env=dict(os.environ, PYTHONUNBUFFERED="1", **self.env),
            )
        finally:
            log.close()
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self._log_tail(offset)
            with open(self.log_path) as fh:
                fh.seek(offset)
                text = fh.read()
            if self.token is None and "KLOUDLESS_TOKEN=" in text:
                line = text.split("KLOUDLESS_TOKEN=", 1)[1].splitlines()[0]
                self.token = line.strip().strip("'")
            if "Serving" in text and self.token is not None:
                return
            time.sleep(0.05)
        raise AssertionError("the server did not start: " + self._log_tail(offset))

    def _log_tail(self, offset: int) -> str:
        with open(self.log_path) as fh:
            fh.seek(offset)
            return fh.read()[-2000:]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@dataclass
class Ledger:
    """What one client was told (acknowledged) and tried."""

    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (name, sha256)
    folders: dict[str, str] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)  # acknowledged deletes
    names: set[str] = field(default_factory=set)  # every name an operation used
    uncertain: set[str] = field(default_factory=set)  # ids whose last change was not answered
    ops: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)


def _operation(n: int, rng: random.Random, acc: Any, led: Ledger, prefix: str) -> None:
    kind = rng.choices(
        ["folder", "upload", "multipart", "event", "copy", "rename", "delete"],
        weights=[12, 34, 6, 16, 12, 12, 8],
    )[0]
    if kind in ("copy", "rename", "delete") and not led.files:
        kind = "upload"
    led.ops[kind] += 1
    name = f"{prefix}-{kind}-{n}"
    if kind == "folder":
        led.names.add(name)
        folder = acc.post(
            "storage/folders",
            json={"name": name, "parent_id": "root"},
            params={"conflict_if_exists": "true"},  # a second run would be a 409, not a replay
        )
        led.folders[folder.data["id"]] = name
    elif kind in ("upload", "multipart"):
        size = rng.choice(SIZES) if kind == "upload" else MULTIPART_THRESHOLD + rng.randint(1, 9999)
        data = rng.randbytes(size)
        name += ".bin"
        led.names.add(name)
        resource = acc.upload(
            io.BytesIO(data),
            parent_id="root",
            name=name,
            multipart_threshold=MULTIPART_THRESHOLD,
            max_workers=1,
        )
        led.files[resource.data["id"]] = (name, hashlib.sha256(data).hexdigest())
    elif kind == "event":
        led.names.add(name)
        event = acc.post("cal/calendars/primary/events", json=dict(EVENT, name=name))
        led.events[event.data["id"]] = name
    else:
        file_id = rng.choice(sorted(led.files))
        digest = led.files[file_id][1]
        if kind == "copy":
            name += ".bin"
            led.names.add(name)
            copied = acc.post(
                f"storage/files/{file_id}/copy", json={"parent_id": "root", "name": name}
            )
            led.files[copied.data["id"]] = (name, digest)
        elif kind == "rename":
            name += ".bin"
            led.names.add(name)
            led.uncertain.add(file_id)  # until the answer arrives
            acc.patch(f"storage/files/{file_id}", json={"name": name})
            led.files[file_id] = (name, digest)
            led.uncertain.discard(file_id)
        else:
            led.uncertain.add(file_id)
            acc.delete(f"storage/files/{file_id}")
            del led.files[file_id]
            led.deleted.add(file_id)
            led.uncertain.discard(file_id)


def run_client(
    index: int,
    server: ServeProcess,
    stop: threading.Event,
    led: Any,
    operation: Any,
    seed: int,
    seconds: float,
) -> None:
    """One SDK client (default retries) running ``operation(n, rng, acc, led, prefix)`` until
    ``stop`` is set or ``seconds`` pass; a failure (not acknowledged: the change may or may not
    exist) is counted in ``led.failures``."""
    from kloudless import Account

    rng = random.Random(seed * 100 + index)
    deadline = time.monotonic() + seconds
    with Account(token=server.token, base_url=server.base_url) as acc:  # default retries
        n = 0
        while not stop.is_set() and time.monotonic() < deadline:
            n += 1
            try:
                operation(n, rng, acc, led, f"c{index}")
            except Exception as exc:
                led.failures[type(exc).__name__] += 1


def _client(index: int, server: ServeProcess, stop: threading.Event, led: Ledger) -> None:
    run_client(index, server, stop, led, _operation, SEED, WORKLOAD_SECONDS)


@dataclass
class _StoppedServer:
    """What :func:`kloudless.server.sweep.sweep` needs of a server, for a stopped one."""

    settings: Any
    store: Any
    instance_id: str = "crash-test-sweep"

    @property
    def executor(self) -> Any:  # the sweep runs in the caller's thread here
        raise AssertionError("not used by sweep()")


def _sweep_a_week_later(data_dir: str, endpoint: S3Endpoint, bucket: str) -> dict[str, int]:
    """Run, on the stopped server's state, what the sweeps of a running server do once their
    graces have passed: puts a kill interrupted before their commit and unfinished uploads
    after an hour, and multipart sessions the clients gave up on after a week idle (a complete
    that died after S3 assembled the blob leaves the blob held by its open session).

    :returns: how much each step cleaned up.
    """
    from kloudless.server.blobs import blob_store
    from kloudless.server.connectors import local_storage
    from kloudless.server.connectors.registry import services
    from kloudless.server.settings import Settings
    from kloudless.server.store import Store
    from kloudless.server.sweep import sweep

    services()
    store = Store(os.path.join(data_dir, "kloudless.sqlite3"))
    settings = Settings(data_dir=data_dir, blob_store=f"s3://{bucket}/kl")
    with aws_environment(endpoint):
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=8)
        counts = sweep(_StoppedServer(settings, store), now=later)
        blobs = blob_store(settings)
        counts["puts"] = local_storage.settle_all(store, data_dir, blobs, put_grace=0)
        counts["orphans"] = local_storage.reclaim_orphans(store, data_dir, grace=0, blobs=blobs)
        counts["uploads"] = local_storage.abort_orphan_uploads(store, blobs, grace=0)
    store.close()
    return {name: n for name, n in counts.items() if n}


def _db(data_dir: str) -> sqlite3.Connection:
    conn = sqlite3.connect(os.path.join(data_dir, "kloudless.sqlite3"))
    conn.row_factory = sqlite3.Row
    return conn


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.mark.timeout(240)
@pytest.mark.parametrize("blobs", ["files", "s3"])
def test_kill_9_under_load_loses_and_duplicates_nothing(
    tmp_path: Any, capsys: Any, blobs: str, request: pytest.FixtureRequest
) -> None:
    data_dir = str(tmp_path / "data")
    args: tuple[str, ...] = ()
    endpoint: S3Endpoint | None = None
    bucket = ""
    kills = KILLS
    if blobs == "s3":
        endpoint = request.getfixturevalue("s3")
        bucket = endpoint.new_bucket()
        args = ("--blob-store", f"s3://{bucket}/kl")
        kills = KILLS // 2  # the same paths as with files; half the kills keep it short
    server = ServeProcess(
        data_dir,
        _free_port(),
        str(tmp_path / "serve.log"),
        args,
        endpoint.env() if endpoint else None,
    )
    server.start()
    ledgers = [Ledger() for _ in range(CLIENTS)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=_client, args=(i, server, stop, ledgers[i]), daemon=True)
        for i in range(CLIENTS)
    ]
    rng = random.Random(SEED)
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        time.sleep(2.0)  # a first batch of objects to copy, rename and delete
        for _ in range(kills):
            time.sleep(rng.uniform(0.3, 2.5))
            server.kill()
            server.start()
        time.sleep(2.0)
        stop.set()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads)
        workload_seconds = time.monotonic() - started

        # One more restart: what the checks see is what start-up recovery left.
        server.kill()
        server.start()
        from kloudless import Account

        with Account(token=server.token, base_url=server.base_url) as direct:
            objects = list_storage(direct)
            events = list_events(direct)
            corrupted = unreadable = 0
            for led in ledgers:
                for file_id, (_, digest) in led.files.items():
                    out = io.BytesIO()
                    try:
                        direct.get(f"storage/files/{file_id}").download(out)
                    except Exception:
                        # Gone: counted as lost below; listed but unreadable: counted here.
                        unreadable += file_id in {o["id"] for o in objects}
                        continue
                    corrupted += hashlib.sha256(out.getvalue()).hexdigest() != digest
    finally:
        stop.set()
        server.stop()
    assert server.proc is not None and server.proc.returncode != -signal.SIGKILL, (
        "the server did not stop on SIGTERM: its start-up sweep may not have finished"
    )

    # -- the checks ----------------------------------------------------------------------------
    names: set[str] = set().union(*(led.names for led in ledgers))
    uncertain: set[str] = set().union(*(led.uncertain for led in ledgers))
    by_id = {o["id"]: o for o in objects}
    name_counts = Counter(o["name"] for o in objects) + Counter(e["name"] for e in events)
    duplicates = sum(c - 1 for c in name_counts.values() if c > 1)
    duplicates += sum(1 for name in name_counts if name not in names)
    event_ids = {e["id"] for e in events}
    lost: list[str] = []
    for led in ledgers:
        lost += [i for i in led.files if i not in by_id and i not in uncertain]
        lost += [i for i in led.folders if i not in by_id]
        lost += [i for i in led.events if i not in event_ids]
        lost += [f"deleted {i} is back" for i in led.deleted if i in by_id]
    wrong_name = [
        i
        for led in ledgers
        for i, (name, _) in led.files.items()
        if i in by_id and i not in uncertain and by_id[i]["name"] != name
    ]
    # What start-up recovery and the start-up sweep left (stop() waited for the server's end,
    # and the server for its sweep); the later sweeps' graces have not passed.
    with _db(data_dir) as conn:
        stuck = conn.execute(
            "SELECT COUNT(*) FROM multipart WHERE state = 'completing'"
        ).fetchone()[0]
        keys_running = conn.execute(
            "SELECT COUNT(*) FROM idempotency_keys WHERE state = 'running'"
        ).fetchone()[0]
    conn.close()
    sweeps = _sweep_a_week_later(data_dir, endpoint, bucket) if endpoint else {}
    with _db(data_dir) as conn:
        activity: dict[str, set[str]] = {}
        for row in conn.execute("SELECT object_id, type FROM activity"):
            activity.setdefault(str(row["object_id"]), set()).add(str(row["type"]))
        created = [o["id"] for o in objects] + sorted(event_ids)
        missing_activity = [i for i in created if not activity.get(i, set()) & {"add", "copy"}]
        referenced = {
            str(r["blob"]) for r in conn.execute("SELECT blob FROM objects WHERE blob IS NOT NULL")
        }
        journal = conn.execute("SELECT COUNT(*) FROM blob_journal").fetchone()[0]
        journal += conn.execute("SELECT COUNT(*) FROM blob_puts").fetchone()[0]
        # Sessions hold blobs (S3: assembled by a complete that died) until they expire.
        held = {
            str(r["blob"])
            for r in conn.execute("SELECT blob FROM multipart WHERE blob IS NOT NULL")
        }
        # Small files' bytes, kept in the database with their rows.
        stored: list[str] = [str(r["blob"]) for r in conn.execute("SELECT blob FROM inline_blobs")]
    conn.close()
    unfinished: list[str] = []
    if endpoint is not None:
        stored += [key.rsplit("/", 1)[1] for key in endpoint.keys(bucket, "kl/accounts/")]
        unfinished = list(endpoint.uploads(bucket))  # the sessions expired: none is left
    else:
        accounts_dir = os.path.join(data_dir, "accounts")
        for account in os.listdir(accounts_dir):
            folder = os.path.join(accounts_dir, account, "blobs")
            if os.path.isdir(folder):
                stored += os.listdir(folder)
    orphans = [b for b in stored if b not in referenced] + unfinished + sorted(held)
    missing_blobs = [b for b in referenced if b not in stored]

    ops = sum((led.ops for led in ledgers), Counter())
    failures = sum((led.failures for led in ledgers), Counter())
    acknowledged = sum(
        len(led.files) + len(led.folders) + len(led.events) + len(led.deleted) for led in ledgers
    )
    with capsys.disabled():
        print(
            f"\ncrash ({blobs}): {kills} kills, {server.starts} starts, "
            f"{sum(ops.values())} operations "
            f"{dict(ops)}, unanswered {dict(failures)}, {len(objects)} objects, "
            f"{len(events)} events, {len(stored)} blobs {sweeps}; duplicates {duplicates}, lost "
            f"{len(lost)}, wrong names {len(wrong_name)}, corrupted {corrupted}, unreadable "
            f"{unreadable}, missing activity {len(missing_activity)}, stuck multipart {stuck}, "
            f"orphan blobs "
            f"{len(orphans)}, stale idempotency keys {keys_running}; {workload_seconds:.1f} s"
        )
    assert server.starts == kills + 2
    assert acknowledged >= 40, (ops, failures)  # the workload really ran through the kills
    assert duplicates == 0, name_counts
    assert lost == [], lost
    assert wrong_name == []
    assert corrupted == 0 and unreadable == 0
    assert missing_activity == []
    assert stuck == 0
    assert orphans == [] and missing_blobs == []
    assert journal == 0
