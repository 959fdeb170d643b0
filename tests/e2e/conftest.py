"""A real server (waitress in a background thread) on 127.0.0.1, a random port and a temporary
data dir, with the SDK's ``configuration['base_url']`` pointed at it; on a fresh PostgreSQL
database of the session's server with ``KLOUDLESS_TEST_DATABASE=postgresql``
(``make test-postgres``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kloudless.server.bootstrap import Credentials
from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings


@dataclass
class LiveServer:
    base_url: str
    creds: Credentials
    thread: ServerThread


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LiveServer]:
    import kloudless

    data_dir = tmp_path_factory.mktemp("e2e-data")
    url = None
    if os.environ.get("KLOUDLESS_TEST_DATABASE") == "postgresql":
        url = request.getfixturevalue("postgres").new_database()
    server = ServerThread(
        Settings(
            data_dir=str(data_dir),
            host="127.0.0.1",
            port=0,
            multipart_part_size=64 * 1024,
            database_url=url,
        )
    )
    assert server.credentials is not None
    previous = kloudless.configuration["base_url"]
    kloudless.configuration["base_url"] = server.base_url
    server.start()
    try:
        yield LiveServer(server.base_url, server.credentials, server)
    finally:
        kloudless.configuration["base_url"] = previous
        server.stop()


@pytest.fixture
def token(live_server: LiveServer) -> str:
    return live_server.creds.token


@pytest.fixture
def account(token: str) -> Iterator[Any]:
    from kloudless import Account

    with Account(token=token) as acc:
        yield acc
