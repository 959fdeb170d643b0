"""Fixtures of the blob store tests: the server fixtures of ``tests/server`` (see its
conftest: the matrix, ``make_settings``) on the configurations with blobs in S3, SQLite + S3 and
PostgreSQL + S3 (the deployment of several machines), each test with a fresh bucket of the
session's moto endpoint. ``test_shared_suites.py`` runs server tests that store, read, copy and
delete contents once more here, so that SQLite + S3 is covered too."""

from __future__ import annotations

import urllib.parse

import pytest

from kloudless.server import Settings
from tests.server.conftest import (  # noqa: F401 - the server tests' fixtures
    SQLITE_S3,
    api_key_auth,
    app,
    auth,
    client,
    config_params,
    creds,
    make_settings,
    server_config,
    settings,
)

S3_CONFIGS = (SQLITE_S3.name, "postgres-s3")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server_config" in metafunc.fixturenames:
        metafunc.parametrize("server_config", config_params(metafunc, S3_CONFIGS), indirect=True)


@pytest.fixture
def blob_url(settings: Settings) -> str:  # noqa: F811 - the imported fixture
    """The blob store of the test's server: ``s3://BUCKET/kl``."""
    return settings.blob_store


@pytest.fixture
def bucket(blob_url: str) -> str:
    return urllib.parse.urlsplit(blob_url).netloc
