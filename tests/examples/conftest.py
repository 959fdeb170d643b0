"""Fixtures of the example tests: a live local server and example servers run as scripts."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from example_helpers import ExampleServer, live_server_module  # noqa: E402


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One server for the examples, with a 1 MiB multipart part size to keep uploads small."""
    server = live_server_module.LiveServer(
        str(tmp_path_factory.mktemp("examples-server-data")), multipart_part_size=1024 * 1024
    ).start()
    yield server
    server.stop()


@pytest.fixture
def creds(live_server: Any) -> Any:
    """A fresh account of the live server."""
    return live_server.new_account()


@pytest.fixture
def example_server() -> Iterator[Any]:
    """Start example servers (``start(name, args, creds, extra_env=None)``); all are stopped at
    the end."""
    started: list[ExampleServer] = []

    def start(
        name: str, args: list[str], creds: Any, extra_env: dict[str, str] | None = None
    ) -> ExampleServer:
        server = ExampleServer(name, args, creds, extra_env)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()
