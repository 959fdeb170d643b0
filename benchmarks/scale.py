"""Benchmark 7: ``kloudless serve --workers N``, SQLite + files and PostgreSQL + S3.

Workloads (each cell bounded in seconds and requests): a page of 1000 entries of a 2,000-file
folder, a 4 KiB download, a 4 KiB upload. The servers are ``kloudless serve`` with 1, 2 and 4
workers over SQLite and the data dir, and 1 and 2 over PostgreSQL (the throw-away server of
``tests/pgserver.py``) with the blobs in S3 (moto in server mode, :mod:`benchmarks._moto`, in its
own process), all started once and measured in interleaved rounds: in each round every workload
visits every setup (the order reversed every other round), and each figure is the median over
the rounds; a ratio is the median of the ratios within each round (pairs measured minutes, not
runs, apart).

The clients are :mod:`benchmarks._loadgen` (pre-built keep-alive HTTP/1.1 requests over raw
sockets, statuses checked, bodies sampled), 2 processes of 4 connections each, on the same
2 cores as the server. A ``requests`` client costs 300-500 µs of CPU per request, as much as
the server's 4 KiB download: with it the clients took most of a core and a second worker had
none left, so earlier runs measured the clients (0.75-0.97x). This client costs tens of µs.

Each SQLite setup of 1 and 2 workers runs twice: as the kernel places the threads, and pinned
(``--cpu-affinity auto``: each worker and its threads on a core of its own).

Reported per cell: requests/s, p50/p99 latency, the ratio to one SQLite worker and to one
worker of the same store, how the requests spread over the worker processes (which process
held each connection, from the kernel's socket table), and where the CPU went: server
workers' and clients' CPU per request, and the cores used by the server, the clients, everything
else and left idle.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import psutil

from . import _loadgen
from ._util import HelperProcess, Options, Table, percentile
from .server import SMALL, Fixture, populate

CLIENT_PROCESSES = 2
CONNECTIONS_PER_CLIENT = 4
_SERVING = re.compile(r"Serving the Kloudless API on (http://\S+)")
SQLITE = "SQLite+files"
POSTGRES = "PostgreSQL+S3"
KINDS = ("listing", "download", "upload")
LABELS = {
    "listing": "list folder, page of 1000",
    "download": "download 4 KiB file",
    "upload": "upload 4 KiB file",
}
#: The goal of the issue for 2 workers (listings and small downloads).
GOAL = 1.6


@dataclass
class Setup:
    """One running server: its store, worker count and the ids of its data."""

    store: str
    workers: int
    #: ``kloudless serve --cpu-affinity``: ``auto`` pins each worker to a core of its own.
    affinity: str = "off"
    base: str = ""
    token: str = ""
    account_id: int = 0
    fixture: Fixture = field(default_factory=Fixture)
    pids: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.store} x{self.workers}{' pinned' if self.pinned else ''}"

    @property
    def pinned(self) -> bool:
        return self.affinity == "auto"


@dataclass(frozen=True)
class _Job:
    kind: str
    base: str
    token: str
    account_id: int
    listing: str
    small_file: str
    uploads: str
    seconds: float
    limit: int
    tag: str
    pids: tuple[int, ...]


@dataclass
class _Cell:
    """One measurement: a workload against a setup in one round."""

    count: int
    elapsed: float
    latencies: list[float]
    per_worker: dict[int, int]
    connections: dict[int, int]
    server_cpu: float
    client_cpu: float
    #: Cores used over the cell: (server workers, clients, other processes, idle).
    cores: tuple[float, float, float, float]

    @property
    def rps(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0


def _workload(job: _Job) -> _loadgen.Workload:
    """:returns: the load generator's workload for ``job`` (built in the client process)."""
    account = f"{job.base}/v1/accounts/{job.account_id}"
    headers = {"Authorization": f"Bearer {job.token}"}
    build = _loadgen.build_request
    if job.kind == "listing":
        url = f"{account}/storage/folders/{job.listing}/contents"
        pages = [build("GET", f"{url}?page={p}&page_size=1000", headers) for p in (1, 2)]

        def full_page(body: bytes) -> None:
            if len(json.loads(body)["objects"]) != 1000:
                raise _loadgen.LoadError("a page of fewer than 1000 objects")

        return _loadgen.Workload(url, _loadgen.cycle(pages), full_page)
    if job.kind == "download":
        url = f"{account}/storage/files/{job.small_file}/contents"

        def same_bytes(body: bytes) -> None:
            if body != SMALL:
                raise _loadgen.LoadError("the download is not the file's contents")

        return _loadgen.Workload(url, _loadgen.cycle([build("GET", url, headers)]), same_bytes)
    url = f"{account}/storage/files"
    prefix = f"s-{job.tag}-{os.getpid()}-"

    def upload(n: int) -> bytes:
        meta = json.dumps({"name": f"{prefix}{n:07d}.bin", "parent_id": job.uploads})
        return build("POST", url, {**headers, "X-Kloudless-Metadata": meta}, SMALL)

    def stored(body: bytes) -> None:
        if json.loads(body).get("size") != len(SMALL):
            raise _loadgen.LoadError("the upload's answer does not have its size")

    return _loadgen.Workload(url, upload, stored, status=201)


def _owners(pids: tuple[int, ...], result: _loadgen.Result) -> None:
    """Count the requests each server process answered: the process holding the server end of
    each connection (``result.extra["per_worker"]``: pid -> requests)."""
    per_worker: dict[int, int] = {}
    held: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            listing = getattr(proc, "net_connections", None) or proc.connections
            for conn in listing(kind="tcp"):
                if conn.raddr and conn.raddr.port in result.answered:
                    per_worker[pid] = per_worker.get(pid, 0) + result.answered[conn.raddr.port]
                    held[pid] = held.get(pid, 0) + 1
    result.extra["per_worker"] = per_worker
    result.extra["connections"] = held


def _client(
    job: _Job,
) -> tuple[int, float, list[float], dict[int, int], float, dict[int, int]]:
    """One client process's share of a cell. :returns: requests, seconds, latencies,
    requests per server pid, this process's CPU seconds, connections per server pid."""
    workload = _workload(job)
    result = _loadgen.run(
        workload,
        CONNECTIONS_PER_CLIENT,
        job.seconds,
        job.limit,
        before_close=lambda r: _owners(job.pids, r),
    )
    per_worker, held = result.extra.get("per_worker", {}), result.extra.get("connections", {})
    assert isinstance(per_worker, dict) and isinstance(held, dict)
    return result.count, result.elapsed, result.latencies, per_worker, result.cpu, held


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def _measure(
    pool: ProcessPoolExecutor, setup: Setup, kind: str, seconds: float, limit: int, tag: str
) -> _Cell:
    job = _Job(
        kind,
        setup.base,
        setup.token,
        setup.account_id,
        setup.fixture.listing,
        setup.fixture.small_file,
        setup.fixture.uploads,
        seconds,
        limit,
        tag,
        tuple(setup.pids),
    )
    server_cpu, machine, wall = _cpu(setup.pids), psutil.cpu_times(), time.perf_counter()
    results = list(pool.map(_client, [job] * CLIENT_PROCESSES))
    server_cpu = _cpu(setup.pids) - server_cpu
    after, wall = psutil.cpu_times(), time.perf_counter() - wall
    client_cpu = sum(r[4] for r in results)
    total = sum(after) - sum(machine)
    idle = sum(
        getattr(after, f) - getattr(machine, f) for f in ("idle", "iowait") if hasattr(after, f)
    )
    other = max(0.0, total - idle - server_cpu - client_cpu)
    cores = (server_cpu / wall, client_cpu / wall, other / wall, idle / wall)
    per_worker: dict[int, int] = dict.fromkeys(setup.pids, 0)
    held: dict[int, int] = dict.fromkeys(setup.pids, 0)
    for r in results:
        for pid, n in r[3].items():
            per_worker[pid] = per_worker.get(pid, 0) + n
        for pid, n in r[5].items():
            held[pid] = held.get(pid, 0) + n
    return _Cell(
        count=sum(r[0] for r in results),
        elapsed=max(r[1] for r in results),
        latencies=[x for r in results for x in r[2]],
        per_worker=per_worker,
        connections=held,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        cores=cores,
    )


def _prepare(data_dir: str, url: str | None, blob_store: str, setup: Setup) -> None:
    from kloudless.server import Settings, create_app
    from kloudless.server.bootstrap import bootstrap

    app = create_app(Settings(data_dir=data_dir, database_url=url, blob_store=blob_store))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        populate(setup.fixture)(app, creds.account_id)
    finally:
        app.close()
    setup.token, setup.account_id = creds.token, creds.account_id


@contextlib.contextmanager
def _serve(
    data_dir: str, workers: int, env: dict[str, str], affinity: str = "off"
) -> Iterator[tuple[str, list[int]]]:
    """``kloudless serve --workers N --cpu-affinity A`` in a child. :yields: its URL and the
    pids that serve (the workers; the process itself with one worker)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **env)
    log = open(data_dir + ".log", "w+", encoding="utf-8")  # noqa: SIM115 - the child writes it
    proc = subprocess.Popen(
        [sys.executable, "-m", "kloudless.cli", "serve", "--data-dir", data_dir, "--port", "0"]
        + ["--workers", str(workers), "--cpu-affinity", affinity]
        + ["--connections-per-address", "0"]
        # The clients share one token: no per-credential transfer limit (8) answering 429.
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
        children = [c.pid for c in psutil.Process(proc.pid).children()]
        if workers > 1 and len(children) != workers:
            raise RuntimeError(f"{workers} workers asked, {len(children)} running")
        yield base, children if workers > 1 else [proc.pid]
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


@contextlib.contextmanager
def _postgres_and_s3(opts: Options) -> Iterator[tuple[Any, dict[str, str]] | None]:
    """:yields: the throw-away PostgreSQL server and the environment of the S3 endpoint, or
    None when this machine has no PostgreSQL binaries or no moto."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.pgserver import binaries, postgres_server

    try:
        import moto  # noqa: F401
    except ImportError:
        yield None
        return
    if binaries() is None:
        yield None
        return
    with (
        postgres_server() as pg,
        HelperProcess(["benchmarks._moto"], os.path.join(opts.workdir, "moto.log")) as s3,
    ):
        yield (
            pg,
            {
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench-secret",
                "AWS_ENDPOINT_URL_S3": s3.base_url,
                "AWS_REGION": "us-east-1",
            },
        )


def _start(
    stack: contextlib.ExitStack, opts: Options, setup: Setup, number: int, shared: Any
) -> None:
    """Prepare the data of ``setup`` and start its server (stopped when ``stack`` closes)."""
    setup.fixture = Fixture(files=2000)
    data_dir = os.path.join(opts.workdir, f"scale-{number}")
    env: dict[str, str] = {}
    url, blobs = None, ""
    if setup.store == POSTGRES:
        pg, s3_env = shared
        url, blobs = pg.new_database(), f"s3://bench/scale-{number}"
        env = {**s3_env, "KLOUDLESS_DATABASE_URL": url, "KLOUDLESS_BLOB_STORE": blobs}
    with mock.patch.dict(os.environ, env):
        _prepare(data_dir, url, blobs, setup)
    setup.base, setup.pids = stack.enter_context(
        _serve(data_dir, setup.workers, env, setup.affinity)
    )


def _spin(seconds: float) -> float:
    """A CPU-bound pure-Python loop for ``seconds``. :returns: loops per second."""
    started = time.perf_counter()
    deadline = started + seconds
    loops = 0
    while time.perf_counter() < deadline:
        total = 0
        for i in range(2000):
            total += i
        loops += 1
    return loops / (time.perf_counter() - started)


def _ceiling(pool: ProcessPoolExecutor, seconds: float) -> float:
    """:returns: how much 2 CPU-bound Python processes do at once relative to 1: the most
    2 workers can gain on this machine at this moment (2.00 on 2 idle cores)."""
    one = sum(pool.map(_spin, [seconds]))
    two = sum(pool.map(_spin, [seconds] * 2))
    return two / one if one else 0.0


def run(opts: Options) -> list[Table]:
    """Run benchmark 7. :returns: its table."""
    seconds = 0.5 if opts.quick else 2.5
    rounds = 1 if opts.quick else 3
    limit = 40 if opts.quick else 1_000_000
    # Pinned (--cpu-affinity auto): one process of 8 threads on 2 idle cores spends most of
    # its CPU handing the GIL between its threads on both cores.
    wanted = [(SQLITE, 1, "off"), (SQLITE, 2, "off"), (SQLITE, 1, "auto"), (SQLITE, 2, "auto")]
    if not opts.quick:
        wanted += [(SQLITE, 4, "off"), (POSTGRES, 1, "off"), (POSTGRES, 2, "off")]
    cells: dict[tuple[str, str], list[_Cell]] = {}
    ceilings: list[float] = []
    with contextlib.ExitStack() as stack:
        shared = None
        if any(store == POSTGRES for store, _, _ in wanted):
            shared = stack.enter_context(_postgres_and_s3(opts))
        setups = [Setup(s, w, a) for s, w, a in wanted if s == SQLITE or shared is not None]
        for number, setup in enumerate(setups):
            _start(stack, opts, setup, number, shared)
        pool = stack.enter_context(ProcessPoolExecutor(CLIENT_PROCESSES))
        for round_ in range(rounds):
            ceilings.append(_ceiling(pool, seconds / 2))
            for kind in KINDS:
                order = setups if round_ % 2 == 0 else setups[::-1]
                for setup in order:
                    cell = _measure(pool, setup, kind, seconds, limit, f"{round_}{kind[0]}")
                    cells.setdefault((setup.name, kind), []).append(cell)
    table = _table(setups, cells, seconds, rounds)
    table.notes.append(
        "The machine's ceiling, measured in each round: 2 CPU-bound Python processes at once"
        f" did {statistics.median(ceilings):.2f}x the work of 1 (2.00x on 2 idle cores;"
        f" rounds {', '.join(f'{c:.2f}x' for c in ceilings)})."
    )
    return [table]


def _share(cells: list[_Cell]) -> str:
    """:returns: each worker's share of the requests, largest first (``52/48%``)."""
    totals: dict[int, int] = {}
    for cell in cells:
        for pid, n in cell.per_worker.items():
            totals[pid] = totals.get(pid, 0) + n
    everything = sum(totals.values())
    if len(totals) < 2 or not everything:
        return "-"
    shares = sorted((100 * n / everything for n in totals.values()), reverse=True)
    return "/".join(f"{s:.0f}" for s in shares) + "%"


def _median_ratio(cells: list[_Cell], bases: list[_Cell]) -> str:
    ratios = [c.rps / b.rps for c, b in zip(cells, bases) if b.rps]
    return f"{statistics.median(ratios):.2f}x" if ratios else "-"


def _table(
    setups: list[Setup], cells: dict[tuple[str, str], list[_Cell]], seconds: float, rounds: int
) -> Table:
    table = Table(
        "7. Workers and stores (2,000-file folder, 4 KiB files)",
        [
            "workload",
            "database",
            "workers",
            "pinned",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "vs 1 SQLite worker",
            "vs 1 worker, same store",
            "requests per worker",
            "server CPU µs/request",
            "client CPU µs/request",
            "cores: server/clients/other/idle",
        ],
    )
    ratios: dict[tuple[str, int, bool], str] = {}
    for kind in KINDS:
        sqlite_one = cells[(f"{SQLITE} x1", kind)]
        for setup in setups:
            mine = cells[(setup.name, kind)]
            # Pinned setups against one pinned worker: the gain of the second core alone.
            one = Setup(setup.store, 1, setup.affinity).name
            own_one = cells.get((one, kind), mine)
            latencies = [x for c in mine for x in c.latencies]
            requests = sum(c.count for c in mine)
            ratio = _median_ratio(mine, sqlite_one)
            if setup.store == SQLITE:
                ratios[(kind, setup.workers, setup.pinned)] = _median_ratio(mine, own_one)
            table.add(
                LABELS[kind],
                setup.store,
                setup.workers,
                "yes" if setup.pinned else "no",
                f"{statistics.median(c.rps for c in mine):,.0f}",
                f"{percentile(latencies, 50) * 1e3:.1f}",
                f"{percentile(latencies, 99) * 1e3:.1f}",
                ratio,
                _median_ratio(mine, own_one),
                _share(mine),
                f"{sum(c.server_cpu for c in mine) / max(1, requests) * 1e6:,.0f}",
                f"{sum(c.client_cpu for c in mine) / max(1, requests) * 1e6:,.0f}",
                "/".join(f"{statistics.median(c.cores[i] for c in mine):.1f}" for i in range(4)),
            )
    table.notes.append(
        f"Medians of {rounds} interleaved rounds of {seconds:g} s per cell;"
        f" {CLIENT_PROCESSES} client processes x {CONNECTIONS_PER_CLIENT} keep-alive"
        " connections (benchmarks/_loadgen.py) on the same 2 cores as the server"
        " (kloudless serve --workers N, 8 threads each; pinned: --cpu-affinity auto, each worker"
        " on a core of its own). 'vs 1 worker, same store': against 1 worker of the same store"
        " and pinning. Server CPU: the worker processes only"
        " (PostgreSQL and moto not counted). Cores: CPU seconds per second of the cell of the"
        " server's workers, the clients' request loops, everything else (PostgreSQL, moto, the"
        " clients' set-up, other processes on the machine) and idle."
    )
    for kind in ("listing", "download"):
        for pinned in (False, True):
            two = ratios.get((kind, 2, pinned), "-")
            if two != "-":
                verdict = "met" if float(two.rstrip("x")) >= GOAL else "not met"
                which = "pinned workers, of 1 pinned" if pinned else "workers, of 1"
                table.notes.append(
                    f"Goal: 2 {which} >= {GOAL:g}x for '{LABELS[kind]}': {two}, {verdict}."
                )
    return table
