"""Benchmark 5c: small uploads against the fsync floor.

An acknowledged upload must survive a power cut, so its floor on this disk is the durable steps
themselves. A 4 KiB file keeps its bytes in the database (``Settings.inline_file_bytes``), so
they are one SQLite commit of the bytes with their row (WAL, ``synchronous=FULL``, as the
server's store): :class:`~benchmarks._floor.FsyncFloor`. Three floors run, on the same
filesystem as the server's data dir:

* **the HTTP floor** (the goal's baseline): a bare waitress WSGI app in a child process (no
  kloudless code, :mod:`benchmarks._floor`) that receives the same 4 KiB ``POST`` from the same
  client, does exactly those steps with its body and answers a small JSON body: nothing but HTTP
  and the syncs;
* **the in-process floor** (for information): the same steps in a loop in this process, no HTTP;
* **the HTTP floor of a blob file** (for information): the bare waitress doing the steps of a
  file stored as a blob of its own instead: write the bytes, ``fdatasync`` them, rename the file
  into its folder, ``fsync`` the folder, commit its row (what an upload did before small files
  were kept in the database).

They run in blocks interleaved with blocks of 4 KiB uploads to the server (one client,
``POST storage/files``, without and with an ``Idempotency-Key``, as the SDK sends every upload),
the order alternating; each ratio is the median over the rounds of the operation's rate over
the floor's rate in the same round. Issue #22's goal, "small uploads limited by the durability
fsync only", is an upload at least :data:`TARGET` of the HTTP floor.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from typing import Any, Callable

import requests

from ._floor import SMALL, FsyncFloor
from ._util import HelperProcess, Options, Table, met

__all__ = ["SMALL", "TARGET", "FsyncFloor", "run_table"]

#: The goal of issue #22 (small uploads limited by the durability fsync only): an upload's rate
#: over the HTTP floor's.
TARGET = 0.8
#: The floor the goal is measured against.
BASELINE = "HTTP floor"
#: The floor of a file kept as a blob of its own (for information).
BLOB_FILE_FLOOR = "HTTP floor, blob file"


def run_table(opts: Options, server: Any, folder_id: str) -> Table:
    """Run benchmark 5c against a running local server (uploads into ``folder_id``).

    :returns: its table.
    """
    rounds, block = (2, 10) if opts.quick else (8, 60)
    floor = FsyncFloor(os.path.join(opts.workdir, "fsync-floor"))
    url = f"{server.account_url()}/storage/files"
    headers = server.headers()
    counter = iter(range(10**9))
    http_floor = HelperProcess(
        ["benchmarks._floor", os.path.join(opts.workdir, "fsync-floor-http")],
        os.path.join(opts.workdir, "fsync-floor-http.log"),
    )
    blob_floor = HelperProcess(
        ["benchmarks._floor", os.path.join(opts.workdir, "fsync-floor-blob"), "--blob-file"],
        os.path.join(opts.workdir, "fsync-floor-blob.log"),
    )

    def post(session: requests.Session, target: str, keyed: bool) -> None:
        # The same request to the server and to the HTTP floor (which ignores the headers).
        meta = json.dumps({"name": f"floor-{next(counter):07d}.bin", "parent_id": folder_id})
        extra = {"X-Kloudless-Metadata": meta}
        if keyed:
            extra["Idempotency-Key"] = str(uuid.uuid4())
        answer = session.post(target, data=SMALL, headers={**headers, **extra}, timeout=60)
        answer.raise_for_status()

    rates: dict[str, list[float]] = {}
    try:
        http_floor.start()
        blob_floor.start()
        floor_url = f"{http_floor.base_url}/upload"
        blob_floor_url = f"{blob_floor.base_url}/upload"
        ways: dict[str, Callable[[requests.Session], object]] = {
            BASELINE: lambda session: post(session, floor_url, False),
            "in-process floor": lambda session: floor.step(),
            BLOB_FILE_FLOOR: lambda session: post(session, blob_floor_url, False),
            "POST": lambda session: post(session, url, False),
            "POST + Idempotency-Key": lambda session: post(session, url, True),
        }
        names = list(ways)
        rates = {name: [] for name in names}
        # One session (one keep-alive connection) per server, as one SDK client would hold.
        sessions = {name: requests.Session() for name in names}
        try:
            for name in names:  # warm-up: connections, caches, the floors' files
                for _ in range(5):
                    ways[name](sessions[name])
            for number in range(rounds):
                order = names if number % 2 == 0 else names[::-1]
                for name in order:
                    started = time.perf_counter()
                    for _ in range(block):
                        ways[name](sessions[name])
                    rates[name].append(block / (time.perf_counter() - started))
        finally:
            for session in sessions.values():
                session.close()
    finally:
        http_floor.stop()
        blob_floor.stop()
        floor.close()
    table = Table(
        "5c. Small uploads against the fsync floor (4 KiB, 1 client)",
        [
            "operation",
            "rounds",
            "median per s",
            "ratio to the HTTP floor",
            "to the in-process floor",
        ],
    )
    labels = {
        BASELINE: "HTTP floor: bare waitress + the durable steps (the goal's baseline)",
        "in-process floor": "in-process floor: one commit of the bytes with their row",
        BLOB_FILE_FLOOR: "HTTP floor of a blob file: write + fdatasync + rename + folder fsync"
        " + commit",
        "POST": "POST storage/files over HTTP",
        "POST + Idempotency-Key": "POST storage/files + Idempotency-Key (as the SDK sends)",
    }
    verdicts = []
    for name, samples in rates.items():
        to_http = _ratio(samples, rates[BASELINE])
        to_process = _ratio(samples, rates["in-process floor"])
        table.add(
            labels[name],
            len(samples),
            f"{statistics.median(samples):,.0f}",
            f"{to_http:.2f}x",
            f"{to_process:.2f}x",
        )
        if name in ("POST", "POST + Idempotency-Key"):
            verdicts.append(f"{name} >= {TARGET:.1f}x of the HTTP floor: {met(to_http >= TARGET)}")
    table.notes.append(
        f"Rounds of {block} operations each, the order alternating; ratio: median over the rounds "
        "of the operation's rate over the floor's rate in the same round. The floors do the "
        "durable steps of a 4 KiB upload (kept in the database: one commit of the bytes with "
        "their row) on the data dir's filesystem with the store's SQLite settings (WAL, "
        "synchronous=FULL): the HTTP floor behind a bare waitress (another process, same "
        "client, a small JSON answer), the in-process floor in the benchmark process without "
        "HTTP; the blob file's floor, behind a bare waitress too, those of a file stored as a "
        "blob of its own (three syncs). An upload adds the API's work: routing, "
        "authentication, the file's row and its activity event, the JSON answer, the log "
        "line. " + "; ".join(verdicts) + "."
    )
    return table


def _ratio(mine: list[float], base: list[float]) -> float:
    """:returns: the median over the rounds of ``mine`` over ``base`` (same round)."""
    return statistics.median(m / b for m, b in zip(mine, base))
