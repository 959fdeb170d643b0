"""Contacts state across the account's life: the etag comparison used where a CardDAV server has
no ``sync-collection``, a ``caldav`` server without address books, and account deletion."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from werkzeug.test import Client

from .conftest import connect_account, error
from .servers import PASSWORD, USERNAME, DavServer, ServerThread, caldav_app
from .test_contacts_carddav import dav

C = "/v1/accounts/me/crm"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_upstream_changes_without_sync_collection(
    api: Client, app: Any, carddav_auth: dict[str, str], addressbook: DavServer
) -> None:
    me = api.get("/v1/accounts/me", headers=carddav_auth).get_json()
    row = app.store.get_account(me["id"])
    config = json.loads(row["config"])
    config.update(addressbook_sync=False)
    config.pop("sync_token", None)
    app.store.execute("UPDATE accounts SET config = ? WHERE id = ?", (json.dumps(config), me["id"]))
    # The first look takes a baseline: what is there already is not reported.
    assert dav(
        addressbook,
        "PUT",
        "old.vcf",
        data="BEGIN:VCARD\r\nVERSION:3.0\r\nUID:old\r\nFN:Old\r\nEND:VCARD\r\n",
    ).ok
    start = api.get("/v1/accounts/me/events/latest", headers=carddav_auth).get_json()["cursor"]
    assert (
        api.get(f"/v1/accounts/me/events?cursor={start}", headers=carddav_auth).get_json()[
            "objects"
        ]
        == []
    )
    assert dav(
        addressbook,
        "PUT",
        "new.vcf",
        data="BEGIN:VCARD\r\nVERSION:3.0\r\nUID:new\r\nFN:New\r\nEND:VCARD\r\n",
    ).ok
    assert dav(addressbook, "DELETE", "old.vcf").ok
    events = api.get(f"/v1/accounts/me/events?cursor={start}", headers=carddav_auth).get_json()
    seen = sorted((e["type"], e["metadata"].get("name")) for e in events["objects"])
    assert seen == [("add", "New"), ("delete", None)]


def test_caldav_server_without_address_books(
    api: Client, app: Any, creds: Any, tmp_path: Path
) -> None:
    runner = ServerThread(caldav_app(tmp_path))  # a server of its own: no address book at all
    url = f"http://127.0.0.1:{runner.port}/"
    runner.start(url, (USERNAME, PASSWORD))
    try:
        settings = {"url": url, "username": USERNAME, "password": PASSWORD}
        auth = connect_account(api, app, creds, "caldav", settings)
        error(api.get(f"{C}/contacts", headers=auth), 501, "not_implemented")
        assert api.get("/v1/accounts/me/cal/calendars/primary", headers=auth).status_code == 200
        # The activity stream and the full account stay readable.
        assert api.get("/v1/accounts/me/events?cursor=0", headers=auth).status_code == 200
        full = api.get("/v1/accounts/me?retrieve_full=true", headers=auth)
        assert full.status_code == 200
        assert "can_crud_crm_contacts" not in full.get_json()["properties"]["capabilities"]
    finally:
        runner.stop()


def test_deleting_a_local_account_removes_its_contacts(api: Client, app: Any, creds: Any) -> None:
    account_id = app.store.create_account(creds.app_id, "local", "doomed")
    auth = {"Authorization": f"Bearer {app.store.create_token(creds.app_id, account_id)}"}
    contact = api.post(f"{C}/contacts", headers=auth, json={"name": "Gone soon"}).get_json()
    put = api.put(
        f"{C}/contacts/{contact['id']}/photo",
        headers={**auth, "Content-Type": "image/png"},
        data=PNG,
    )
    assert put.status_code == 200
    photos = os.path.join(app.settings.data_dir, "accounts", str(account_id), "contact-photos")
    assert len(os.listdir(photos)) == 1
    key = {"Authorization": f"APIKey {creds.api_key}"}
    assert api.delete(f"/v1/accounts/{account_id}", headers=key).status_code == 204
    for table in ("crm_contacts", "crm_groups"):
        rows = app.store.all(f"SELECT * FROM {table} WHERE account_id = ?", (account_id,))
        assert rows == [], table
    assert not os.path.exists(photos)
    error(api.get(f"{C}/contacts", headers=auth), 401, "invalid_token")


def test_a_replaced_photo_leaves_no_file_behind(api: Client, app: Any, creds: Any) -> None:
    auth = {"Authorization": f"Bearer {creds.token}"}
    contact = api.post(f"{C}/contacts", headers=auth, json={"name": "Pic"}).get_json()
    url = f"{C}/contacts/{contact['id']}/photo"
    for _ in range(3):
        assert (
            api.put(url, headers={**auth, "Content-Type": "image/png"}, data=PNG).status_code == 200
        )
    photos = os.path.join(
        app.settings.data_dir, "accounts", str(creds.account_id), "contact-photos"
    )
    assert len(os.listdir(photos)) == 1
    assert api.delete(url, headers=auth).status_code == 204
    assert os.listdir(photos) == []
    tmp = os.path.join(app.settings.data_dir, "accounts", str(creds.account_id), "tmp")
    assert [n for n in os.listdir(tmp) if n.startswith("ph-")] == []


def test_outbound_policy_refuses_loopback_by_default(
    tmp_path: Path, caldav_server: DavServer
) -> None:
    from kloudless.server import Settings, create_app
    from kloudless.server.bootstrap import bootstrap

    strict = create_app(Settings(data_dir=str(tmp_path / "strict")))  # no allow_upstream
    try:
        creds = bootstrap(strict.store)
        assert creds is not None
        response = Client(strict).post(
            "/v1/accounts",
            headers={"Authorization": f"APIKey {creds.api_key}"},
            json={
                "service": "carddav",
                "url": caldav_server.url,
                "username": caldav_server.username,
                "password": caldav_server.password,
            },
        )
        body = error(response, 400, "invalid_parameters")
        assert "cannot be used" in body["message"]
        assert strict.store.list_accounts(creds.app_id)[-1]["service"] == "local"
    finally:
        strict.close()
