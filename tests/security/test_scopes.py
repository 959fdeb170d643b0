"""Token scopes are enforced per API family (issue #25, finding 4).

The attack: a token granted with ``scope=calendar`` (confirmed by ``GET /v1/oauth/token``) used
to list storage folders with 200."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.test import Client

from kloudless.server.api import ROUTES
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials
from kloudless.server.scopes import ALWAYS, FAMILIES, allows, granted

REDIRECT = "http://localhost:8020/callback"
ROOT = "/v1/accounts/me/storage/folders/root/contents"
CALENDARS = "/v1/accounts/me/cal/calendars"


def consented_token(client: Client, creds: Credentials, scope: str) -> str:
    """A token from the consent page (implicit flow, loopback redirect, a new local account)."""
    params = {
        "client_id": creds.app_id,
        "response_type": "token",
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "s",
    }
    page = client.get("/v1/oauth", query_string=params)
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.get_data(as_text=True))
    assert csrf is not None
    form = dict(params, csrf_token=csrf.group(1), decision="allow")
    form["account_id"] = "new"  # a new local account (existing ones need an invitation)
    done = client.post("/v1/oauth", data=form)
    assert done.status_code == 302, done.get_data(as_text=True)
    return parse_qs(urlsplit(done.headers["Location"]).fragment)["access_token"][0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_calendar_token_cannot_read_storage(
    world: tuple[ServerApp, Client, Credentials],
) -> None:
    _, client, creds = world
    token = consented_token(client, creds, "calendar")
    verified = client.get("/v1/oauth/token", headers=bearer(token))
    assert verified.get_json()["scope"] == "calendar"
    listing = client.get(ROOT, headers=bearer(token))
    assert listing.status_code == 403, listing.get_data(as_text=True)
    body = listing.get_json()
    assert body["error_code"] == "forbidden" and "storage" in body["message"]
    for path in ("/v1/accounts/me/storage/quota", "/v1/accounts/me/storage/links"):
        assert client.get(path, headers=bearer(token)).status_code == 403
    upload = client.post(
        "/v1/accounts/me/storage/files",
        headers={**bearer(token), "X-Kloudless-Metadata": '{"name": "x", "parent_id": "root"}'},
        data=b"x",
    )
    assert upload.status_code == 403
    assert client.get(CALENDARS, headers=bearer(token)).status_code == 200  # its own family
    assert client.get("/v1/accounts/me", headers=bearer(token)).status_code == 200
    assert client.get("/v1/accounts/me/events/latest", headers=bearer(token)).status_code == 200


def test_a_storage_token_cannot_read_calendars_or_pass_through(
    world: tuple[ServerApp, Client, Credentials],
) -> None:
    _, client, creds = world
    for scope in ("storage", "any:normal.storage", "local.storage", "gdrive.storage.default"):
        token = consented_token(client, creds, scope)
        assert client.get(ROOT, headers=bearer(token)).status_code == 200, scope
        assert client.get(CALENDARS, headers=bearer(token)).status_code == 403, scope
        raw = client.post(
            "/v1/accounts/me/raw",
            headers={**bearer(token), "X-Kloudless-Raw-Method": "GET", "X-Kloudless-Raw-URI": "/"},
        )
        assert raw.status_code == 403, scope


def test_unrestricted_scopes_and_api_keys(world: tuple[ServerApp, Client, Credentials]) -> None:
    app, client, creds = world
    for scope in ("all", "any", "all:admin", "local", "local:normal"):
        token = app.store.create_token(creds.app_id, creds.account_id, scope)
        assert client.get(ROOT, headers=bearer(token)).status_code == 200, scope
        assert client.get(CALENDARS, headers=bearer(token)).status_code == 200, scope
    key = {"Authorization": f"APIKey {creds.api_key}"}
    path = f"/v1/accounts/{creds.account_id}/storage/folders/root/contents"
    assert client.get(path, headers=key).status_code == 200


def test_every_token_of_a_multi_token_request_is_checked(
    world: tuple[ServerApp, Client, Credentials],
) -> None:
    app, client, creds = world
    other = app.store.create_account(creds.app_id, "local", "second")
    storage = app.store.create_token(creds.app_id, creds.account_id, "storage")
    calendar = app.store.create_token(creds.app_id, other, "calendar")
    both = {"Authorization": f"Bearer {storage},{calendar}"}
    events = f"/v1/accounts/{creds.account_id},{other}/events"
    assert client.get(events, headers=both).status_code == 200  # both grant events
    search = f"/v1/accounts/{creds.account_id},{other}/storage/search?q=x"
    assert client.get(search, headers=both).status_code == 403


def test_an_empty_scope_reaches_only_the_account(
    world: tuple[ServerApp, Client, Credentials],
) -> None:
    app, client, creds = world
    token = app.store.create_token(creds.app_id, creds.account_id, "")
    assert client.get("/v1/accounts/me", headers=bearer(token)).status_code == 200
    assert client.get(ROOT, headers=bearer(token)).status_code == 403
    assert client.get("/v1/accounts/me/events/latest", headers=bearer(token)).status_code == 403


@pytest.mark.parametrize(
    ("scope", "families"),
    [
        ("all", None),
        ("any", None),
        ("all:admin", None),
        ("webdav", None),  # a service alone: all of its APIs
        ("caldav:normal", None),
        ("storage", {"storage", "events"}),
        ("calendar", {"calendar", "events"}),
        ("calendar:normal", {"calendar", "events"}),
        ("crm", {"contacts", "events"}),
        ("any.storage", {"storage"}),
        ("any:normal.storage", {"storage"}),
        ("webdav:normal.storage", {"storage"}),
        ("gdrive:normal.events.default:kloudless", {"events"}),
        ('gdrive.storage."https://www.googleapis.com/auth/drive.readonly":raw', {"storage"}),
        ("salesforce.crm", {"contacts"}),
        ("any.calendar any.storage", {"calendar", "storage"}),
        ("email", set()),
        ("any.basic", set()),
        ("", set()),
    ],
)
def test_scope_grammar(scope: str, families: set[str] | None) -> None:
    assert granted(scope) == (None if families is None else frozenset(families))
    for family in FAMILIES:
        expected = family in ALWAYS or families is None or family in families
        assert allows(scope, family) is expected, (scope, family)


def test_every_route_has_a_documented_family() -> None:
    """New routes (contacts, team, meta, ...) must name their family, in the routing table
    (``in_family`` in ``api/__init__.py``) or on the route."""
    missing = [(r.path, r.methods) for r in ROUTES if r.family not in FAMILIES]
    assert missing == []
    families = {r.family for r in ROUTES}
    assert {"storage", "calendar", "events", "account", "raw", "meta", "public"} <= families


def test_the_documented_table_lists_every_family() -> None:
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "security.rst").read_text(encoding="utf-8")
    for family in FAMILIES:
        assert f"``{family}``" in page, family
