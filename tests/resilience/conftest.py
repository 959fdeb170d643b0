"""Fixtures for the resilience tests: a real server (waitress on 127.0.0.1, a free port, a
temporary data dir) and the fault-injecting proxy in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kloudless.server.bootstrap import Credentials
from kloudless.server.idempotency import IdempotencyLayer
from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings

from .faults import FaultProxy

PART_SIZE = 32 * 1024

#: SDK settings for tests: many quick retries, tiny waits.
FAST_RETRIES: dict[str, Any] = {
    "max_retries": 6,
    "backoff_factor": 0.01,
    "backoff_max": 0.05,
    "backoff_jitter": 0.01,
    "retry_after_max": 0.05,
    "timeout": (5, 30),
}


@dataclass
class Server:
    thread: ServerThread
    creds: Credentials

    @property
    def base_url(self) -> str:
        return self.thread.base_url

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.thread.port)


def start_server(data_dir: str, **changes: Any) -> Server:
    settings = Settings(
        data_dir=data_dir, host="127.0.0.1", port=0, multipart_part_size=PART_SIZE
    ).replace(**changes)
    thread = ServerThread(settings)
    assert thread.credentials is not None
    assert any(isinstance(w, IdempotencyLayer) for w in thread.app.handler_wrappers)
    thread.start()
    return Server(thread, thread.credentials)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(str(tmp_path_factory.mktemp("resilience-data")))
    try:
        yield srv
    finally:
        srv.thread.stop()


@pytest.fixture
def proxy(server: Server) -> Iterator[FaultProxy]:
    with FaultProxy(server.address) as fault_proxy:
        yield fault_proxy


def account(base_url: str, token: str, **overrides: Any) -> Any:
    """An SDK Account on ``base_url`` with :data:`FAST_RETRIES` (and ``overrides``)."""
    from kloudless import Account

    options = dict(FAST_RETRIES)
    options.update(overrides)
    return Account(token=token, base_url=base_url, **options)
