"""A live server (waitress on 127.0.0.1, random port) shared by the OpenAPI tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    server = ServerThread(
        Settings(data_dir=str(tmp_path_factory.mktemp("openapi-data")), host="127.0.0.1", port=0)
    )
    assert server.credentials is not None
    server.start()
    try:
        yield server
    finally:
        server.stop()
