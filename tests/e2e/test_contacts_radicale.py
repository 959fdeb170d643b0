"""End to end: the SDK against a real server (waitress on 127.0.0.1) whose ``carddav`` account
is an address book of a real Radicale on loopback, and a plain CardDAV client beside it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.dav.servers import (
    PASSWORD,
    USERNAME,
    DavServer,
    ServerThread,
    caldav_app,
    make_addressbook,
)

from .conftest import LiveServer


@pytest.fixture(scope="module")
def live(make_settings: Callable[..., Any]) -> Iterator[LiveServer]:
    """A server allowed to reach the loopback Radicale (the outbound policy refuses loopback
    upstreams by default)."""
    from kloudless.server.runner import ServerThread as ApiServer

    server = ApiServer(make_settings(host="127.0.0.1", port=0, allow_upstream=["127.0.0.1"]))
    assert server.credentials is not None
    server.start()
    try:
        yield LiveServer(server.base_url, server.credentials, server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    base = tmp_path_factory.mktemp("e2e-radicale")
    runner = ServerThread(caldav_app(base))
    url = f"http://127.0.0.1:{runner.port}/"
    runner.start(url, (USERNAME, PASSWORD))
    yield DavServer(url=url, username=USERNAME, password=PASSWORD, data_dir=Path(base))
    runner.stop()


def test_contacts_between_the_sdk_and_a_plain_carddav_client(
    live: LiveServer, radicale: DavServer
) -> None:
    from kloudless import Account, Client

    book = make_addressbook(radicale, f"e2e-{uuid.uuid4().hex[:8]}")
    auth = (radicale.username, radicale.password)
    with Client(api_key=live.creds.api_key, base_url=live.base_url) as app:
        created = app.post(
            "accounts",
            json={"service": "carddav", "url": book, "username": USERNAME, "password": PASSWORD},
        )
    account_id = created.data["id"]
    with Account(
        api_key=live.creds.api_key, account_id=account_id, base_url=live.base_url
    ) as account:
        start = account.get("events/latest").data["cursor"]
        # Written through the API, read back by a plain CardDAV client.
        ann = account.post(
            "crm/contacts",
            json={"first_name": "Ann", "last_name": "Smith", "emails": ["ann@example.org"]},
        )
        href = ann.data["raw"]["href"]
        plain = requests.get(href, auth=auth, timeout=10)
        assert plain.status_code == 200 and "FN:Ann Smith" in plain.text
        assert "EMAIL;TYPE=pref:ann@example.org" in plain.text
        assert plain.headers["ETag"].strip('"') == ann.data["etag"]
        # Created directly on Radicale, then seen through the API and its activity stream.
        card = (
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:e2e-direct\r\nFN:Direct Dora\r\n"
            "N:Dora;Direct;;;\r\nX-ORIGIN:radicale\r\nEND:VCARD\r\n"
        )
        put = requests.put(
            book + "e2e-direct.vcf",
            data=card,
            auth=auth,
            headers={"Content-Type": "text/vcard"},
            timeout=10,
        )
        assert put.status_code == 201
        events = account.get("events", params={"cursor": start})
        seen = [(e.data["type"], e.data["metadata"]["name"]) for e in events.get_paging_iterator()]
        assert seen == [("add", "Ann Smith"), ("add", "Direct Dora")]
        dora = account.get("crm/contacts", params={"q": "dora"})[0]
        assert dora.data["raw"]["unknown_properties"] == ["X-ORIGIN"]
        # A change through the API keeps the property only Radicale's card had.
        dora.patch(json={"title": "Editor"})
        assert (
            "X-ORIGIN:radicale" in requests.get(book + "e2e-direct.vcf", auth=auth, timeout=10).text
        )
