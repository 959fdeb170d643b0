"""Benchmark 5c: small uploads against the fsync floor.

An acknowledged upload must survive a power cut, so its floor on this disk is the durable steps
themselves: write the bytes, ``fdatasync`` them, rename the file into its folder, ``fsync`` the
folder, commit one SQLite transaction (WAL, ``synchronous=FULL``, as the server's store). The
floor is a loop doing exactly that in this process (no HTTP, no API), on the same filesystem
as the server's data dir. It runs in blocks interleaved with blocks of 4 KiB uploads to the
server (one client, ``POST storage/files``, without and with an ``Idempotency-Key``, as the SDK
sends every upload), the order alternating; the ratio is the median over the rounds of the
upload rate over the floor rate of the same round.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import time
import uuid
from typing import Any, Callable

import requests

from ._util import Options, Table, met

SMALL = b"k" * 4096
#: The goal of issue #22: small uploads limited by the durability fsync only.
TARGET = 0.8
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class FsyncFloor:
    """The durable steps of one small upload, nothing else, in ``folder``."""

    def __init__(self, folder: str) -> None:
        self.folder = os.path.join(folder, "blobs")
        os.makedirs(self.folder)
        self.db = sqlite3.connect(os.path.join(folder, "floor.sqlite3"), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE files (id TEXT PRIMARY KEY, size INTEGER, blob TEXT)")
        self.count = 0

    def step(self) -> None:
        """Write 4 KiB durably and commit one row naming it."""
        self.count += 1
        temp = os.path.join(self.folder, f".t-{self.count}")
        final = os.path.join(self.folder, f"b-{self.count}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, SMALL)
            _datasync(fd)
        finally:
            os.close(fd)
        os.rename(temp, final)
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(
            "INSERT INTO files VALUES (?, ?, ?)", (f"file-{self.count}", len(SMALL), final)
        )
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


def run_table(opts: Options, server: Any, folder_id: str) -> Table:
    """Run benchmark 5c against a running local server (uploads into ``folder_id``).

    :returns: its table.
    """
    rounds, block = (2, 10) if opts.quick else (8, 60)
    floor = FsyncFloor(os.path.join(opts.workdir, "fsync-floor"))
    url = f"{server.account_url()}/storage/files"
    headers = server.headers()
    counter = iter(range(10**9))

    def upload(session: requests.Session, keyed: bool) -> None:
        meta = json.dumps({"name": f"floor-{next(counter):07d}.bin", "parent_id": folder_id})
        extra = {"Idempotency-Key": str(uuid.uuid4())} if keyed else {}
        answer = session.post(
            url, data=SMALL, headers={**headers, "X-Kloudless-Metadata": meta, **extra}, timeout=60
        )
        answer.raise_for_status()

    ways: dict[str, Callable[[requests.Session], None]] = {
        "floor": lambda session: floor.step(),
        "POST": lambda session: upload(session, False),
        "POST + Idempotency-Key": lambda session: upload(session, True),
    }
    rates: dict[str, list[float]] = {name: [] for name in ways}
    names = list(ways)
    try:
        with requests.Session() as session:
            for name in names:  # warm-up: connections, caches, the floor's files
                for _ in range(5):
                    ways[name](session)
            for number in range(rounds):
                order = names if number % 2 == 0 else names[::-1]
                for name in order:
                    started = time.perf_counter()
                    for _ in range(block):
                        ways[name](session)
                    rates[name].append(block / (time.perf_counter() - started))
    finally:
        floor.close()
    table = Table(
        "5c. Small uploads against the fsync floor (4 KiB, 1 client)",
        ["operation", "rounds", "median per s", "ratio to the floor"],
    )
    verdicts = []
    for name in names:
        relative = statistics.median(mine / base for mine, base in zip(rates[name], rates["floor"]))
        label = {
            "floor": "floor: write + fdatasync + rename + folder fsync + 1 commit",
            "POST": "POST storage/files over HTTP",
            "POST + Idempotency-Key": "POST storage/files + Idempotency-Key (as the SDK sends)",
        }[name]
        table.add(
            label, len(rates[name]), f"{statistics.median(rates[name]):,.0f}", f"{relative:.2f}x"
        )
        if name != "floor":
            verdicts.append(f"{name} >= {TARGET:.1f}x: {met(relative >= TARGET)}")
    table.notes.append(
        f"Rounds of {block} operations each, the order alternating; ratio: median over the rounds "
        "of the operation's rate over the floor's rate in the same round. The floor runs in the "
        "benchmark process on the data dir's filesystem, with the store's SQLite settings (WAL, "
        "synchronous=FULL); an upload adds HTTP, authentication, the API and its activity event. "
        + "; ".join(verdicts)
        + "."
    )
    return table
