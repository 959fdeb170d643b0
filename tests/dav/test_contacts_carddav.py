"""The ``carddav`` connector against a real Radicale: what a plain CardDAV client sees of contacts
written through the API, upstream changes in the API and its activity stream, connecting,
Radicale's vCard quirks, ``caldav`` accounts' address books and pass-through."""

from __future__ import annotations

import json
from typing import Any

import requests
from werkzeug.test import Client

from .conftest import connect_account, error
from .servers import DavServer, make_addressbook

C = "/v1/accounts/me/crm"


def dav(book: DavServer, method: str, name: str = "", **kwargs: Any) -> requests.Response:
    """A plain CardDAV request (requests + basic auth) to the address book."""
    return requests.request(
        method, book.url + name, auth=(book.username, book.password), timeout=10, **kwargs
    )


def events_since(api: Client, auth: dict[str, str], cursor: int) -> list[tuple[str, str, Any]]:
    body = api.get(f"/v1/accounts/me/events?cursor={cursor}", headers=auth).get_json()
    return [(e["type"], e["metadata"]["id"], e["metadata"].get("name")) for e in body["objects"]]


def test_written_through_the_api_read_by_a_plain_client(
    api: Client, carddav_auth: dict[str, str], addressbook: DavServer
) -> None:
    contact = api.post(
        f"{C}/contacts",
        headers=carddav_auth,
        json={
            "first_name": "Plain",
            "last_name": "Reader, Jr.",
            "emails": [{"address": "plain@example.org", "type": "work", "primary": True}],
            "notes": "commas, semicolons; and\nnew lines",
        },
    ).get_json()
    href = contact["raw"]["href"]
    assert href.startswith(addressbook.url) and href.endswith(".vcf")
    response = dav(addressbook, "GET", href[len(addressbook.url) :])
    assert response.status_code == 200
    assert response.headers["ETag"].strip('"') == contact["etag"]
    text = response.text
    assert "N:Reader\\, Jr.;Plain;;;" in text and "FN:Plain Reader\\, Jr." in text
    assert "EMAIL;TYPE=work,pref:plain@example.org" in text
    assert "NOTE:commas\\, semicolons\\; and\\nnew lines" in text
    import vobject

    card = vobject.readOne(text)
    assert card.note.value == "commas, semicolons; and\nnew lines"


def test_upstream_changes_reach_the_api_and_the_activity_stream(
    api: Client, carddav_auth: dict[str, str], addressbook: DavServer
) -> None:
    mine = api.post(f"{C}/contacts", headers=carddav_auth, json={"name": "Mine"}).get_json()
    start = int(api.get("/v1/accounts/me/events/latest", headers=carddav_auth).get_json()["cursor"])
    card = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:from-radicale\r\nFN:From Radicale\r\n"
        "N:Radicale;From;;;\r\nEMAIL:direct@example.org\r\nX-THING:kept\r\nEND:VCARD\r\n"
    )
    put = dav(
        addressbook, "PUT", "from-radicale.vcf", data=card, headers={"Content-Type": "text/vcard"}
    )
    assert put.status_code == 201
    listing = api.get(f"{C}/contacts?q=direct@", headers=carddav_auth).get_json()
    (seen,) = listing["objects"]
    assert seen["name"] == "From Radicale" and seen["raw"]["unknown_properties"] == ["X-THING"]
    assert events_since(api, carddav_auth, start) == [("add", seen["id"], "From Radicale")]
    changed = card.replace("FN:From Radicale", "FN:Changed Upstream")
    etag = dav(addressbook, "GET", "from-radicale.vcf").headers["ETag"]
    assert dav(addressbook, "PUT", "from-radicale.vcf", data=changed, headers={"If-Match": etag}).ok
    assert dav(addressbook, "DELETE", mine["raw"]["href"][len(addressbook.url) :]).ok
    later = events_since(api, carddav_auth, start)[1:]
    assert sorted(later) == sorted(
        [("update", seen["id"], "Changed Upstream"), ("delete", mine["id"], None)]
    )
    assert events_since(api, carddav_auth, start)[1:] == later  # reported once
    # The API's own changes are not reported a second time by the sync.
    patched = api.patch(f"{C}/contacts/{seen['id']}", headers=carddav_auth, json={"title": "T"})
    assert patched.status_code == 200
    kinds = [e[0] for e in events_since(api, carddav_auth, start)]
    assert kinds.count("update") == 2


def test_a_card_changed_upstream_is_not_overwritten(
    api: Client, carddav_auth: dict[str, str], addressbook: DavServer
) -> None:
    contact = api.post(f"{C}/contacts", headers=carddav_auth, json={"name": "Race"}).get_json()
    name = contact["raw"]["href"][len(addressbook.url) :]
    text = dav(addressbook, "GET", name).text.replace("FN:Race", "FN:Race (edited elsewhere)")
    assert dav(addressbook, "PUT", name, data=text).ok
    error(
        api.patch(
            f"{C}/contacts/{contact['id']}",
            headers={**carddav_auth, "If-Match": f'"{contact["etag"]}"'},
            json={"title": "lost update?"},
        ),
        412,
        "precondition_failed",
    )
    assert "lost update?" not in dav(addressbook, "GET", name).text


def test_radicale_keeps_what_we_write_for_vcard4_photos(
    api: Client, carddav_auth: dict[str, str], addressbook: DavServer
) -> None:
    """Radicale (vobject) cuts a vCard 4 ``PHOTO:data:`` URI at its comma; the connector writes
    the embedded form Radicale keeps, and the photo survives the round trip."""
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x01,;\\" * 50
    contact = api.post(f"{C}/contacts", headers=carddav_auth, json={"name": "Photo"}).get_json()
    url = f"{C}/contacts/{contact['id']}/photo"
    put = api.put(url, headers={**carddav_auth, "Content-Type": "image/png"}, data=png)
    assert put.status_code == 200
    stored = dav(addressbook, "GET", contact["raw"]["href"][len(addressbook.url) :]).text
    assert "PHOTO;ENCODING=b;TYPE=PNG:" in stored
    assert api.get(url, headers=carddav_auth).data == png
    # What Radicale does to a data URI written by another client: shown as a (broken) link.
    mangled = (
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:v4\r\nFN:Four\r\n"
        "PHOTO:data:image/png;base64,iVBORw0KGgo=\r\nEND:VCARD\r\n"
    )
    assert dav(addressbook, "PUT", "v4.vcf", data=mangled).status_code == 201
    assert "PHOTO:data:image/png\\;base64\r\n" in dav(addressbook, "GET", "v4.vcf").text
    four = api.get(f"{C}/contacts?q=four", headers=carddav_auth).get_json()["objects"][0]
    assert four["photo"] is None
    error(api.get(f"{C}/contacts/{four['id']}/photo", headers=carddav_auth), 404, "not_found")


def test_groups_are_categories(
    api: Client, carddav_auth: dict[str, str], addressbook: DavServer
) -> None:
    group = api.post(
        f"{C}/contact_groups", headers=carddav_auth, json={"name": "Family"}
    ).get_json()
    contact = api.post(
        f"{C}/contacts", headers=carddav_auth, json={"name": "Kin", "groups": [group["id"]]}
    ).get_json()
    name = contact["raw"]["href"][len(addressbook.url) :]
    assert "CATEGORIES:Family" in dav(addressbook, "GET", name).text
    api.patch(f"{C}/contact_groups/{group['id']}", headers=carddav_auth, json={"name": "Kinfolk"})
    assert "CATEGORIES:Kinfolk" in dav(addressbook, "GET", name).text
    upstream = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:cat\r\nFN:Cat\r\n"
        "CATEGORIES:Kinfolk,Pets\r\nEND:VCARD\r\n"
    )
    assert dav(addressbook, "PUT", "cat.vcf", data=upstream).status_code == 201
    groups = api.get(f"{C}/contact_groups", headers=carddav_auth).get_json()["objects"]
    assert [(g["name"], g["count"]) for g in groups] == [("Kinfolk", 2), ("Pets", 1)]
    assert groups[0]["id"] == group["id"]
    api.delete(f"{C}/contact_groups/{group['id']}", headers=carddav_auth)
    assert "CATEGORIES" not in dav(addressbook, "GET", name).text
    assert "CATEGORIES:Pets" in dav(addressbook, "GET", "cat.vcf").text


def test_connecting(api: Client, app: Any, creds: Any, caldav_server: DavServer) -> None:
    key = {"Authorization": f"APIKey {creds.api_key}"}
    base = {"service": "carddav", "url": caldav_server.url, "username": caldav_server.username}
    wrong = api.post("/v1/accounts", headers=key, json={**base, "password": "wrong"})
    body = error(wrong, 401, "service_unauthorized")
    assert "wrong" not in json.dumps(body)
    error(
        api.post(
            "/v1/accounts",
            headers=key,
            json={**base, "password": caldav_server.password, "addressbook": "no-such-book"},
        ),
        400,
        "invalid_parameters",
    )
    book = make_addressbook(caldav_server, "connect-by-url")
    auth = connect_account(
        api, app, creds, "carddav", {**base, "url": book, "password": caldav_server.password}
    )
    row = app.store.get_account(api.get("/v1/accounts/me", headers=auth).get_json()["id"])
    config = json.loads(row["config"])
    assert config["addressbook_url"] == book and "password" not in config
    assert caldav_server.password not in row["config"]


def test_caldav_accounts_have_contacts_too(
    api: Client, caldav_auth: dict[str, str], caldav_server: DavServer
) -> None:
    make_addressbook(caldav_server, "aaa-first-book")
    account = api.get("/v1/accounts/me", headers=caldav_auth).get_json()
    assert {"calendar", "crm"} <= set(account["apis"])
    made = api.post(f"{C}/contacts", headers=caldav_auth, json={"name": "Via CalDAV"})
    assert made.status_code == 201, made.get_data(as_text=True)
    assert "/aaa-first-book/" in made.get_json()["raw"]["href"]


def test_passthrough(api: Client, carddav_auth: dict[str, str], addressbook: DavServer) -> None:
    path = addressbook.url.split("/", 3)[3]
    response = api.post(
        "/v1/accounts/me/raw",
        headers={
            **carddav_auth,
            "X-Kloudless-Raw-Method": "PROPFIND",
            "X-Kloudless-Raw-URI": "/" + path,
            "Depth": "0",
        },
    )
    assert response.status_code == 207
    assert b"addressbook" in response.data
