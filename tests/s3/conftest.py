"""Fixtures of the blob store tests: one moto S3 server for the session, a fresh bucket per
test, and the server fixtures of ``tests/server`` with the app's blobs in that bucket. The
shared suites (``test_shared_suites.py``) run on both databases: SQLite + S3 and
PostgreSQL + S3 (the deployment of several machines)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kloudless.server import Settings
from kloudless.server.blobs import S3BlobStore
from tests.server.conftest import api_key_auth, app, auth, client, creds, database  # noqa: F401

from .servers import S3Endpoint, aws_environment, moto_s3


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    shared = metafunc.module.__name__.rsplit(".", 1)[-1] == "test_shared_suites"
    if shared and "settings" in metafunc.fixturenames and "database" not in metafunc.fixturenames:
        metafunc.fixturenames.append("database")
        metafunc.parametrize("database", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint, aws_environment(endpoint):
        yield endpoint


@pytest.fixture
def bucket(s3: S3Endpoint) -> str:
    return s3.new_bucket()


@pytest.fixture
def blob_url(bucket: str) -> str:
    return f"s3://{bucket}/kl"


@pytest.fixture
def settings(
    tmp_path: Any, blob_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Settings:
    # The shared suites use 4-byte multipart parts (moto is started to accept them).
    monkeypatch.setattr(S3BlobStore, "min_part_size", 1)
    url = request.getfixturevalue("database") if "database" in request.fixturenames else None
    return Settings(
        data_dir=str(tmp_path / "data"),
        multipart_part_size=4,
        blob_store=blob_url,
        database_url=url,
    )
