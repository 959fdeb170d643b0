"""Benchmark 1: per-request overhead of ``account.get(...)`` against a bare ``requests.Session``.

Two measurements:

* against the local server (child process) on loopback: ``GET storage/folders/root`` through the
  SDK and through a bare session with the same headers, interleaved in blocks (order alternating);
  requests/s and this process's CPU time per request;
* against a canned in-process transport (a requests adapter returning a prepared response), which
  isolates the client-side CPU cost per call; the SDK run is also profiled with cProfile.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from kloudless import Account
from kloudless.retry import KloudlessAdapter

from ._profile import readable_name
from ._util import Clock, Options, Table, local_server, met, ratio

PATH = "storage/folders/root"
#: Target: the SDK at most this much slower than bare requests.
TARGET = 0.10
#: Target: the SDK's CPU per call on the canned transport at most this fraction of bare requests'
#: (the client resolves the environment of its origin once instead of on every call).
CANNED_TARGET = 0.85


class CannedTransport(HTTPAdapter):
    """An adapter that answers every request with :attr:`body` (200, JSON), without I/O."""

    body = b"{}"
    headers: dict[str, str] = {}

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """:returns: a fresh response built the way ``HTTPAdapter`` builds real ones."""
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(self.body),
            headers=self.headers,
            status=200,
            reason="OK",
            preload_content=False,
            decode_content=False,
            request_method=request.method,
        )
        return self.build_response(request, raw)


class CannedKloudlessAdapter(KloudlessAdapter, CannedTransport):
    """The SDK's adapter (per-call retry policy included) over :class:`CannedTransport`."""


def _interleaved(
    sdk_call: Any,
    bare_call: Any,
    total: int,
    block: int,
    ratios: list[float] | None = None,
    cpu_ratios: list[float] | None = None,
) -> tuple[Clock, Clock, int]:
    """Alternate blocks of SDK and bare calls (order flipped every block).

    :param ratios: receives, per pair of blocks, bare time / SDK time (the SDK's relative speed).
    :param cpu_ratios: receives, per pair of blocks, SDK CPU time / bare CPU time.
    """
    sdk, bare = Clock(), Clock()
    done = 0
    for index in range(max(1, total // block)):
        order = [(sdk, sdk_call), (bare, bare_call)]
        if index % 2:
            order.reverse()
        walls, cpus = {}, {}
        for clock, call in order:
            before, before_cpu = clock.wall, clock.cpu
            with clock:
                for _ in range(block):
                    call()
            walls[id(clock)] = clock.wall - before
            cpus[id(clock)] = clock.cpu - before_cpu
        if ratios is not None:
            ratios.append(walls[id(bare)] / walls[id(sdk)])
        if cpu_ratios is not None and cpus[id(bare)] > 0:
            cpu_ratios.append(cpus[id(sdk)] / cpus[id(bare)])
        done += block
    return sdk, bare, done


def _canned_pair(body: bytes, token: str) -> tuple[Account, requests.Session]:
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    base = "http://127.0.0.1:9"  # never connected to
    account = Account(token=token, base_url=base)
    default = account.get_adapter(base)
    assert isinstance(default, KloudlessAdapter)
    sdk_adapter = CannedKloudlessAdapter(default.default_retry)
    sdk_adapter.body, sdk_adapter.headers = body, headers
    account.mount("http://", sdk_adapter)
    bare = requests.Session()
    bare.headers.update(
        {"Authorization": f"Bearer {token}", "User-Agent": account.headers["User-Agent"]}
    )
    bare_adapter = CannedTransport()
    bare_adapter.body, bare_adapter.headers = body, headers
    bare.mount("http://", bare_adapter)
    return account, bare


def _profile_table(account: Account, calls: int) -> Table:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        account.get(PATH)
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        entries.append((tottime, cumtime, ncalls, readable_name(filename, line, func)))
    entries.sort(reverse=True)
    table = Table(
        "1c. cProfile of account.get() over the canned transport (top 12 by own time)",
        ["function", "calls/request", "own us/request", "cumulative us/request"],
    )
    for tottime, cumtime, ncalls, name in entries[:12]:
        table.add(
            name,
            f"{ncalls / calls:.1f}",
            f"{tottime / calls * 1e6:.1f}",
            f"{cumtime / calls * 1e6:.1f}",
        )
    table.notes.append(
        "(profiler overhead inflates absolute figures; compare rows with each other)"
    )
    return table


def run(opts: Options) -> list[Table]:
    """Run benchmark 1. :returns: its tables."""
    total, block = (60, 20) if opts.quick else (6000, 250)
    canned_calls = 300 if opts.quick else 10000
    with local_server(opts, "overhead") as server:
        account = Account(token=server.token, base_url=server.base_url)
        bare = requests.Session()
        bare.headers.update(server.headers())
        url = f"{account.url}/{PATH}"
        timeout = account.timeout
        first = account.get(PATH)
        body = first.response.content
        check = bare.get(url, timeout=timeout)
        check.raise_for_status()
        assert check.json()["id"] == first.data["id"] == "root"

        def bare_get() -> None:
            response = bare.get(url, timeout=timeout)
            response.raise_for_status()
            response.json()

        for _ in range(min(50, total)):  # warm up connections and caches
            account.get(PATH)
            bare_get()
        paired: list[float] = []
        sdk, base, done = _interleaved(lambda: account.get(PATH), bare_get, total, block, paired)
        account.close()
        bare.close()
    table = Table(
        "1a. Per-request overhead: GET storage/folders/root on the local server",
        ["client", "requests", "requests/s", "ms/request", "client CPU us/request", "ratio"],
    )
    sdk_rps, base_rps = done / sdk.wall, done / base.wall
    relative = statistics.median(paired)
    table.add(
        "bare requests.Session",
        done,
        f"{base_rps:.0f}",
        f"{base.wall / done * 1e3:.2f}",
        f"{base.cpu / done * 1e6:.0f}",
        "1.00x",
    )
    table.add(
        "kloudless Account.get",
        done,
        f"{sdk_rps:.0f}",
        f"{sdk.wall / done * 1e3:.2f}",
        f"{sdk.cpu / done * 1e6:.0f}",
        f"{relative:.2f}x",
    )
    table.notes.append(
        f"Ratio: median over {len(paired)} interleaved block pairs of {block} requests of the "
        f"SDK's speed relative to bare requests (overall {ratio(sdk_rps, base_rps)}); goal "
        f">= {1 - TARGET:.2f}x: {met(relative >= 1 - TARGET)}. The server runs in its own process."
    )

    canned_sdk, canned_bare = _canned_pair(body, server.token)
    for _ in range(min(200, canned_calls)):
        canned_sdk.get(PATH)
        canned_bare.get(f"{canned_sdk.url}/{PATH}").json()
    canned_url = f"{canned_sdk.url}/{PATH}"
    cpu_pairs: list[float] = []
    csdk, cbare, cdone = _interleaved(
        lambda: canned_sdk.get(PATH),
        lambda: canned_bare.get(canned_url, timeout=timeout).json(),
        canned_calls,
        max(1, canned_calls // 20),
        cpu_ratios=cpu_pairs,
    )
    cpu_relative = statistics.median(cpu_pairs) if cpu_pairs else csdk.cpu / max(cbare.cpu, 1e-9)
    canned = Table(
        "1b. Client CPU per call against a canned in-process transport (no I/O)",
        ["client", "calls", "calls/s", "CPU us/call", "ratio"],
    )
    canned.add(
        "bare requests.Session",
        cdone,
        f"{cdone / cbare.wall:.0f}",
        f"{cbare.cpu / cdone * 1e6:.1f}",
        "1.00x",
    )
    canned.add(
        "kloudless Account.get",
        cdone,
        f"{cdone / csdk.wall:.0f}",
        f"{csdk.cpu / cdone * 1e6:.1f}",
        f"{cpu_relative:.2f}x",
    )
    canned.notes.append(
        f"Ratio: median over {len(cpu_pairs)} interleaved block pairs of the SDK's CPU time "
        f"relative to bare requests (overall {ratio(csdk.cpu, cbare.cpu)}); goal "
        f"<= {CANNED_TARGET:.2f}x: {met(cpu_relative <= CANNED_TARGET)}. The bare session reads "
        "the proxy and CA bundle variables from os.environ on every call (trust_env); the SDK "
        "resolved them once, when the client was created, for its one origin."
    )
    profile = _profile_table(canned_sdk, min(canned_calls, 2000))
    canned_sdk.close()
    canned_bare.close()
    return [table, canned, profile]
