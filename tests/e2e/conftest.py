"""A real server (waitress in a background thread) on 127.0.0.1, a random port and a temporary
data dir, with the SDK's ``configuration['base_url']`` pointed at it. Every test module runs on
each configuration of the matrix (``sqlite-files`` and ``postgres-s3``; see
``tests/server/conftest.py``, ``KLOUDLESS_TEST_CONFIG`` picks), one server per module and
configuration."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kloudless.server.blobs import S3BlobStore
from kloudless.server.bootstrap import Credentials
from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings
from tests.server.conftest import CONFIGS, ServerConfig, SettingsMaker, config_params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server_config" in metafunc.fixturenames:
        params = config_params(metafunc)
        metafunc.parametrize("server_config", params, indirect=True, scope="module")


@pytest.fixture(scope="module")
def server_config(request: pytest.FixtureRequest) -> ServerConfig:
    return CONFIGS[request.param]


@pytest.fixture(scope="module")
def make_settings(
    server_config: ServerConfig,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Settings]]:
    """Settings in the module's configuration (``tests/server/conftest.SettingsMaker``; data
    dirs default to one temporary folder of the module)."""
    maker = SettingsMaker(server_config, tmp_path_factory.mktemp("e2e"), request)
    with pytest.MonkeyPatch.context() as patch:
        if server_config.blobs == "s3":  # the 64 KiB parts below (moto accepts them)
            patch.setattr(S3BlobStore, "min_part_size", 1)
        yield maker
    maker.drop_databases()


@dataclass
class LiveServer:
    base_url: str
    creds: Credentials
    thread: ServerThread


@pytest.fixture(scope="module")
def live_server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    import kloudless

    server = ServerThread(make_settings(host="127.0.0.1", port=0, multipart_part_size=64 * 1024))
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
