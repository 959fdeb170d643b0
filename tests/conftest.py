"""Fixtures shared by every suite: the throw-away PostgreSQL server (started on first use,
once per test session; see ``tests/pgserver.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgserver import PostgresServer, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server; ``postgres.new_database()`` gives a test its own."""
    with postgres_server() as server:
        yield server
