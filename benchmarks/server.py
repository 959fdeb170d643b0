"""Benchmark 5: the local server under 1, 4 and 16 concurrent clients.

Workloads (each bounded in requests and in seconds, one thread and one ``requests.Session`` per
client, the server in its own process):

* listing a folder of 10,000 files, ``page_size`` 1000 (each request fetches one page, cycling
  through the 10 pages). The files are created before the server starts: one real upload through
  the storage backend, copied as 10,000 database rows (uploading them one by one through the API
  would only measure the small-file upload below, for a minute);
* downloading a 4 KiB file (``GET files/{id}/contents``);
* uploading 4 KiB files (``POST storage/files``);
* the baseline: a bare waitress serving 4 KiB of fixed bytes (:mod:`benchmarks._stub`), the
  ceiling of the HTTP layer on this machine.

Reported: requests/s, p50 and p99 latency, and the ratio of requests/s to the bare waitress.
Then (5b) the server time of one listing page, in this process through the WSGI app (no HTTP
or client in the figure): wall and thread CPU time per request, p50 and p90, beside the thread
CPU of a fixed piece of Python (the speed of the machine in the same seconds); (5c) 4 KiB
uploads against the fsync floor (:mod:`benchmarks.small_uploads`); and (5d) the 4 KiB download
against the bare waitress again, both servers running at once and measured in interleaved
blocks (the order alternating), with each server process's CPU time per request: table 5 takes
its cells one after the other, so a cell that other work on the machine slowed moves its ratio;
5d's medians of pairs do not.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Callable

import psutil
import requests

from . import small_uploads
from ._util import Options, Table, local_server, percentile, prepare_data_dir, stub_server

SMALL = b"k" * 4096
LEVELS = (1, 4, 16)


@dataclass
class Fixture:
    """Ids created in the data dir before the server starts."""

    listing: str = ""
    small_file: str = ""
    uploads: str = ""
    files: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def populate(fixture: Fixture) -> Callable[[Any, int], None]:
    """:returns: a ``populate(app, account_id)`` that fills :class:`Fixture`."""

    def fill(app: Any, account_id: int) -> None:
        from kloudless.server.blobs import blob_store
        from kloudless.server.connectors.local_storage import LocalStorage, order_key

        # In the app's blob store (the data dir, or S3 for benchmark 7's PostgreSQL + S3), the
        # small files in the database, as an upload through the API puts them.
        blobs = blob_store(app.settings)
        storage = LocalStorage(
            app.store,
            app.settings.data_dir,
            account_id,
            blobs=blobs,
            inline_bytes=app.settings.inline_file_bytes,
        )
        big = app.settings.max_upload_bytes
        listing, _ = storage.create_folder("root", "listing", False)
        uploads, _ = storage.create_folder("root", "uploads", False)
        small = storage.upload("root", "small.bin", io.BytesIO(SMALL), False, big)
        template = storage.upload(listing.id, "template.txt", io.BytesIO(SMALL), False, big)
        row = dict(app.store.one("SELECT * FROM objects WHERE id = ?", (template.id,)))
        columns = list(row)
        marks = ",".join("?" * len(columns))
        rows = []
        for index in range(1, fixture.files):
            file_id, name = f"file_bench{index:08d}", f"file-{index:06d}.txt"
            row.update(id=file_id, name=name, sort_key=order_key("file", name, file_id))
            rows.append([row[c] for c in columns])
        with app.store.transaction() as conn:
            conn.executemany(f"INSERT INTO objects ({','.join(columns)}) VALUES ({marks})", rows)
        fixture.listing, fixture.uploads, fixture.small_file = listing.id, uploads.id, small.id

    return fill


def load(
    clients: int,
    request: Callable[[requests.Session, int], None],
    max_requests: int,
    seconds: float,
) -> tuple[int, float, list[float]]:
    """Run ``request(session, n)`` from ``clients`` threads until ``max_requests`` were sent or
    ``seconds`` passed. :returns: ``(requests, elapsed seconds, latencies in seconds)``."""
    counter = itertools.count()
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        with requests.Session() as session:
            mine: list[float] = []
            try:
                while time.perf_counter() < deadline:
                    number = next(counter)
                    if number >= max_requests:
                        break
                    started = time.perf_counter()
                    request(session, number)
                    mine.append(time.perf_counter() - started)
            except BaseException as exc:  # reported below
                errors.append(exc)
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}") from errors[0]
    return len(latencies), elapsed, latencies


def run(opts: Options) -> list[Table]:
    """Run benchmark 5. :returns: its table."""
    fixture = Fixture(files=2000 if opts.quick else 10000)
    seconds = 0.5 if opts.quick else 3.0
    limits = (
        {"listing": 12, "download": 40, "upload": 40, "static": 40}
        if opts.quick
        else {"listing": 400, "download": 4000, "upload": 3000, "static": 6000}
    )
    pages = fixture.files // 1000
    results: dict[tuple[str, int], tuple[int, float, list[float]]] = {}
    with stub_server(opts, 0) as stub:
        static = f"{stub.base_url}/static"

        def get_static(session: requests.Session, n: int) -> None:
            session.get(static, timeout=60).raise_for_status()

        for level in LEVELS:
            results[("static", level)] = load(level, get_static, limits["static"], seconds)
    with local_server(opts, "server", populate=populate(fixture)) as server:
        headers = server.headers()
        base = server.account_url()
        listing = f"{base}/storage/folders/{fixture.listing}/contents"
        contents = f"{base}/storage/files/{fixture.small_file}/contents"
        upload_url = f"{base}/storage/files"

        def get_page(session: requests.Session, n: int) -> None:
            page = n % pages + 1
            response = session.get(
                listing, params={"page": page, "page_size": 1000}, headers=headers, timeout=120
            )
            response.raise_for_status()
            if len(response.json()["objects"]) != 1000:
                raise RuntimeError(f"page {page} is not full")

        def download(session: requests.Session, n: int) -> None:
            response = session.get(contents, headers=headers, timeout=60)
            response.raise_for_status()
            if response.content != SMALL:
                raise RuntimeError("wrong contents")

        def upload(session: requests.Session, n: int) -> None:
            meta = json.dumps({"name": f"small-{n:06d}.bin", "parent_id": fixture.uploads})
            response = session.post(
                upload_url,
                data=SMALL,
                headers={**headers, "X-Kloudless-Metadata": meta},
                timeout=60,
            )
            response.raise_for_status()

        workloads = {"listing": get_page, "download": download, "upload": upload}
        for kind, request in workloads.items():
            for level in LEVELS:
                results[(kind, level)] = load(level, request, limits[kind], seconds)
        floor = small_uploads.run_table(opts, server, fixture.uploads)
    table = Table(
        f"5. Local server throughput ({fixture.files:,}-file folder, 4 KiB files)",
        ["workload", "clients", "requests", "requests/s", "p50 ms", "p99 ms", "vs bare waitress"],
    )
    labels = {
        "static": "bare waitress, 4 KiB GET (baseline)",
        "listing": "list folder, page of 1000",
        "download": "download 4 KiB file",
        "upload": "upload 4 KiB file",
    }
    for kind in ("static", "listing", "download", "upload"):
        for level in LEVELS:
            count, elapsed, latencies = results[(kind, level)]
            rps = count / elapsed if elapsed else 0.0
            base_count, base_elapsed, _ = results[("static", level)]
            base_rps = base_count / base_elapsed if base_elapsed else 0.0
            table.add(
                labels[kind],
                level,
                count,
                f"{rps:,.0f}",
                f"{percentile(latencies, 50) * 1e3:.1f}",
                f"{percentile(latencies, 99) * 1e3:.1f}",
                f"{rps / base_rps:.2f}x" if base_rps else "-",
            )
    table.notes.append(
        f"Each cell: at most {seconds:g} s (or the request cap); one thread per client in one "
        "client process, the server (8 waitress threads) in another."
    )
    return [table, listing_server_time(opts, fixture.files), floor, download_pairs(opts)]


#: The issue's goal for a 4 KiB download against the bare waitress (5d, speed ratio).
DOWNLOAD_GOAL = 0.8


def download_pairs(opts: Options) -> Table:
    """Benchmark 5d: 4 KiB ``GET`` of the local server and of the bare waitress, both running,
    in interleaved blocks (order alternating) at 1 and 4 clients. :returns: its table."""
    fixture = Fixture(files=1)
    rounds = 2 if opts.quick else 8
    per_block = 20 if opts.quick else 400
    rows: list[tuple[int, dict[str, list[tuple[float, float, float]]]]] = []
    with (
        stub_server(opts, 0) as stub,
        local_server(opts, "download-pairs", populate=populate(fixture)) as server,
    ):
        headers = server.headers()
        targets = {
            "bare waitress": (f"{stub.base_url}/static", {}, psutil.Process(stub.pid)),
            "kloudless": (
                f"{server.account_url()}/storage/files/{fixture.small_file}/contents",
                headers,
                psutil.Process(server.pid),
            ),
        }
        for clients in (1, 4):
            blocks: dict[str, list[tuple[float, float, float]]] = {name: [] for name in targets}
            names = list(targets)
            for number in range(rounds):
                for name in names if number % 2 == 0 else names[::-1]:
                    url, sent, process = targets[name]
                    blocks[name].append(_cpu_block(url, sent, process, clients, per_block))
            rows.append((clients, blocks))
    table = Table(
        "5d. 4 KiB download against bare waitress, interleaved: server CPU per request",
        ["server", "clients", "requests/s", "server CPU µs/request", "client CPU µs/request",
         "vs bare waitress"],
    )  # fmt: skip
    verdicts = []
    for clients, blocks in rows:
        base, ours = blocks["bare waitress"], blocks["kloudless"]
        pairs = [mine[0] / theirs[0] for mine, theirs in zip(ours, base) if theirs[0]]
        for name, values in blocks.items():
            table.add(
                name,
                clients,
                f"{median([v[0] for v in values]):,.0f}",
                f"{median([v[1] for v in values]):.0f}",
                f"{median([v[2] for v in values]):.0f}",
                "1.00x" if name == "bare waitress" else f"{median(pairs):.2f}x",
            )
        client, stub_cpu = median([v[2] for v in base]), median([v[1] for v in base])
        # Both processes on the same cores: the speed ratio is at best the ratio of the CPU a
        # request costs in all, so the goal needs server CPU <= (client + stub) / goal - client.
        needed = (client + stub_cpu) / DOWNLOAD_GOAL - client
        verdict = "met" if median(pairs) >= DOWNLOAD_GOAL else "not met"
        verdicts.append(
            f"{clients} client{'s' if clients > 1 else ''}: {median(pairs):.2f}x ({verdict}); "
            f"the goal needs about {needed:.0f} µs of server CPU per request at this client cost"
        )
    table.notes.append(
        f"Medians over {rounds} interleaved block pairs of {per_block} requests (the order "
        "alternating); server CPU: user + system time of the server process per request; "
        "client CPU: this process's. Goal >= "
        f"{DOWNLOAD_GOAL:g}x: " + "; ".join(verdicts) + "."
    )
    return table


def _cpu_block(
    url: str, headers: dict[str, str], process: Any, clients: int, count: int
) -> tuple[float, float, float]:
    """Send ``count`` GETs of 4096 bytes from ``clients`` threads (after a short warm-up).

    :returns: ``(requests/s, server CPU µs per request, client CPU µs per request)``.
    """
    sessions = [requests.Session() for _ in range(clients)]

    def send(session: requests.Session, number: int) -> None:
        for _ in range(number):
            answer = session.get(url, headers=headers, timeout=60)
            answer.raise_for_status()
            if len(answer.content) != 4096:
                raise RuntimeError(f"{url}: wrong contents")

    try:
        for session in sessions:
            send(session, 3)
        share = max(1, count // clients)
        threads = [threading.Thread(target=send, args=(s, share)) for s in sessions]
        server_before, client_before = sum(process.cpu_times()[:2]), time.process_time()
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        elapsed = time.perf_counter() - started
        server_cpu = sum(process.cpu_times()[:2]) - server_before
        client_cpu = time.process_time() - client_before
    finally:
        for session in sessions:
            session.close()
    sent = share * clients
    return sent / elapsed, server_cpu / sent * 1e6, client_cpu / sent * 1e6


#: The issue's goal for one page of 1000 (server time, p50).
LISTING_TARGET_MS = 10.0


def _reference_work() -> bytes:
    """A fixed piece of CPU-bound Python, timed between the listing requests of 5b: its time
    says how fast the machine ran at that moment (the same code took 6.5 ms of thread CPU per
    page in one run and 11.2 ms in another on this virtual machine, whose neighbours load
    its cores without showing in its load average). :returns: its output, to be checked."""
    page = [
        {"id": f"file_{n:08d}", "name": f"file-{n:06d}.txt", "size": n, "ids": {"default": n}}
        for n in range(1000)
    ]
    return json.dumps(page, separators=(",", ":")).encode()


def listing_server_time(opts: Options, files: int) -> Table:
    """Benchmark 5b: the server time of ``GET folders/{id}/contents?page_size=1000`` through the
    WSGI app in this process (werkzeug's test client: no sockets, no HTTP parsing, no client),
    cycling through the pages of a folder of ``files`` files. :returns: its table."""
    from werkzeug.test import Client

    from kloudless.server import Settings, create_app

    fixture = Fixture(files=files)
    data_dir = os.path.join(opts.workdir, "data-listing-time")
    os.makedirs(data_dir)
    token, account_id = prepare_data_dir(data_dir, populate(fixture))
    app = create_app(Settings(data_dir=data_dir))
    pages = files // 1000
    requests_made = 6 if opts.quick else 60
    walls: list[float] = []
    cpus: list[float] = []
    references: list[float] = []
    try:
        client = Client(app)
        url = f"/v1/accounts/{account_id}/storage/folders/{fixture.listing}/contents"
        headers = {"Authorization": f"Bearer {token}", "Host": "127.0.0.1"}
        for number in range(pages + requests_made):  # one warm-up round over the pages
            started, cpu = time.perf_counter(), time.thread_time()
            answer = client.get(
                url, query_string={"page": number % pages + 1, "page_size": 1000}, headers=headers
            )
            wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
            if answer.status_code != 200 or len(answer.get_json()["objects"]) != 1000:
                raise RuntimeError(f"listing failed: {answer.status_code}")
            if number >= pages:
                walls.append(wall)
                cpus.append(cpu)
            if number % pages == pages - 1:  # after each round of pages, as many of these
                for _ in range(pages):
                    reference = time.thread_time()
                    _reference_work()
                    references.append(time.thread_time() - reference)
    finally:
        app.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    table = Table(
        f"5b. Listing a page of 1000 ({files:,}-file folder): server time in process",
        ["measure", "requests", "p50 ms", "p90 ms"],
    )
    table.add(
        "wall time",
        len(walls),
        f"{percentile(walls, 50) * 1e3:.1f}",
        f"{percentile(walls, 90) * 1e3:.1f}",
    )
    table.add(
        "thread CPU time",
        len(cpus),
        f"{percentile(cpus, 50) * 1e3:.1f}",
        f"{percentile(cpus, 90) * 1e3:.1f}",
    )
    table.add(
        "reference work, thread CPU",
        len(references),
        f"{percentile(references, 50) * 1e3:.1f}",
        f"{percentile(references, 90) * 1e3:.1f}",
    )
    p50 = percentile(walls, 50) * 1e3
    verdict = "met" if p50 <= LISTING_TARGET_MS else "not met"
    ratio = percentile(cpus, 50) / (percentile(references, 50) or 1)
    table.notes.append(
        f"Routing, authentication, the indexed page read, building and encoding 1000 objects; "
        f"goal p50 <= {LISTING_TARGET_MS:g} ms (wall): {verdict}. Wall time above CPU time is "
        "time the thread waited for a core (other processes on the machine). Reference work: "
        "a fixed piece of Python (1000 small dicts built and encoded by the json module) timed "
        "after each round of pages, the speed of the machine in the same seconds; the listing's "
        f"CPU p50 is {ratio:.2f}x of it (comparable between runs where the ms are not)."
    )
    return table
