"""Connections spread evenly over ``--workers N`` (kloudless/server/balance.py).

* The open-connection counts live in memory that forked children share.
* A worker with more connections than a less loaded live one leaves a pending connection to
  it for a while - never forever, the wait starts over when another worker takes one, and a
  worker whose loop has stopped is not waited for.
* End to end: 8 keep-alive connections opened one after the other to ``kloudless serve
  --workers 2`` end up 4 and 4 on the two worker processes (found from the kernel's socket
  table), and each worker answers the requests of its own connections.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import psutil
import pytest

from kloudless.server import balance
from kloudless.server.balance import Balance, Slot

from .processes import Served, free_port

TIMEOUT = 60.0


def test_counts_are_shared_with_forked_children() -> None:
    shared = Balance(2)
    first, second = shared.slot(0), shared.slot(1)
    first.set(3)
    pid = os.fork()
    if pid == 0:  # the child: publish its count and leave at once
        second.set(7)
        os._exit(0 if shared.counts() == [3, 7] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert shared.counts() == [3, 7]
    assert second.busier() and not first.busier()
    with pytest.raises(IndexError):
        shared.slot(2)


def _three(now: float) -> tuple[Slot, Slot, Slot]:
    shared = Balance(3)
    busy, idle, other = shared.slot(0), shared.slot(1), shared.slot(2)
    for slot, count in ((busy, 2), (idle, 1), (other, 2)):
        slot.set(count)
        slot.beat(now)
    return busy, idle, other


def test_a_busier_worker_leaves_a_connection_to_a_less_loaded_one_for_a_while() -> None:
    now = 1000.0
    busy, idle, other = _three(now)
    assert not idle.defer(now) and not idle.busier(now)  # the least loaded accepts at once
    assert other.busier(now)  # every worker above the least loaded one is "busier"
    wait, nap = balance.DEFER_WAIT, balance.NAP
    # Looked at after every nap (a few ms apart at most): left to the others for DEFER_WAIT.
    looks = [now + wait * i / 20 for i in range(20)]
    assert all(busy.defer(t) for t in looks)
    # Nobody took it: the busier worker accepts, and waits again for the next connection.
    assert not busy.defer(now + wait)
    assert busy.defer(now + wait + nap)


def test_the_wait_starts_over_when_another_worker_takes_a_connection() -> None:
    now, wait = 1000.0, balance.DEFER_WAIT
    busy, _, other = _three(now)
    steps = [now + wait * 0.9 * i / 10 for i in range(11)]  # looked at every few ms
    assert all(busy.defer(t) for t in steps)
    other.set(3)  # it took a connection: a later one is pending now
    assert busy.defer(steps[-1] + balance.NAP)
    assert busy.defer(now + wait + balance.NAP)  # past the first wait, within the new one
    # A pending connection unseen for a while (taken by another worker): a new wait.
    assert busy.defer(now + 5 * wait)
    assert busy.defer(now + 5 * wait + wait / 2)


def test_a_stuck_worker_is_not_waited_for() -> None:
    now = 1000.0
    busy, idle, other = _three(now)
    idle.beat(now - balance.STALE - 1)  # its loop has not run for a while
    other.set(5)
    assert not busy.busier(now) and not busy.defer(now)
    idle.beat(now)
    assert busy.defer(now)


def _owner(workers: list[psutil.Process], client_port: int) -> int | None:
    for proc in workers:
        listing = getattr(proc, "net_connections", None) or proc.connections
        for conn in listing(kind="tcp"):
            if conn.raddr and conn.raddr.port == client_port:
                return int(proc.pid)
    return None


def _get(sock: socket.socket, host: str, token: str) -> bytes:
    request = (
        f"GET /v1/accounts/me HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    sock.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        body += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


def test_keep_alive_connections_spread_evenly_over_two_workers(tmp_path: Any) -> None:
    port = free_port()
    args = ["--data-dir", str(tmp_path / "d"), "--port", str(port), "--workers", "2"]
    args += ["--connections-per-address", "0"]
    # A long wait: on a loaded machine the idle worker may take a while to wake, and this test
    # is about where connections go, not about how fast.
    prelude = "import kloudless.server.balance as b; b.DEFER_WAIT = 30.0"
    with Served(args, prelude=prelude) as served:
        token = served.exports()["KLOUDLESS_TOKEN"]
        assert served.proc is not None
        workers = psutil.Process(served.proc.pid).children()
        assert len(workers) == 2
        sockets = []
        try:
            for _ in range(8):  # one after the other: each accepted before the next
                sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
                sockets.append(sock)
                _get(sock, f"127.0.0.1:{port}", token)
            owners = [_owner(workers, s.getsockname()[1]) for s in sockets]
            assert None not in owners
            assert sorted(owners.count(w.pid) for w in workers) == [4, 4], owners
            for sock in sockets:  # the same connections keep being served
                assert b'"id"' in _get(sock, f"127.0.0.1:{port}", token)
            assert [_owner(workers, s.getsockname()[1]) for s in sockets] == owners
        finally:
            for sock in sockets:
                sock.close()
