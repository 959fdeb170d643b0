"""Fixtures for server tests: a fresh app per test on a temp data dir, a werkzeug test client,
and the first-start credentials."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials, bootstrap

#: Modules whose tests also run on PostgreSQL in ``make test``: every module with SQL of its
#: own (storage, units of work, idempotency, events and the consistency checks, listing order,
#: calendars, accounts and multipart sessions, OAuth, teams, the management API, links and
#: tasks), which costs about 40 s of ``make test``'s wall time. The modules left out test HTTP
#: framing, parsing and the browser pages over the same queries; the whole suite runs on
#: PostgreSQL with ``make test-postgres`` (``KLOUDLESS_TEST_DATABASE=postgresql``, which the
#: e2e tests' live server follows too).
POSTGRES_MODULES = {
    "test_storage",
    "test_unit_of_work",
    "test_idempotency",
    "test_consistency",
    "test_listing_order",
    "test_calendar",
    "test_kloudless_answers",
    "test_oauth",
    "test_team",
    "test_management",
    "test_api_misc",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "settings" not in metafunc.fixturenames or "database" in metafunc.fixturenames:
        return
    if os.environ.get("KLOUDLESS_TEST_DATABASE") == "postgresql":
        databases = ["postgresql"]
    elif metafunc.module.__name__.rsplit(".", 1)[-1] in POSTGRES_MODULES:
        databases = ["sqlite", "postgresql"]
    else:
        return
    metafunc.fixturenames.append("database")
    metafunc.parametrize("database", databases, indirect=True)


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str | None:
    """The database URL of the test's server: None (SQLite in the data dir), or a fresh
    database of the session's PostgreSQL server."""
    if getattr(request, "param", "sqlite") != "postgresql":
        return None
    url: str = request.getfixturevalue("postgres").new_database()
    return url


@pytest.fixture
def settings(tmp_path: Any, request: pytest.FixtureRequest) -> Settings:
    url = request.getfixturevalue("database") if "database" in request.fixturenames else None
    return Settings(data_dir=str(tmp_path / "data"), multipart_part_size=4, database_url=url)


@pytest.fixture
def app(settings: Settings) -> Iterator[ServerApp]:
    application = create_app(settings)
    yield application
    application.close()


@pytest.fixture
def creds(app: ServerApp) -> Credentials:
    result = bootstrap(app.store)
    assert result is not None
    return result


class BufferedClient(Client):
    """A test client that reads and closes every response body (no leaked file handles)."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app: ServerApp) -> Client:
    return BufferedClient(app)


@pytest.fixture
def auth(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.token}"}


@pytest.fixture
def api_key_auth(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"APIKey {creds.api_key}"}


def assert_error(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """Check a JSON error response and return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status_code"] == status
    assert body["error_code"] == code
    assert body["message"]
    assert body["id"] == response.headers["X-Request-Id"]
    return dict(body)


def upload(
    client: Client,
    auth: dict[str, str],
    name: str,
    data: bytes,
    parent: str = "root",
    account: str = "me",
    **query: str,
) -> TestResponse:
    """Upload a file with X-Kloudless-Metadata."""
    headers = dict(auth)
    headers["X-Kloudless-Metadata"] = json.dumps({"name": name, "parent_id": parent})
    return client.post(
        f"/v1/accounts/{account}/storage/files", headers=headers, data=data, query_string=query
    )


def mkdir(
    client: Client, auth: dict[str, str], name: str, parent: str = "root", **query: str
) -> TestResponse:
    """Create a folder."""
    return client.post(
        "/v1/accounts/me/storage/folders",
        headers=auth,
        json={"name": name, "parent_id": parent},
        query_string=query,
    )
