"""Benchmark 6: the same workload with the blobs in the data dir and in S3.

Two runs of the local server (its own process each), one with the default file blob store and
one with ``--blob-store s3://bench/blobs`` against moto in server mode (its own process, on
loopback: what is measured is the server's S3 path, HTTP included, not a real bucket's latency).
Workloads, each bounded in requests and in seconds, at 1 and 4 concurrent clients: download a
4 KiB file, upload 4 KiB files, download a large file (16 MiB; 1 MiB with ``--quick``), a
``Range`` request of 64 KiB from its middle, and copy the 4 KiB file. Reported: requests/s and
p50 per store, and S3 / files as a ratio of the same run. Both servers keep every file in the
blob store (``--inline-file-bytes 0``): by default a 4 KiB file keeps its bytes in the database
and never reaches the bucket, which would leave nothing of S3 to measure in the small rows.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any, Callable
from unittest import mock

import requests

from ._util import HelperProcess, Options, Table, local_server, percentile
from .server import load

SMALL = b"s" * 4096
LEVELS = (1, 4)
STORES = ("files", "s3")


#: The servers' settings from the environment (benchmarks._serve): every file in the blob store.
ALL_IN_THE_STORE = {"KLOUDLESS_INLINE_FILE_BYTES": "0"}


@contextlib.contextmanager
def _store(opts: Options, store: str) -> Iterator[Any]:
    """A local server whose blob store is ``store``."""
    if store == "files":
        with (
            mock.patch.dict(os.environ, ALL_IN_THE_STORE),
            local_server(opts, "blobs-files") as server,
        ):
            yield server
        return
    log = os.path.join(opts.workdir, "moto.log")
    with HelperProcess(["benchmarks._moto"], log) as moto:
        env = {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_ENDPOINT_URL_S3": moto.base_url,
            "AWS_REGION": "us-east-1",
            "KLOUDLESS_BLOB_STORE": "s3://bench/blobs",
            **ALL_IN_THE_STORE,
        }
        # The server child inherits this process's environment (as `kloudless serve` would).
        with mock.patch.dict(os.environ, env), local_server(opts, "blobs-s3") as server:
            yield server


def _measure(
    server: Any, large: bytes, limits: dict[str, int], seconds: float
) -> dict[tuple[str, int], tuple[int, float, list[float]]]:
    headers = server.headers()
    base = server.account_url()

    def post(session: Any, name: str, data: bytes) -> str:
        meta = json.dumps({"name": name, "parent_id": "root"})
        answer = session.post(
            f"{base}/storage/files",
            data=data,
            headers={**headers, "X-Kloudless-Metadata": meta},
            timeout=120,
        )
        answer.raise_for_status()
        return str(answer.json()["id"])

    small_id, large_id = post(requests, "small.bin", SMALL), post(requests, "large.bin", large)
    middle = len(large) // 2

    def download_small(session: requests.Session, n: int) -> None:
        answer = session.get(
            f"{base}/storage/files/{small_id}/contents", headers=headers, timeout=60
        )
        if answer.status_code != 200 or answer.content != SMALL:
            raise RuntimeError(f"small download: {answer.status_code}")

    def upload_small(session: requests.Session, n: int) -> None:
        post(session, f"up-{n:06d}.bin", SMALL)

    def download_large(session: requests.Session, n: int) -> None:
        with session.get(
            f"{base}/storage/files/{large_id}/contents", headers=headers, timeout=120, stream=True
        ) as answer:
            answer.raise_for_status()
            got = sum(len(chunk) for chunk in answer.iter_content(256 * 1024))
        if got != len(large):
            raise RuntimeError("large download: wrong size")

    def range_request(session: requests.Session, n: int) -> None:
        wanted = f"bytes={middle}-{middle + 65535}"
        answer = session.get(
            f"{base}/storage/files/{large_id}/contents",
            headers={**headers, "Range": wanted},
            timeout=60,
        )
        if answer.status_code != 206 or answer.content != large[middle : middle + 65536]:
            raise RuntimeError(f"range: {answer.status_code}")

    def copy(session: requests.Session, n: int) -> None:
        answer = session.post(
            f"{base}/storage/files/{small_id}/copy",
            json={"parent_id": "root", "name": f"copy-{n:06d}.bin"},
            headers=headers,
            timeout=60,
        )
        answer.raise_for_status()

    workloads: dict[str, Callable[[requests.Session, int], None]] = {
        "download_small": download_small,
        "upload_small": upload_small,
        "download_large": download_large,
        "range": range_request,
        "copy": copy,
    }
    results = {}
    for kind, request in workloads.items():
        for level in LEVELS:
            results[(kind, level)] = load(level, request, limits[kind], seconds)
    return results


def run(opts: Options) -> list[Table]:
    """Run benchmark 6. :returns: its table."""
    large = os.urandom(1024 * 1024 if opts.quick else 16 * 1024 * 1024)
    seconds = 0.5 if opts.quick else 3.0
    cap = 20 if opts.quick else 2000
    limits = {
        "download_small": cap,
        "upload_small": cap,
        "download_large": 4 if opts.quick else 60,
        "range": cap,
        "copy": cap,
    }
    measured = {}
    for store in STORES:
        with _store(opts, store) as server:
            measured[store] = _measure(server, large, limits, seconds)
    size = f"{len(large) // (1024 * 1024)} MiB"
    labels = {
        "download_small": "download 4 KiB",
        "upload_small": "upload 4 KiB",
        "download_large": f"download {size}",
        "range": f"Range 64 KiB of {size}",
        "copy": "copy 4 KiB file",
    }
    table = Table(
        "6. Blob stores: files vs S3 (moto on loopback)",
        [
            "workload",
            "clients",
            "files req/s",
            "files p50 ms",
            "S3 req/s",
            "S3 p50 ms",
            "S3 / files",
        ],
    )
    for kind, label in labels.items():
        for level in LEVELS:
            cells: list[str] = []
            rates: list[float] = []
            for store in STORES:
                count, elapsed, latencies = measured[store][(kind, level)]
                rate = count / elapsed if elapsed else 0.0
                rates.append(rate)
                cells += [f"{rate:,.1f}", f"{percentile(latencies, 50) * 1e3:.1f}"]
            ratio = f"{rates[1] / rates[0]:.2f}x" if rates[0] else "-"
            table.add(label, level, *cells, ratio)
    table.notes.append(
        f"Each cell: at most {seconds:g} s (or the request cap), one thread per client; the "
        "server (8 waitress threads) and moto each in their own process on this machine, so "
        "moto's CPU competes with the server's: a real bucket adds network latency instead."
    )
    return [table]
