"""The contacts API (``crm/contacts``, ``crm/contact_groups``, photos, batch, import/export) on a
``local`` and on a ``carddav`` account (a fresh Radicale address book), through the test client.
"""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import Client

from .conftest import error

C = "/v1/accounts/me/crm"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(200)
CRM_FIELDS = (
    "first_name",
    "last_name",
    "name",
    "title",
    "department",
    "phone",
    "fax",
    "mailing_address",
    "description",
    "created",
    "modified",
    "raw",
)


def new_contact(api: Client, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = api.post(f"{C}/contacts", headers=auth, json=fields or {"name": "Someone"})
    assert response.status_code == 201, response.get_data(as_text=True)
    return dict(response.get_json())


def new_group(api: Client, auth: dict[str, str], name: str) -> dict[str, Any]:
    response = api.post(f"{C}/contact_groups", headers=auth, json={"name": name})
    assert response.status_code == 201, response.get_data(as_text=True)
    return dict(response.get_json())


def events(api: Client, auth: dict[str, str], cursor: int) -> list[dict[str, Any]]:
    body = api.get(f"/v1/accounts/me/events?cursor={cursor}", headers=auth).get_json()
    return list(body["objects"])


def latest(api: Client, auth: dict[str, str]) -> int:
    return int(api.get("/v1/accounts/me/events/latest", headers=auth).get_json()["cursor"])


# -- contacts ------------------------------------------------------------------------------------


def test_contact_round_trip(api: Client, contacts_auth: dict[str, str]) -> None:
    body = {
        "first_name": "Ann",
        "last_name": "Smith",
        "title": "Engineer",
        "department": "R&D",
        "organization": "Acme, Inc.",
        "emails": [
            {"address": "ann@home.example", "type": "home"},
            {"address": "ann@acme.example", "type": "work", "primary": True},
        ],
        "phones": [
            {"number": "+1 555 0100", "type": "mobile", "primary": True},
            {"number": "+1 555 0199", "type": "fax"},
        ],
        "addresses": [
            {"street": "1 Main St, Apt 2", "city": "Springfield", "postal_code": "12345"},
        ],
        "urls": ["https://ann.example/a,b"],
        "birthday": "1990-02-03",
        "notes": "Met at the fair; likes commas, semicolons\nand lines.",
        "nickname": "Annie",
    }
    created = api.post(f"{C}/contacts", headers=contacts_auth, json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    contact = created.get_json()
    assert created.headers["ETag"] == f'"{contact["etag"]}"' and contact["etag"]
    assert (contact["api"], contact["type"]) == ("crm", "contact")
    for key in CRM_FIELDS:
        assert key in contact, key
    assert contact["name"] == "Ann Smith"
    assert contact["phone"] == "+1 555 0100" and contact["fax"] == "+1 555 0199"
    assert contact["description"] == contact["notes"] == body["notes"]
    assert contact["mailing_address"] == {
        "street": "1 Main St, Apt 2",
        "city": "Springfield",
        "region": None,
        "postal_code": "12345",
        "country": None,
    }
    assert [e["address"] for e in contact["emails"] if e["primary"]] == ["ann@acme.example"]
    assert contact["phones"][0] == {"number": "+1 555 0100", "type": "mobile", "primary": True}
    for key in ("title", "department", "organization", "urls", "birthday", "nickname"):
        assert contact[key] == body[key], key
    assert "BEGIN:VCARD" in contact["raw"]["vcard"]
    got = api.get(f"{C}/contacts/{contact['id']}", headers=contacts_auth)
    assert got.status_code == 200 and got.headers["ETag"] == created.headers["ETag"]
    for key in body:
        assert got.get_json()[key] == contact[key], key
    patched = api.patch(
        f"{C}/contacts/{contact['id']}",
        headers={**contacts_auth, "If-Match": created.headers["ETag"]},
        json={"title": "Manager", "phone": "ignored: phones wins", "phones": []},
    )
    assert patched.status_code == 200, patched.get_data(as_text=True)
    after = patched.get_json()
    assert after["title"] == "Manager" and after["phones"] == [] and after["phone"] is None
    assert after["emails"] == contact["emails"] and after["etag"] != contact["etag"]
    assert api.delete(f"{C}/contacts/{contact['id']}", headers=contacts_auth).status_code == 204
    error(api.get(f"{C}/contacts/{contact['id']}", headers=contacts_auth), 404, "not_found")


def test_crm_shorthands_on_input(api: Client, contacts_auth: dict[str, str]) -> None:
    contact = new_contact(
        api,
        contacts_auth,
        last_name="Doe",
        phone="111",
        fax="222",
        description="notes via the CRM name",
        mailing_address={"street": "2 Side St", "city": "Shelbyville"},
    )
    assert (contact["phone"], contact["fax"]) == ("111", "222")
    assert contact["notes"] == "notes via the CRM name"
    assert contact["mailing_address"]["street"] == "2 Side St"
    assert contact["name"] == "Doe"


def test_if_match_conflicts(api: Client, contacts_auth: dict[str, str]) -> None:
    contact = new_contact(api, contacts_auth, name="Versioned")
    url = f"{C}/contacts/{contact['id']}"
    first = api.patch(url, headers=contacts_auth, json={"nickname": "one"}).get_json()
    stale = {**contacts_auth, "If-Match": f'"{contact["etag"]}"'}
    body = error(
        api.patch(url, headers=stale, json={"nickname": "two"}), 412, "precondition_failed"
    )
    assert "changed" in body["message"]
    error(api.delete(url, headers=stale), 412, "precondition_failed")
    error(
        api.put(f"{url}/photo", headers={**stale, "Content-Type": "image/png"}, data=PNG),
        412,
        "precondition_failed",
    )
    assert api.get(url, headers=contacts_auth).get_json()["nickname"] == "one"
    fresh = {**contacts_auth, "If-Match": f'W/"{first["etag"]}", "other"'}
    assert api.patch(url, headers=fresh, json={"nickname": "three"}).status_code == 200
    assert api.delete(url, headers={**contacts_auth, "If-Match": "*"}).status_code == 204


def test_listing_query_order_and_paging(api: Client, contacts_auth: dict[str, str]) -> None:
    made = [
        new_contact(
            api, contacts_auth, first_name="Zoe", last_name="Adams", emails=["z@a.example"]
        ),
        new_contact(api, contacts_auth, first_name="Yan", last_name="Baker", organization="Qux"),
        new_contact(api, contacts_auth, first_name="Xia", last_name="Clark", phones=["+44 99"]),
    ]
    names = [c["name"] for c in made]
    listing = api.get(f"{C}/contacts?raw_type=Contact", headers=contacts_auth).get_json()
    assert [o["name"] for o in listing["objects"]] == names  # by last name
    assert listing["total"] == 3 and listing["next_page"] is None and listing["api"] == "crm"
    assert all("raw" in o and o["etag"] for o in listing["objects"])
    backwards = api.get(f"{C}/contacts?order_by=-name", headers=contacts_auth).get_json()
    assert [o["name"] for o in backwards["objects"]] == names[::-1]
    page = api.get(f"{C}/contacts?page_size=2", headers=contacts_auth).get_json()
    assert page["count"] == 2 and page["next_page"] == 2
    last = api.get(f"{C}/contacts?page_size=2&page=2", headers=contacts_auth).get_json()
    assert [o["name"] for o in last["objects"]] == names[2:] and last["next_page"] is None
    error(api.get(f"{C}/contacts?page_size=2&page=3", headers=contacts_auth), 404, "not_found")
    for q, expected in (
        ("z@A.EX", names[:1]),
        ("qux", names[1:2]),
        ("+44", names[2:]),
        ("yan", names[1:2]),
    ):
        found = api.get(f"{C}/contacts", headers=contacts_auth, query_string={"q": q}).get_json()
        assert [o["name"] for o in found["objects"]] == expected, q
    by_modified = api.get(f"{C}/contacts?order_by=-modified", headers=contacts_auth).get_json()
    stamps = [o["modified"] for o in by_modified["objects"]]
    assert stamps == sorted(stamps, reverse=True)
    future = api.get(
        f"{C}/contacts",
        headers=contacts_auth,
        query_string={"updated_after": "2999-01-01T00:00:00Z"},
    ).get_json()
    assert future["objects"] == []
    past = api.get(
        f"{C}/contacts",
        headers=contacts_auth,
        query_string={"updated_after": "2000-01-01T00:00:00+02:00"},
    ).get_json()
    assert past["total"] == 3
    for bad in ("order_by=age", "updated_after=yesterday", "q=", "raw_type=Lead", "page_size=0"):
        error(api.get(f"{C}/contacts?{bad}", headers=contacts_auth), 400, "invalid_parameters")


# -- groups --------------------------------------------------------------------------------------


def test_groups_and_membership(api: Client, contacts_auth: dict[str, str]) -> None:
    friends = new_group(api, contacts_auth, "Friends")
    work = new_group(api, contacts_auth, "Work")
    assert friends["type"] == "contact_group" and friends["count"] == 0 and friends["etag"]
    error(
        api.post(f"{C}/contact_groups", headers=contacts_auth, json={"name": "Friends"}),
        409,
        "naming_conflict",
    )
    ann = new_contact(api, contacts_auth, name="Ann", groups=[friends["id"]])
    bob = new_contact(api, contacts_auth, name="Bob")
    assert ann["groups"] == [friends["id"]] and bob["groups"] == []
    bob = api.patch(
        f"{C}/contacts/{bob['id']}",
        headers=contacts_auth,
        json={"groups": [work["id"], friends["id"]]},
    ).get_json()
    assert sorted(bob["groups"]) == sorted([work["id"], friends["id"]])
    members = api.get(f"{C}/contact_groups/{friends['id']}/contacts", headers=contacts_auth)
    assert [o["name"] for o in members.get_json()["objects"]] == ["Ann", "Bob"]
    only = api.get(f"{C}/contacts?group={work['id']}", headers=contacts_auth).get_json()
    assert [o["name"] for o in only["objects"]] == ["Bob"]
    listing = api.get(f"{C}/contact_groups", headers=contacts_auth).get_json()
    assert [(g["name"], g["count"]) for g in listing["objects"]] == [("Friends", 2), ("Work", 1)]
    got = api.get(f"{C}/contact_groups/{friends['id']}", headers=contacts_auth)
    assert got.headers["ETag"] == f'"{got.get_json()["etag"]}"'
    stale = {**contacts_auth, "If-Match": f'"{friends["etag"]}"'}  # membership changed since
    error(
        api.patch(f"{C}/contact_groups/{friends['id']}", headers=stale, json={"name": "Pals"}),
        412,
        "precondition_failed",
    )
    renamed = api.patch(
        f"{C}/contact_groups/{friends['id']}", headers=contacts_auth, json={"name": "Pals"}
    )
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "Pals"
    again = api.get(f"{C}/contacts/{ann['id']}", headers=contacts_auth).get_json()
    assert again["groups"] == [friends["id"]]  # the id survives the rename
    assert api.delete(f"{C}/contact_groups/{work['id']}", headers=contacts_auth).status_code == 204
    bob = api.get(f"{C}/contacts/{bob['id']}", headers=contacts_auth).get_json()
    assert bob["groups"] == [friends["id"]]
    error(api.get(f"{C}/contact_groups/{work['id']}", headers=contacts_auth), 404, "not_found")
    error(
        api.patch(
            f"{C}/contacts/{bob['id']}", headers=contacts_auth, json={"groups": ["grp_nope"]}
        ),
        400,
        "invalid_parameters",
    )
    for bad in ({"name": ""}, {"name": "a,b"}, {}, {"name": 5}):
        error(
            api.post(f"{C}/contact_groups", headers=contacts_auth, json=bad),
            400,
            "invalid_parameters",
        )


# -- photos --------------------------------------------------------------------------------------


def test_photos(api: Client, contacts_auth: dict[str, str]) -> None:
    contact = new_contact(api, contacts_auth, name="Pictured")
    url = f"{C}/contacts/{contact['id']}/photo"
    error(api.get(url, headers=contacts_auth), 404, "not_found")
    error(api.delete(url, headers=contacts_auth), 404, "not_found")
    put = api.put(url, headers={**contacts_auth, "Content-Type": "image/png"}, data=PNG)
    assert put.status_code == 200, put.get_data(as_text=True)
    assert put.get_json()["photo"] == {"content_type": "image/png", "size": len(PNG)}
    got = api.get(url, headers=contacts_auth)
    assert got.status_code == 200 and got.data == PNG and got.mimetype == "image/png"
    replaced = api.put(url, headers={**contacts_auth, "Content-Type": "image/jpeg"}, data=JPEG)
    assert replaced.get_json()["photo"]["content_type"] == "image/jpeg"
    assert api.get(url, headers=contacts_auth).data == JPEG
    assert api.delete(url, headers=contacts_auth).status_code == 204
    error(api.get(url, headers=contacts_auth), 404, "not_found")
    assert (
        api.get(f"{C}/contacts/{contact['id']}", headers=contacts_auth).get_json()["photo"] is None
    )


def _photo_files(app: Any, creds: Any) -> list[str]:
    import os

    folder = os.path.join(
        app.settings.data_dir, "accounts", str(creds.account_id), "contact-photos"
    )
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_a_photo_whose_unit_rolls_back_leaves_no_file(
    api: Client, app: Any, creds: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kloudless.server.connectors.local_contacts import LocalContacts

    local = {"Authorization": f"Bearer {creds.token}"}
    contact = new_contact(api, local, name="Pictured")

    def fail(self: Any, type_: str, obj: Any) -> None:
        raise RuntimeError("the activity write fails after the photo was stored")

    monkeypatch.setattr(LocalContacts, "_event", fail)
    url = f"{C}/contacts/{contact['id']}/photo"
    put = api.put(url, headers={**local, "Content-Type": "image/png"}, data=PNG)
    assert put.status_code == 500
    monkeypatch.undo()
    assert _photo_files(app, creds) == []  # the stored photo went with the rollback
    error(api.get(url, headers=local), 404, "not_found")


def test_the_sweep_removes_photo_files_no_contact_names(api: Client, app: Any, creds: Any) -> None:
    import os

    from kloudless.server.sweep import sweep

    local = {"Authorization": f"Bearer {creds.token}"}
    contact = new_contact(api, local, name="Pictured")
    url = f"{C}/contacts/{contact['id']}/photo"
    assert api.put(url, headers={**local, "Content-Type": "image/png"}, data=PNG).status_code == 200
    (kept,) = _photo_files(app, creds)
    folder = os.path.join(
        app.settings.data_dir, "accounts", str(creds.account_id), "contact-photos"
    )
    old, young = os.path.join(folder, "old-orphan"), os.path.join(folder, "young-orphan")
    for path in (old, young):
        with open(path, "wb") as out:
            out.write(b"left by a kill")
    os.utime(old, (1, 1))
    os.utime(os.path.join(folder, kept), (1, 1))  # old, but named by the contact
    app.sweeper.wait()
    assert sweep(app)["blobs"] == 1
    assert _photo_files(app, creds) == sorted([kept, "young-orphan"])  # young: within the grace
    assert api.get(url, headers=local).data == PNG


# -- batch ---------------------------------------------------------------------------------------


def test_batch(api: Client, contacts_auth: dict[str, str]) -> None:
    existing = new_contact(api, contacts_auth, name="Existing")
    body = {
        "requests": [
            {
                "id": "a",
                "method": "POST",
                "url_data": {"raw_type": "Contact"},
                "data": {"name": "New"},
            },
            {"id": "b", "method": "GET", "path": f"contacts/{existing['id']}"},
            {
                "id": "c",
                "method": "PATCH",
                "path": f"crm/contacts/{existing['id']}",
                "data": {"title": "T"},
            },
            {
                "id": "d",
                "method": "DELETE",
                "url_data": {"raw_type": "Contact", "id": "con_missing"},
            },
            {"id": "e", "method": "POST", "path": "contacts", "data": {"emails": ["not an email"]}},
            {
                "id": "f",
                "method": "DELETE",
                "path": f"contacts/{existing['id']}",
                "if_match": '"x"',
            },
        ]
    }
    response = api.post(f"{C}/batch", headers=contacts_auth, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    result = response.get_json()
    ok = {r["id"]: r for r in result["responses"]}
    failed = {e["id"]: e for e in result["errors"]}
    assert set(ok) == {"a", "b", "c"} and set(failed) == {"d", "e", "f"}
    assert ok["a"]["status_code"] == 201 and ok["a"]["data"]["name"] == "New"
    assert ok["b"]["data"]["id"] == existing["id"] and ok["c"]["data"]["title"] == "T"
    assert (
        failed["d"]["status_code"] == 404
        and failed["e"]["error"]["error_code"] == "invalid_parameters"
    )
    assert failed["f"]["status_code"] == 412
    names = [
        o["name"] for o in api.get(f"{C}/contacts", headers=contacts_auth).get_json()["objects"]
    ]
    assert names == ["Existing", "New"]
    for bad in (
        {"requests": []},
        {"requests": [{"method": "GET", "path": "../storage/files"}]},
        {"requests": [{"method": "GET", "path": "batch"}]},
        {"requests": [{"method": "TRACE", "path": "contacts"}]},
        {"requests": [{"method": "GET"}] * 101},
    ):
        error(api.post(f"{C}/batch", headers=contacts_auth, json=bad), 400, "invalid_parameters")


# -- vCards --------------------------------------------------------------------------------------

VCARD_30 = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:import-30\r\nFN:Carla Díaz\r\nN:Díaz;Carla;;;\r\n"
    "EMAIL;TYPE=INTERNET,WORK,pref:carla@example.org\r\nTEL;TYPE=CELL:+34 600\r\n"
    "ORG:Fábrica\\, S.L.;Ventas\r\nCATEGORIES:Imported,Friends\r\n"
    "X-CUSTOM-FIELD;X-PARAM=1:keep me\\, please\r\nGENDER:F\r\n"
    "item1.X-ABLABEL:custom label\r\nEND:VCARD\r\n"
)
VCARD_40 = (
    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:import-40\r\nFN:Dev Four\r\nN:Four;Dev;;;\r\n"
    "EMAIL;PREF=1;TYPE=home:dev@example.org\r\nKIND:individual\r\n"
    "PHOTO:data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk\r\n"
    " +M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\r\nEND:VCARD\r\n"
)


def test_import_keeps_unknown_properties_through_edits(
    api: Client, contacts_auth: dict[str, str]
) -> None:
    response = api.post(
        f"{C}/contacts/import",
        headers={**contacts_auth, "Content-Type": "text/vcard"},
        data=(VCARD_30 + VCARD_40).encode("utf-8"),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    carla, dev = response.get_json()["objects"]
    assert carla["name"] == "Carla Díaz" and carla["organization"] == "Fábrica, S.L."
    assert carla["department"] == "Ventas" and carla["phones"][0]["type"] == "mobile"
    assert {"X-CUSTOM-FIELD", "GENDER", "X-ABLABEL"} <= set(carla["raw"]["unknown_properties"])
    groups = {
        g["name"]: g["id"]
        for g in api.get(f"{C}/contact_groups", headers=contacts_auth).get_json()["objects"]
    }
    assert sorted(carla["groups"]) == sorted([groups["Imported"], groups["Friends"]])
    assert dev["photo"] == {"content_type": "image/png", "size": 70}
    photo = api.get(f"{C}/contacts/{dev['id']}/photo", headers=contacts_auth)
    assert photo.data.startswith(b"\x89PNG") and len(photo.data) == 70
    patched = api.patch(
        f"{C}/contacts/{carla['id']}", headers=contacts_auth, json={"nickname": "Carlita"}
    ).get_json()
    assert patched["nickname"] == "Carlita"
    exported = api.get(
        f"{C}/contacts/{carla['id']}", headers={**contacts_auth, "Accept": "text/vcard"}
    )
    assert exported.mimetype == "text/vcard" and exported.headers["ETag"] == f'"{patched["etag"]}"'
    text = exported.get_data(as_text=True)
    for kept in (
        "X-CUSTOM-FIELD;X-PARAM=1:keep me\\, please",
        "GENDER:F",
        "item1.X-ABLABEL:custom label",
        "NICKNAME:Carlita",
        "UID:import-30",
    ):
        assert kept in text, kept
    dev_card = api.get(
        f"{C}/contacts/{dev['id']}", headers={**contacts_auth, "Accept": "text/vcard"}
    ).get_data(as_text=True)
    unfolded = dev_card.replace("\r\n ", "")
    assert "VERSION:4.0" in unfolded and "KIND:individual" in unfolded
    assert "PHOTO:data:image/png;base64,iVBORw0KGgo" in unfolded  # a 4.0 export keeps a data URI
    everything = api.get(f"{C}/contacts/export", headers=contacts_auth)
    assert everything.mimetype == "text/vcard"
    assert everything.get_data(as_text=True).count("BEGIN:VCARD") == 2
    error(
        api.post(
            f"{C}/contacts/import",
            headers={**contacts_auth, "Content-Type": "application/json"},
            data=b"{}",
        ),
        415,
        "unsupported_media_type",
    )


# -- activity and the account ----------------------------------------------------------------------


def test_activity_events(api: Client, contacts_auth: dict[str, str]) -> None:
    start = latest(api, contacts_auth)
    contact = new_contact(api, contacts_auth, name="Tracked")
    api.patch(f"{C}/contacts/{contact['id']}", headers=contacts_auth, json={"title": "X"})
    group = new_group(api, contacts_auth, "Tracked group")
    api.delete(f"{C}/contacts/{contact['id']}", headers=contacts_auth)
    seen = [
        (e["type"], e["metadata"]["type"], e["metadata"]["id"])
        for e in events(api, contacts_auth, start)
    ]
    assert seen == [
        ("add", "contact", contact["id"]),
        ("update", "contact", contact["id"]),
        ("add", "contact_group", group["id"]),
        ("delete", "contact", contact["id"]),
    ]
    deleted = events(api, contacts_auth, start)[-1]
    assert deleted["metadata"]["name"] == "Tracked" and deleted["metadata"]["api"] == "crm"
    assert "raw" not in deleted["metadata"]


def test_account_announces_contacts(api: Client, contacts_auth: dict[str, str]) -> None:
    account = api.get("/v1/accounts/me?retrieve_full=true", headers=contacts_auth).get_json()
    assert "crm" in account["apis"]
    capabilities = account["properties"]["capabilities"]
    assert capabilities["can_crud_crm_contacts"] == {"value": True}
    assert capabilities["can_crm_batch"] == {"value": True}


@pytest.mark.parametrize("path", ["crm/leads", "crm/opportunities/1"])
def test_other_crm_objects_are_not_implemented(
    api: Client, contacts_auth: dict[str, str], path: str
) -> None:
    error(api.get(f"/v1/accounts/me/{path}", headers=contacts_auth), 501, "not_implemented")


def test_storage_only_accounts_have_no_contacts(api: Client, webdav_auth: dict[str, str]) -> None:
    error(api.get(f"{C}/contacts", headers=webdav_auth), 501, "not_implemented")
    assert "crm" not in api.get("/v1/accounts/me", headers=webdav_auth).get_json()["apis"]
