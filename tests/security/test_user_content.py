"""User content never runs on the API origin (issue #25, finding 3).

The attack: an uploaded ``x.html`` with a script, shared with a link (direct or not), was served
by ``GET /l/<id>`` (and ``?download=1``) as ``text/html`` with no ``Content-Disposition``, no
``nosniff`` and no CSP, so the script ran on the origin of the consent page."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from kloudless.server.content import content_disposition

SCRIPT = b"<html><body><script>fetch('/v1/oauth').then(r => r.text())</script></body></html>"
FILES = "/v1/accounts/me/storage/files"


@pytest.fixture
def site(world: tuple[Any, Client, Any]) -> tuple[Client, dict[str, str]]:
    """The test client and Bearer headers of the local account."""
    _, client, creds = world
    return client, {"Authorization": f"Bearer {creds.token}"}


def upload(client: Client, auth: dict[str, str], name: str, data: bytes) -> str:
    headers = dict(
        auth, **{"X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": "root"})}
    )
    response = client.post(FILES, headers=headers, data=data)
    assert response.status_code == 201, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def link(client: Client, auth: dict[str, str], file_id: str, direct: bool) -> str:
    response = client.post(
        "/v1/accounts/me/storage/links", headers=auth, json={"file_id": file_id, "direct": direct}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return "/l/" + str(response.get_json()["id"])


def assert_cannot_run(response: TestResponse) -> None:
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].split(";")[0] == "sandbox"


@pytest.mark.parametrize("direct", [True, False])
def test_a_shared_html_file_is_not_served_as_a_page(
    site: tuple[Client, dict[str, str]], direct: bool
) -> None:
    client, auth = site
    url = link(client, auth, upload(client, auth, "x.html", SCRIPT), direct)
    queries = ["?download=1"] + ([""] if direct else [])
    for query in queries:
        response = client.get(url + query)
        assert response.get_data() == SCRIPT  # the bytes, unchanged
        assert_cannot_run(response)
        assert 'filename="x.html"' in response.headers["Content-Disposition"]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("x.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        ("x.xml", b"<?xml version='1.0'?><x:script xmlns:x='http://www.w3.org/1999/xhtml'/>"),
        ("x.xhtml", SCRIPT),
        ("x.js", b"alert(1)"),
        ("noextension", SCRIPT),
    ],
)
def test_active_types_are_never_inline(
    site: tuple[Client, dict[str, str]], name: str, data: bytes
) -> None:
    client, auth = site
    file_id = upload(client, auth, name, data)
    assert_cannot_run(client.get(link(client, auth, file_id, True)))
    assert_cannot_run(client.get(f"{FILES}/{file_id}/contents", headers=auth))


@pytest.mark.parametrize(
    ("name", "data"),
    [("photo.png", b"\x89PNG\r\n\x1a\n"), ("notes.txt", SCRIPT), ("doc.pdf", b"%PDF-1.4\n")],
)
def test_safe_types_are_inline_on_direct_links_only(
    site: tuple[Client, dict[str, str]], name: str, data: bytes
) -> None:
    client, auth = site
    file_id = upload(client, auth, name, data)
    url = link(client, auth, file_id, True)
    shown = client.get(url)
    assert shown.headers["Content-Disposition"].startswith("inline;")
    # Even shown, a text file full of HTML is not sniffed into a page, and nothing runs.
    assert shown.headers["X-Content-Type-Options"] == "nosniff"
    assert shown.headers["Content-Security-Policy"].startswith("sandbox")
    assert_cannot_run(client.get(url + "?download=1"))
    assert_cannot_run(client.get(f"{FILES}/{file_id}/contents", headers=auth))


def test_ranges_keep_the_protection(site: tuple[Client, dict[str, str]]) -> None:
    client, auth = site
    url = link(client, auth, upload(client, auth, "x.html", SCRIPT), True)
    partial = client.get(url, headers={"Range": "bytes=0-5"})
    assert partial.status_code == 206 and partial.get_data() == SCRIPT[:6]
    assert partial.headers["Content-Disposition"].startswith("attachment;")
    assert partial.headers["X-Content-Type-Options"] == "nosniff"


def test_unicode_and_awkward_names(site: tuple[Client, dict[str, str]]) -> None:
    client, auth = site
    file_id = upload(client, auth, 'naïve "résumé"; x.html', SCRIPT)
    value = client.get(f"{FILES}/{file_id}/contents", headers=auth).headers["Content-Disposition"]
    assert value == (
        'attachment; filename="na_ve _r_sum__; x.html"; '
        "filename*=UTF-8''na%C3%AFve%20%22r%C3%A9sum%C3%A9%22%3B%20x.html"
    )


def test_content_disposition_rules() -> None:
    assert content_disposition("a.txt") == 'attachment; filename="a.txt"'
    assert content_disposition("a.png", inline=True) == 'inline; filename="a.png"'
    assert content_disposition(None) == 'attachment; filename="download"'
    assert content_disposition("日本.txt").endswith("filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt")
    assert "\n" not in content_disposition("a\r\nSet-Cookie: x=1")
    assert content_disposition("back\\slash") == (
        "attachment; filename=\"back_slash\"; filename*=UTF-8''back%5Cslash"
    )


def test_link_pages_cannot_be_framed_or_run_scripts(site: tuple[Client, dict[str, str]]) -> None:
    client, auth = site
    file_id = upload(client, auth, "<img src=x onerror=alert(1)>.txt", b"x")
    landing = client.get(link(client, auth, file_id, False))
    assert landing.status_code == 200 and "<img src=x" not in landing.get_data(as_text=True)
    for page in (landing,):
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY"
    protected = client.post(
        "/v1/accounts/me/storage/links",
        headers=auth,
        json={"file_id": file_id, "password": "pw"},
    ).get_json()["id"]
    form = client.get(f"/l/{protected}")
    assert "default-src 'none'" in form.headers["Content-Security-Policy"]
    wrong = client.post(f"/l/{protected}", data={"password": "no"})
    assert wrong.status_code == 403 and wrong.headers["X-Frame-Options"] == "DENY"
