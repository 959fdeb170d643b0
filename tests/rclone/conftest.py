"""Fixtures of the rclone connector tests: real upstreams on loopback (see ``servers.py``),
this process's rcd on a temporary data dir, and storage backends of each upstream kind."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from kloudless.server.connectors import rclone_remotes
from kloudless.server.connectors.rclone_ids import IdMap
from kloudless.server.connectors.rclone_process import close_daemons, daemon_for
from kloudless.server.connectors.rclone_rc import RcClient
from kloudless.server.connectors.rclone_storage import RcloneStorage
from kloudless.server.settings import Settings
from kloudless.server.store import Store
from tests.server.conftest import app, client, creds  # noqa: F401 - the API tests' fixtures

from .servers import KINDS, Upstream, Upstreams


@pytest.fixture(scope="session")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    """The served protocols, started once per session on first use."""
    servers = Upstreams(tmp_path_factory.mktemp("upstreams"))
    yield servers
    servers.stop()


@pytest.fixture(params=KINDS)
def upstream(request: pytest.FixtureRequest, upstreams: Upstreams) -> Upstream:
    """A fresh empty folder on each kind of upstream in turn."""
    return upstreams.make(str(request.param))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The API tests' server (``app``, ``client``, ``creds`` of tests/server/conftest.py): local
    paths allowed under the tests' folders, loopback upstreams allowed."""
    return Settings(
        data_dir=str(tmp_path / "data"),
        rclone_local_roots=[str(tmp_path.parent)],
        allow_upstream=["127.0.0.1"],
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A server data dir; its rcd is stopped at the end of the test."""
    path = tmp_path / "data"
    path.mkdir()
    yield path
    close_daemons(str(path))


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data dir whose rcd serves every backend test (starting an rcd per test is slow)."""
    path = tmp_path_factory.mktemp("rclone-shared")
    yield path
    close_daemons(str(path))


@pytest.fixture(scope="session")
def rc(shared_dir: Path) -> Iterator[RcClient]:
    rc_client = RcClient(daemon_for(str(shared_dir)))
    yield rc_client
    rc_client.close()


@pytest.fixture(scope="session")
def store(shared_dir: Path) -> Iterator[Store]:
    db = Store(str(shared_dir / "kloudless.sqlite3"))
    yield db
    db.close()


_ACCOUNTS = itertools.count(1)


def make_backend(rc: RcClient, store: Store, upstream: Upstream) -> RcloneStorage:
    """:returns: a storage backend of ``upstream`` (a new account) defined in the rcd (checked
    first)."""
    account_id = next(_ACCOUNTS)
    spec = rclone_remotes.spec_from_options(upstream.rclone_type, upstream.options, upstream.path)
    checked = rclone_remotes.check(rc, spec, obscure=True)
    name = rclone_remotes.define(rc, checked, f"k{account_id}_test", obscure=False)
    info = rc.call("operations/fsinfo", {"fs": f"{name}:"})
    return RcloneStorage(rc, name, IdMap(store, account_id), info)


@pytest.fixture
def backend(rc: RcClient, store: Store, upstream: Upstream) -> RcloneStorage:
    """A storage backend over a fresh folder of each upstream kind."""
    return make_backend(rc, store, upstream)
