"""Benchmark 7: ``kloudless serve --workers N`` with SQLite and with PostgreSQL.

Workloads (the same as benchmark 5, each cell bounded in seconds): a page of 1000 entries of a
2,000-file folder, a 4 KiB download, a 4 KiB upload. The server is ``kloudless serve`` with 1, 2
and 4 workers over SQLite, and 1 and 2 over PostgreSQL (the throw-away server of
``tests/pgserver.py``). The clients are two processes of 8 threads each (one client process
would be the bottleneck), all on this machine: on 2 cores the clients take CPU from the server,
so the ratios are lower bounds of what a server with its own cores gets.

Reported: requests/s, p50/p99 latency, and the ratio to one SQLite worker in the same run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import requests

from ._util import Options, Table, percentile
from .server import SMALL, Fixture, load, populate

CLIENT_PROCESSES = 2
THREADS_PER_CLIENT = 8
_SERVING = re.compile(r"Serving the Kloudless API on (http://\S+)")


def _prepare(data_dir: str, url: str | None, fixture: Fixture) -> tuple[str, int]:
    from kloudless.server import Settings, create_app
    from kloudless.server.bootstrap import bootstrap

    app = create_app(Settings(data_dir=data_dir, database_url=url))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        populate(fixture)(app, creds.account_id)
    finally:
        app.close()
    return creds.token, creds.account_id


@contextlib.contextmanager
def _serve(data_dir: str, url: str | None, workers: int) -> Iterator[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if url:
        env["KLOUDLESS_DATABASE_URL"] = url
    log = open(data_dir + ".log", "w+", encoding="utf-8")  # noqa: SIM115 - the child writes it
    proc = subprocess.Popen(
        [sys.executable, "-m", "kloudless.cli", "serve", "--data-dir", data_dir, "--port", "0"]
        + ["--workers", str(workers), "--connections-per-address", "0"]
        # 16 clients share one token: the per-credential transfer limit (8) must not answer 429.
        + ["--transfers-per-credential", "0", "--transfers-per-address", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        base = None
        while base is None and time.monotonic() < deadline and proc.poll() is None:
            log.seek(0)
            found = _SERVING.search(log.read())
            base = found.group(1) if found else None
            time.sleep(0.1)
        if base is None:
            log.seek(0)
            raise RuntimeError(f"the server did not start:\n{log.read()[-3000:]}")
        yield base
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the supervisor stops its workers), else SIGKILL after a minute."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(60)
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


def _client(
    job: tuple[str, str, dict[str, str], int, float, str],
) -> tuple[int, float, list[float]]:
    kind, url, headers, max_requests, seconds, uploads = job
    pid = os.getpid()

    def request(session: requests.Session, n: int) -> None:
        if kind == "upload":
            meta = json.dumps({"name": f"s-{pid}-{n:06d}.bin", "parent_id": uploads})
            answer = session.post(
                url, data=SMALL, headers={**headers, "X-Kloudless-Metadata": meta}, timeout=60
            )
        else:
            query = {"page": n % 2 + 1, "page_size": 1000} if kind == "listing" else None
            answer = session.get(url, params=query, headers=headers, timeout=120)
        answer.raise_for_status()
        if kind == "download" and answer.content != SMALL:
            raise RuntimeError("wrong contents")
        if kind == "listing" and answer.content.count(b'"id"') < 1000:
            raise RuntimeError("short page")

    return load(THREADS_PER_CLIENT, request, max_requests, seconds)


def _measure(
    pool: ProcessPoolExecutor,
    kind: str,
    url: str,
    headers: dict[str, str],
    limit: int,
    seconds: float,
    uploads: str,
) -> tuple[int, float, list[float]]:
    jobs = [(kind, url, headers, limit, seconds, uploads)] * CLIENT_PROCESSES
    results = list(pool.map(_client, jobs))
    count = sum(r[0] for r in results)
    elapsed = max(r[1] for r in results)
    latencies = [x for r in results for x in r[2]]
    return count, elapsed, latencies


def _figures(result: tuple[int, float, list[float]], base_rps: float) -> list[Any]:
    """:returns: requests, requests/s, p50 and p99 (ms) and the ratio to ``base_rps``."""
    count, elapsed, latencies = result
    rps = count / elapsed if elapsed else 0.0
    p50, p99 = (percentile(latencies, q) * 1e3 for q in (50, 99))
    ratio = f"{rps / base_rps:.2f}x" if base_rps else "-"
    return [count, f"{rps:,.0f}", f"{p50:.1f}", f"{p99:.1f}", ratio]


def run(opts: Options) -> list[Table]:
    """Run benchmark 7. :returns: its table."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.pgserver import binaries, postgres_server

    seconds = 0.5 if opts.quick else 4.0
    limit = 40 if opts.quick else 100000
    configs = (
        [("SQLite", 1), ("SQLite", 2)]
        if opts.quick
        else [("SQLite", 1), ("SQLite", 2), ("SQLite", 4), ("PostgreSQL", 1), ("PostgreSQL", 2)]
    )
    if binaries() is None:
        configs = [c for c in configs if c[0] == "SQLite"]
    results: dict[tuple[str, int, str], tuple[int, float, list[float]]] = {}
    kinds = ("listing", "download", "upload")
    with contextlib.ExitStack() as stack:
        pg = None
        if any(db == "PostgreSQL" for db, _ in configs):
            pg = stack.enter_context(postgres_server())
        pool = stack.enter_context(ProcessPoolExecutor(CLIENT_PROCESSES))
        for number, (db, workers) in enumerate(configs):
            fixture = Fixture(files=2000)
            data_dir = os.path.join(opts.workdir, f"scale-{number}")
            url = pg.new_database() if pg is not None and db == "PostgreSQL" else None
            token, account_id = _prepare(data_dir, url, fixture)
            headers = {"Authorization": f"Bearer {token}"}
            with _serve(data_dir, url, workers) as base:
                account = f"{base}/v1/accounts/{account_id}"
                urls = {
                    "listing": f"{account}/storage/folders/{fixture.listing}/contents",
                    "download": f"{account}/storage/files/{fixture.small_file}/contents",
                    "upload": f"{account}/storage/files",
                }
                for kind in kinds:
                    results[(db, workers, kind)] = _measure(
                        pool, kind, urls[kind], headers, limit, seconds, fixture.uploads
                    )
    table = Table(
        "7. Workers and databases (2,000-file folder, 4 KiB files)",
        [
            "workload",
            "database",
            "workers",
            "requests",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "vs 1 SQLite worker",
        ],
    )
    labels = {
        "listing": "list folder, page of 1000",
        "download": "download 4 KiB file",
        "upload": "upload 4 KiB file",
    }
    for kind in kinds:
        base_count, base_elapsed, _ = results[("SQLite", 1, kind)]
        base_rps = base_count / base_elapsed if base_elapsed else 0.0
        for db, workers in configs:
            table.add(labels[kind], db, workers, *_figures(results[(db, workers, kind)], base_rps))
    table.notes.append(
        f"Each cell: {seconds:g} s, {CLIENT_PROCESSES} client processes x {THREADS_PER_CLIENT}"
        " threads on the same machine as the server (kloudless serve --workers N, 8 threads"
        " each)."
    )
    return [table]
