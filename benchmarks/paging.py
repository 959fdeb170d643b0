"""Benchmark 2: iterating a 100,000-item folder listing (``page_size`` 1000).

The pages come from :mod:`benchmarks._stub` (a waitress process on loopback serving pre-encoded
pages shaped like the local server's), so the client's work is what gets measured. The SDK's
``get_paging_iterator()`` is compared with a hand-written bare-requests loop (``page`` and
``next_page``, ``response.json()``, touching each item's ``id``): items per second, interleaved,
then peak traced memory (tracemalloc) for a short and a full listing, which must be about the
same (memory does not grow with the number of pages).
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from typing import Any, Callable

import requests

from kloudless import Account

from ._util import Options, Table, met, ratio, stub_server

LIST = "storage/folders/root/contents"
PAGE_SIZE = 1000


def _sdk_walk(account: Account, limit: int) -> int:
    first = account.get(LIST, params={"page_size": PAGE_SIZE})
    count = 0
    for resource in first.get_paging_iterator(max_resources=limit):
        if resource.data["id"]:
            count += 1
    return count


def _bare_walk(session: requests.Session, url: str, limit: int) -> int:
    count = 0
    page: Any = 1
    for _ in range(limit // PAGE_SIZE + 2):  # bounded: one request per page
        response = session.get(url, params={"page": page, "page_size": PAGE_SIZE}, timeout=60)
        response.raise_for_status()
        data = response.json()
        for item in data["objects"]:
            if item["id"]:
                count += 1
                if count >= limit:
                    return count
        page = data.get("next_page")
        if not page:
            break
    return count


def _peak(walk: Callable[[int], int], limit: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = walk(limit)
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(opts: Options) -> list[Table]:
    """Run benchmark 2. :returns: its table."""
    total = 5 * PAGE_SIZE if opts.quick else 100 * PAGE_SIZE
    rounds = 1 if opts.quick else 4
    short = 2 * PAGE_SIZE if opts.quick else 10 * PAGE_SIZE
    with stub_server(opts, total) as stub:
        account = Account(token="tok_benchmark", base_url=stub.base_url, account_id=None)
        account.url = f"{stub.base_url}/v1/accounts/1"
        session = requests.Session()
        session.headers.update({"Authorization": "Bearer tok_benchmark"})
        url = f"{account.url}/{LIST}"
        sdk_time = bare_time = 0.0
        paired: list[float] = []
        for index in range(rounds):
            order = ["sdk", "bare"] if index % 2 == 0 else ["bare", "sdk"]
            spent = {}
            for who in order:
                started = time.perf_counter()
                if who == "sdk":
                    count = _sdk_walk(account, total)
                else:
                    count = _bare_walk(session, url, total)
                spent[who] = time.perf_counter() - started
                if count != total:
                    raise RuntimeError(f"{who} listed {count} of {total} items")
            sdk_time += spent["sdk"]
            bare_time += spent["bare"]
            paired.append(spent["bare"] / spent["sdk"])
        peaks = {
            ("sdk", n): _peak(lambda limit: _sdk_walk(account, limit), n)[1] for n in (short, total)
        }
        peaks.update(
            {
                ("bare", n): _peak(lambda limit: _bare_walk(session, url, limit), n)[1]
                for n in (short, total)
            }
        )
        account.close()
        session.close()
    items = total * rounds
    table = Table(
        f"2. Paging {total:,} items, page_size {PAGE_SIZE} (stub server on loopback)",
        [
            "client",
            "items/s",
            "ratio",
            f"peak traced KiB, {short // PAGE_SIZE} pages",
            f"peak traced KiB, {total // PAGE_SIZE} pages",
            "growth",
        ],
    )
    for who, label, seconds in (
        ("bare", "bare requests loop", bare_time),
        ("sdk", "get_paging_iterator()", sdk_time),
    ):
        small, big = peaks[(who, short)], peaks[(who, total)]
        table.add(
            label,
            f"{items / seconds:,.0f}",
            f"{statistics.median(paired):.2f}x" if who == "sdk" else "1.00x",
            f"{small / 1024:,.0f}",
            f"{big / 1024:,.0f}",
            ratio(big, small),
        )
    flat = peaks[("sdk", total)] <= 1.25 * peaks[("sdk", short)]
    table.notes.append(
        f"Ratio: median over {len(paired)} interleaved pairs of full listings (overall "
        f"{ratio(bare_time, sdk_time)}). The SDK builds one Resource object per item."
    )
    table.notes.append(
        f"Memory flat in the number of pages (full listing peak <= 1.25x the short one): "
        f"{met(flat)}. Peak is about one page of JSON plus its parsed objects."
    )
    return [table]
