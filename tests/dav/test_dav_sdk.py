"""One SDK script with a ``local``, a ``webdav`` and a ``caldav`` account side by side, against a
real server (waitress on 127.0.0.1) whose upstreams are the WsgiDAV and Radicale fixtures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .servers import ALLOW_LOOPBACK, DavServer


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from kloudless.server.runner import ServerThread
    from kloudless.server.settings import Settings

    data_dir = tmp_path_factory.mktemp("dav-sdk-data")
    server = ServerThread(
        Settings(data_dir=str(data_dir), host="127.0.0.1", port=0, allow_upstream=ALLOW_LOOPBACK)
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _connect(live: Any, service: str, settings: dict[str, str]) -> str:
    from kloudless import Client

    with Client(api_key=live.credentials.api_key, base_url=live.base_url) as client:
        account = client.post(
            "accounts", json={"service": service, "account": settings["username"], **settings}
        ).data
    return str(live.app.store.create_token(live.credentials.app_id, account["id"]))


def test_three_services_side_by_side(
    live: Any, webdav_folder: DavServer, caldav_server: DavServer
) -> None:
    from kloudless import Account, exceptions

    creds = {"username": webdav_folder.username, "password": webdav_folder.password}
    dav_token = _connect(live, "webdav", {"url": webdav_folder.url, **creds})
    cal_token = _connect(live, "caldav", {"url": caldav_server.url, **creds})
    local = Account(token=live.credentials.token, base_url=live.base_url)
    dav = Account(token=dav_token, base_url=live.base_url)
    cal = Account(token=cal_token, base_url=live.base_url)
    try:
        for account, name in ((local, "local.txt"), (dav, "dav.txt")):
            headers = {"X-Kloudless-Metadata": json.dumps({"parent_id": "root", "name": name})}
            created = account.post("storage/files", data=name.encode(), headers=headers)
            assert created.data["name"] == name
            listing = account.get("storage/folders/root/contents")
            assert name in [r.data["name"] for r in listing.get_paging_iterator()]
            assert created.get("contents").content == name.encode()
        assert (webdav_folder.data_dir / "dav.txt").read_bytes() == b"dav.txt"
        assert "storage" in dav.get("").data["apis"] and "calendar" in cal.get("").data["apis"]

        event = cal.post(
            "cal/calendars/primary/events",
            json={"name": "SDK", "start": "2024-09-01T10:00:00Z", "end": "2024-09-01T11:00:00Z"},
        )
        events = cal.get("cal/calendars/primary/events", params={"start": "2024-09-01T00:00:00Z"})
        assert event.data["id"] in [e.data["id"] for e in events.get_paging_iterator()]

        raw = dav.raw("PROPFIND", "/", headers={"Depth": "1"})  # as in docs/server.rst
        assert raw.status_code == 207 and b"dav.txt" in raw.content
        assert raw.headers["Content-Type"].startswith(("application/xml", "text/xml"))
        zero = dav.raw(
            "PROPFIND", "/", headers={"X-Kloudless-Raw-Headers": json.dumps({"Depth": "0"})}
        )
        assert zero.status_code == 207 and b"dav.txt" not in zero.content
        with pytest.raises(exceptions.KloudlessException) as info:
            local.raw("GET", "/anything")
        assert info.value.status == 501
        with pytest.raises(exceptions.KloudlessException):
            cal.get("storage/folders/root")  # a caldav account has no storage API
    finally:
        for account in (local, dav, cal):
            account.close()
