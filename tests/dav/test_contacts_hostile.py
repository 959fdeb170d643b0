"""Hostile input to the contacts API on both connectors: huge and broken vCards, bad photos,
broken UTF-8, oversized fields and ids. Every answer is a 4xx JSON error, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import Client

from .conftest import error

C = "/v1/accounts/me/crm"


def vcard_import(api: Client, auth: dict[str, str], data: bytes) -> Any:
    return api.post(
        f"{C}/contacts/import", headers={**auth, "Content-Type": "text/vcard"}, data=data
    )


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"\xff\xfeBEGIN:VCARD\r\n", 400, "invalid_parameters"),  # broken UTF-8
        (b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:caf\xc3", 400, "invalid_parameters"),
        (b"not a vcard at all", 400, "invalid_parameters"),
        (b"", 400, "invalid_parameters"),
        (b"BEGIN:VCARD\r\nFN:a\x00b\r\nEND:VCARD\r\n", 400, "invalid_parameters"),
        (b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:unterminated\r\n", 400, "invalid_parameters"),
        (b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", 400, "invalid_parameters"),
        (
            b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:" + b";" * 5000 + b"\r\nFN:x\r\nEND:VCARD\r\n",
            201,
            None,
        ),
    ],
)
def test_broken_vcards(
    api: Client, contacts_auth: dict[str, str], data: bytes, status: int, code: str | None
) -> None:
    response = vcard_import(api, contacts_auth, data)
    if code is None:
        assert response.status_code == status, response.get_data(as_text=True)
    else:
        error(response, status, code)


def test_huge_vcards(api: Client, contacts_auth: dict[str, str]) -> None:
    huge_note = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:big\r\nNOTE:" + "x" * (5 * 1024 * 1024)
    error(
        vcard_import(api, contacts_auth, (huge_note + "\r\nEND:VCARD\r\n").encode()),
        413,
        "request_too_large",
    )
    many_props = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:many\r\n" + "EMAIL:a@b.c\r\n" * 1000 + "END:VCARD\r\n"
    )
    error(vcard_import(api, contacts_auth, many_props.encode()), 400, "invalid_parameters")
    assert api.get(f"{C}/contacts", headers=contacts_auth).get_json()["total"] == 0


@pytest.mark.parametrize(
    ("content_type", "data", "status", "code"),
    [
        ("image/png", b"GIF89a not a png", 400, "invalid_parameters"),
        ("image/jpeg", b"", 400, "invalid_parameters"),
        ("image/svg+xml", b"<svg onload=alert(1)>", 415, "unsupported_media_type"),
        ("text/html", b"<html>", 415, "unsupported_media_type"),
        ("image/webp", b"RIFF\x00\x00\x00\x00WAVE", 400, "invalid_parameters"),
        ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (1024 * 1024), 413, "request_too_large"),
    ],
)
def test_bad_photos(
    api: Client,
    contacts_auth: dict[str, str],
    content_type: str,
    data: bytes,
    status: int,
    code: str,
) -> None:
    contact = api.post(f"{C}/contacts", headers=contacts_auth, json={"name": "P"}).get_json()
    url = f"{C}/contacts/{contact['id']}/photo"
    error(
        api.put(url, headers={**contacts_auth, "Content-Type": content_type}, data=data),
        status,
        code,
    )
    error(api.get(url, headers=contacts_auth), 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": 5},
        {"name": "x" * 5000},
        {"name": "line\nbreak"},
        {"name": "bell\x07"},
        {"name": "ok", "emails": ["no-at-sign"]},
        {"name": "ok", "emails": [{"address": "a@b.c", "type": "no spaces allowed"}]},
        {"name": "ok", "emails": ["a@b.c"] * 51},
        {"name": "ok", "phones": [{"number": ""}]},
        {"name": "ok", "addresses": [{"street": "s", "planet": "Mars"}]},
        {"name": "ok", "addresses": [{}]},
        {"name": "ok", "birthday": "1990-13-01"},
        {"name": "ok", "birthday": "soon"},
        {"name": "ok", "urls": [""]},
        {"name": "ok", "groups": "grp_x"},
        {"name": "ok", "groups": ["x" * 600]},
        {"name": "ok", "notes": "n" * 40000},
    ],
)
def test_bad_contact_bodies(
    api: Client, contacts_auth: dict[str, str], body: dict[str, Any]
) -> None:
    error(api.post(f"{C}/contacts", headers=contacts_auth, json=body), 400, "invalid_parameters")


def test_bad_json_and_ids(api: Client, contacts_auth: dict[str, str]) -> None:
    headers = {**contacts_auth, "Content-Type": "application/json"}
    error(api.post(f"{C}/contacts", headers=headers, data=b'{"name": "\xff"}'), 400, "bad_request")
    error(api.post(f"{C}/contacts", headers=headers, data=b"[1]"), 400, "invalid_parameters")
    for bad_id in ("con_" + "A" * 600, "con_!!!", "con_Li4", "con_..", "grp_x"):
        error(api.get(f"{C}/contacts/{bad_id}", headers=contacts_auth), 404, "not_found")
        error(api.delete(f"{C}/contacts/{bad_id}", headers=contacts_auth), 404, "not_found")
    error(api.get(f"{C}/contact_groups/{'g' * 600}", headers=contacts_auth), 404, "not_found")
    error(api.get(f"{C}/contacts?q={'q' * 300}", headers=contacts_auth), 400, "invalid_parameters")


def test_other_accounts_contacts_are_not_found(
    api: Client, app: Any, creds: Any, contacts_auth: dict[str, str]
) -> None:
    contact = api.post(f"{C}/contacts", headers=contacts_auth, json={"name": "Private"}).get_json()
    other = app.store.create_account(creds.app_id, "local", "other")
    other_auth = {"Authorization": f"Bearer {app.store.create_token(creds.app_id, other)}"}
    error(api.get(f"{C}/contacts/{contact['id']}", headers=other_auth), 404, "not_found")
    error(api.delete(f"{C}/contacts/{contact['id']}", headers=other_auth), 404, "not_found")
    assert api.get(f"{C}/contacts/{contact['id']}", headers=contacts_auth).status_code == 200
