"""Real WebDAV (WsgiDAV) and CalDAV (Radicale) servers for the DAV connector tests.

Both servers are WSGI applications; each runs in a daemon thread behind werkzeug's threaded
development server, bound to 127.0.0.1 on a free port, with its data in a temporary folder.
They start once per test session and are shut down at its end. Tests isolate themselves by
working under a fresh folder (WebDAV) or a fresh calendar (CalDAV).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from .servers import (
    ALLOW_LOOPBACK,
    PASSWORD,
    USERNAME,
    DavServer,
    ServerThread,
    caldav_app,
    closed_port,
    make_addressbook,
    webdav_app,
)


@pytest.fixture(scope="session")
def webdav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    """A WsgiDAV server sharing a temporary folder at ``/dav/`` with basic auth."""
    root = tmp_path_factory.mktemp("webdav-root")
    app = webdav_app(root)
    runner = ServerThread(app)
    url = f"http://127.0.0.1:{runner.port}/dav/"
    runner.start(url, (USERNAME, PASSWORD))
    yield DavServer(url=url, username=USERNAME, password=PASSWORD, data_dir=root)
    runner.stop()


@pytest.fixture(scope="session")
def caldav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    """A Radicale server storing calendars in a temporary folder, htpasswd (plain) auth."""
    base = tmp_path_factory.mktemp("radicale")
    app = caldav_app(base)
    runner = ServerThread(app)
    url = f"http://127.0.0.1:{runner.port}/"
    runner.start(url, (USERNAME, PASSWORD))
    yield DavServer(url=url, username=USERNAME, password=PASSWORD, data_dir=base)
    runner.stop()


@pytest.fixture
def webdav_folder(webdav_server: DavServer) -> DavServer:
    """A fresh empty folder on the WebDAV server, returned as a server rooted there."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    (webdav_server.data_dir / name).mkdir()
    return DavServer(
        url=f"{webdav_server.url}{name}/",
        username=webdav_server.username,
        password=webdav_server.password,
        data_dir=webdav_server.data_dir / name,
    )


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL on which nothing listens (an upstream that is down)."""
    return f"http://127.0.0.1:{closed_port()}/dav/"


# -- the API server with DAV accounts --------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    """A fresh API server (werkzeug app) on a temporary data dir."""
    from kloudless.server import Settings, create_app

    application = create_app(
        Settings(
            data_dir=str(tmp_path / "data"), multipart_part_size=4, allow_upstream=ALLOW_LOOPBACK
        )
    )
    yield application
    application.close()


@pytest.fixture
def creds(app: Any) -> Any:
    """The first-start credentials (application, API key, local account, token)."""
    from kloudless.server.bootstrap import bootstrap

    result = bootstrap(app.store)
    assert result is not None
    return result


@pytest.fixture
def api(app: Any) -> Client:
    """A werkzeug test client for the API server."""
    return Client(app)


def error(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """Check a JSON error response and return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["status_code"], body["error_code"]) == (status, code)
    assert body["id"] == response.headers["X-Request-Id"]
    return dict(body)


def connect_account(
    api: Client, app: Any, creds: Any, service: str, settings: dict[str, str]
) -> dict[str, str]:
    """Create a DAV account through ``POST /v1/accounts`` and return Bearer headers for it."""
    response = api.post(
        "/v1/accounts",
        headers={"Authorization": f"APIKey {creds.api_key}"},
        json={"service": service, "account": settings["username"], **settings},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    account_id = response.get_json()["id"]
    token = app.store.create_token(creds.app_id, account_id)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def webdav_auth(api: Client, app: Any, creds: Any, webdav_folder: DavServer) -> dict[str, str]:
    """Bearer headers of a ``webdav`` account rooted at a fresh folder."""
    settings = {
        "url": webdav_folder.url,
        "username": webdav_folder.username,
        "password": webdav_folder.password,
    }
    return connect_account(api, app, creds, "webdav", settings)


@pytest.fixture(params=["local", "webdav"])
def storage_auth(
    request: pytest.FixtureRequest, creds: Any, webdav_folder: DavServer
) -> dict[str, str]:
    """Bearer headers of a ``local`` and of a ``webdav`` account (parametrized)."""
    if request.param == "local":
        return {"Authorization": f"Bearer {creds.token}"}
    return dict(request.getfixturevalue("webdav_auth"))


@pytest.fixture
def caldav_auth(api: Client, app: Any, creds: Any, caldav_server: DavServer) -> dict[str, str]:
    """Bearer headers of a ``caldav`` account whose primary calendar is a fresh one."""
    import caldav

    name = f"primary-{uuid.uuid4().hex[:10]}"
    with caldav.DAVClient(
        caldav_server.url, username=caldav_server.username, password=caldav_server.password
    ) as client:
        client.principal().make_calendar(name="Primary", cal_id=name)
    settings = {
        "url": caldav_server.url,
        "username": caldav_server.username,
        "password": caldav_server.password,
        "primary_calendar": name,
    }
    return connect_account(api, app, creds, "caldav", settings)


@pytest.fixture(params=["local", "caldav"])
def calendar_auth(request: pytest.FixtureRequest, creds: Any) -> dict[str, str]:
    """Bearer headers of a ``local`` and of a ``caldav`` account (parametrized)."""
    if request.param == "local":
        return {"Authorization": f"Bearer {creds.token}"}
    return dict(request.getfixturevalue("caldav_auth"))


@pytest.fixture
def addressbook(caldav_server: DavServer) -> DavServer:
    """A fresh, empty address book on the Radicale server (``url`` is the address book's)."""
    name = f"book-{uuid.uuid4().hex[:10]}"
    url = make_addressbook(caldav_server, name)
    return DavServer(
        url=url,
        username=caldav_server.username,
        password=caldav_server.password,
        data_dir=caldav_server.data_dir,
    )


@pytest.fixture
def carddav_auth(
    api: Client, app: Any, creds: Any, caldav_server: DavServer, addressbook: DavServer
) -> dict[str, str]:
    """Bearer headers of a ``carddav`` account, connected at the server root and pinned to a
    fresh address book."""
    settings = {
        "url": caldav_server.url,
        "username": caldav_server.username,
        "password": caldav_server.password,
        "addressbook": addressbook.url.rstrip("/").rsplit("/", 1)[-1],
    }
    return connect_account(api, app, creds, "carddav", settings)


@pytest.fixture(params=["local", "carddav"])
def contacts_auth(request: pytest.FixtureRequest, creds: Any) -> dict[str, str]:
    """Bearer headers of a ``local`` and of a ``carddav`` account (parametrized)."""
    if request.param == "local":
        return {"Authorization": f"Bearer {creds.token}"}
    return dict(request.getfixturevalue("carddav_auth"))


@pytest.fixture(scope="session", autouse=True)
def _close_pooled_clients() -> Iterator[None]:
    """Close the connectors' pooled upstream connections at the end of the session."""
    yield
    from kloudless.server.connectors import caldav, webdav_client

    webdav_client.close_clients()
    caldav.close_backends()
