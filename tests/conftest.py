"""Fixtures shared by every suite: the throw-away PostgreSQL server (see ``tests/pgserver.py``)
and the S3 endpoint (moto on loopback, see ``tests/s3/servers.py``), each started on first use,
once per test session (per pytest-xdist worker); and a still clock for the rate limits."""

from __future__ import annotations

import time
import types
from collections.abc import Iterator

import pytest

from tests.pgserver import PostgresServer, postgres_server
from tests.s3.servers import S3Endpoint, aws_environment, moto_s3


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server; ``postgres.new_database()`` gives a test its own
    (``postgres.migrated_database()`` one with the server's tables already made)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    """The session's S3 endpoint, with this process's AWS variables pointed at it (the
    servers the tests start find it like a deployment does); ``s3.new_bucket()`` gives a test
    its own bucket."""
    with moto_s3() as endpoint, aws_environment(endpoint):
        yield endpoint


@pytest.fixture
def still_rate_window(monkeypatch: pytest.MonkeyPatch) -> float:
    """Stop the rate limits' wall clock halfway through a one-minute window: their windows are
    fixed minutes, so a test whose requests straddle a minute (a slow, loaded machine) would
    see its counts start again. :returns: the frozen time."""
    from kloudless.server import ratelimit

    now = time.time() // 60 * 60 + 30
    still = types.SimpleNamespace(time=lambda: now, monotonic=time.monotonic)
    monkeypatch.setattr(ratelimit, "time", still)
    return now
