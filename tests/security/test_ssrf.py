"""Server-side request forgery, written as the attacks of issue #25 (loopback only).

A stand-in "internal service" listens on 127.0.0.1 with a secret at ``/admin/secret``. Without
any credential, a visitor of the consent page used to connect a WebDAV account to it and then
read the secret through ``POST /v1/accounts/me/raw``; the consent page's error messages told an
open port from a closed one; and a CalDAV upstream's redirect made the server request an
internal address (answered by a 500). The outbound policy refuses all of this."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.test import Client, TestResponse

from kloudless.server import Settings, create_app
from kloudless.server.api.oauth import CONNECT_FAILED
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials, bootstrap
from kloudless.server.connectors.webdav_auth import stored_config

from .conftest import LoopbackServer, Reply, Seen

SECRET = b"internal-admin-secret-4242"
REDIRECT = "http://localhost:8020/callback"


def internal_service(seen: Seen) -> tuple[int, dict[str, str], bytes]:
    """What only the server can reach: a secret for any GET, 501 for WebDAV methods."""
    if seen.method == "GET" and seen.path.startswith("/admin/secret"):
        return 200, {"Content-Type": "text/plain", "X-Internal": "yes"}, SECRET
    return 501, {"Content-Type": "text/plain"}, b"not implemented here"


@dataclass
class World:
    app: ServerApp
    api: Client
    creds: Credentials

    def apikey(self) -> dict[str, str]:
        return {"Authorization": f"APIKey {self.creds.api_key}"}

    def stored_account(self, service: str, url: str) -> dict[str, str]:
        """An account whose URL was accepted earlier (say, while the operator allowed it)."""
        config = stored_config(url, "u", "p", self.app.store.server_secret())
        if service == "caldav":
            config["primary_calendar"] = "cal"
        account_id = self.app.store.create_account(self.creds.app_id, service, "x", config)
        return {
            "Authorization": f"Bearer {self.app.store.create_token(self.creds.app_id, account_id)}"
        }


@pytest.fixture
def make_world(tmp_path: Any) -> Iterator[Callable[..., World]]:
    apps: list[ServerApp] = []

    def make(**settings: Any) -> World:
        app = create_app(Settings(data_dir=str(tmp_path / f"data{len(apps)}"), **settings))
        apps.append(app)
        creds = bootstrap(app.store)
        assert creds is not None
        return World(app, Client(app), creds)

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def internal(loopback: Callable[[Reply], LoopbackServer]) -> LoopbackServer:
    return loopback(internal_service)


def consent_form(world: World, scope: str, response_type: str = "token") -> dict[str, str]:
    params = {
        "client_id": world.creds.app_id,
        "response_type": response_type,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "s",
    }
    page = world.api.get("/v1/oauth", query_string=params)
    assert page.status_code == 200, page.get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.get_data(as_text=True))
    assert token is not None
    return dict(params, csrf_token=token.group(1), decision="allow", account_id="new")


def submit_dav(world: World, service: str, url: str) -> TestResponse:
    form = consent_form(world, service)
    form.update(service=service, url=url, username="u", password="p")
    return world.api.post("/v1/oauth", data=form)


def error_text(response: TestResponse) -> str:
    match = re.search(r'class="error"[^>]*>(.*?)<', response.get_data(as_text=True), re.S)
    assert match is not None, response.get_data(as_text=True)
    return match.group(1).strip()


# -- finding 1: SSRF without any credential -------------------------------------------------------


def test_consent_page_cannot_connect_an_internal_address(
    make_world: Callable[..., World], internal: LoopbackServer
) -> None:
    world = make_world()
    before = len(world.app.store.list_accounts())
    for service in ("webdav", "caldav"):
        response = submit_dav(world, service, internal.url + "/")
        assert response.status_code == 400  # the form again, no redirect with a token
        assert "Location" not in response.headers
        assert error_text(response) == html.escape(CONNECT_FAILED)
    assert len(world.app.store.list_accounts()) == before
    assert internal.seen == []  # nothing was sent to the internal service


@pytest.mark.parametrize(
    "spelling",
    ["127.0.0.1", "localhost", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "[::ffff:127.0.0.1]"],
)
def test_api_refuses_internal_addresses_in_any_spelling(
    make_world: Callable[..., World], internal: LoopbackServer, spelling: str
) -> None:
    world = make_world()
    url = f"http://{spelling}:{internal.port}/"
    for service in ("webdav", "caldav"):
        body = {"service": service, "url": url, "username": "u", "password": "p"}
        response = world.api.post("/v1/accounts", headers=world.apikey(), json=body)
        assert response.status_code == 400, response.get_data(as_text=True)
        error = response.get_json()
        assert (
            error["error_code"] == "invalid_parameters" and "--allow-upstream" in error["message"]
        )
    assert internal.seen == []


def test_raw_is_not_a_proxy_into_internal_addresses(
    make_world: Callable[..., World], internal: LoopbackServer
) -> None:
    """An account stored with an internal URL (say, allowed earlier) is refused on every call."""
    world = make_world()
    for service in ("webdav", "caldav"):
        bearer = world.stored_account(service, internal.url + "/")
        headers = dict(bearer, **{"X-Kloudless-Raw-Method": "GET"})
        headers["X-Kloudless-Raw-URI"] = "/admin/secret"
        response = world.api.post("/v1/accounts/me/raw", headers=headers)
        assert response.status_code == 403, response.get_data(as_text=True)
        assert response.get_json()["error_code"] == "forbidden"
        assert SECRET not in response.get_data()
    listing = world.api.get(
        "/v1/accounts/me/storage/folders/root/contents",
        headers=world.stored_account("webdav", internal.url + "/"),
    )
    assert listing.status_code == 403
    calendars = world.api.get(
        "/v1/accounts/me/cal/calendars", headers=world.stored_account("caldav", internal.url + "/")
    )
    assert calendars.status_code == 403
    assert internal.seen == []


def test_the_full_attack_chain_needs_the_operator(
    make_world: Callable[..., World], internal: LoopbackServer
) -> None:
    """consent page → response_type=token to a loopback redirect → raw: refused at the first
    step by default; an operator who allowlists the address gets what they asked for."""
    world = make_world()
    assert submit_dav(world, "webdav", internal.url + "/").status_code == 400
    trusting = make_world(allow_upstream=[f"127.0.0.1:{internal.port}"])
    # The stand-in answers PROPFIND with 501: not a WebDAV server, so still no account.
    assert submit_dav(trusting, "webdav", internal.url + "/").status_code == 400
    assert [s.method for s in internal.seen] == ["PROPFIND"]


def test_consent_errors_do_not_tell_what_answered(
    make_world: Callable[..., World], loopback: Callable[[Reply], LoopbackServer]
) -> None:
    """Closed port, refused address, a non-DAV service, a 403, a 401: one message (the page
    would otherwise be a port scanner)."""
    from tests.dav.servers import closed_port

    forbidden = loopback(lambda seen: (403, {"Content-Type": "text/plain"}, b"Forbidden"))
    auth = loopback(lambda seen: (401, {"WWW-Authenticate": 'Basic realm="x"'}, b""))
    non_dav = loopback(internal_service)
    world = make_world(allow_upstream=["127.0.0.1"])  # the connection path is really taken
    strict = make_world()
    urls = [f"http://127.0.0.1:{closed_port()}/", forbidden.url, auth.url, non_dav.url]
    messages = {
        error_text(submit_dav(world, s, u + "/")) for s in ("webdav", "caldav") for u in urls
    }
    messages |= {error_text(submit_dav(strict, "webdav", non_dav.url + "/"))}
    messages |= {error_text(submit_dav(world, "webdav", "http://unresolvable.invalid/"))}
    assert messages == {html.escape(CONNECT_FAILED)}
    assert forbidden.seen and auth.seen and non_dav.seen  # they were really tried


def test_form_mistakes_are_still_explained(make_world: Callable[..., World]) -> None:
    world = make_world()
    response = submit_dav(world, "webdav", "ftp://example.com/")
    assert response.status_code == 400 and "http://" in error_text(response)


# -- finding 2: the CalDAV connector followed upstream redirects ---------------------------------


def test_caldav_redirects_to_internal_addresses_are_not_followed(
    make_world: Callable[..., World],
    internal: LoopbackServer,
    loopback: Callable[[Reply], LoopbackServer],
) -> None:
    attacker = loopback(lambda seen: (302, {"Location": internal.url + "/admin/secret"}, b""))
    # Even with both addresses allowlisted, the redirect is not followed.
    for allow in ([f"127.0.0.1:{attacker.port}"], ["127.0.0.1"]):
        world = make_world(allow_upstream=allow)
        body = {"service": "caldav", "url": attacker.url + "/", "username": "u", "password": "p"}
        created = world.api.post("/v1/accounts", headers=world.apikey(), json=body)
        assert 400 <= created.status_code < 600 and created.status_code != 500
        assert created.get_json()["error_code"] != "internal_error"
        calendars = world.api.get(
            "/v1/accounts/me/cal/calendars",
            headers=world.stored_account("caldav", attacker.url + "/"),
        )
        assert calendars.status_code == 502, calendars.get_data(as_text=True)
        assert calendars.get_json()["error_code"] == "bad_gateway"
        raw = world.api.post(
            "/v1/accounts/me/raw",
            headers=dict(
                world.stored_account("webdav", attacker.url + "/"),
                **{"X-Kloudless-Raw-Method": "GET", "X-Kloudless-Raw-URI": "/x"},
            ),
        )
        assert raw.status_code == 302 and SECRET not in raw.get_data()  # relayed, not followed
    assert attacker.seen and internal.seen == []


def test_caldav_library_failures_are_502_not_500(
    make_world: Callable[..., World], loopback: Callable[[Reply], LoopbackServer]
) -> None:
    garbage = loopback(
        lambda seen: (207, {"Content-Type": "application/xml"}, b"<multistatus><oops")
    )
    world = make_world(allow_upstream=["127.0.0.1"])
    response = world.api.get(
        "/v1/accounts/me/cal/calendars", headers=world.stored_account("caldav", garbage.url + "/")
    )
    assert response.status_code == 502, response.get_data(as_text=True)
    assert response.get_json()["error_code"] == "bad_gateway"
    body = {"service": "caldav", "url": garbage.url + "/", "username": "u", "password": "p"}
    created = world.api.post("/v1/accounts", headers=world.apikey(), json=body)
    assert created.status_code == 502 and json.loads(created.get_data())["id"]


def test_webhook_receivers_on_internal_addresses_fail_validation(
    make_world: Callable[..., World], internal: LoopbackServer
) -> None:
    world = make_world()
    token = world.app.store.create_token(world.creds.app_id, None)
    response = world.api.patch(
        f"/v1/meta/applications/{world.creds.app_id}",
        headers={"Authorization": f"Bearer {token}"},
        json={"webhook_url": internal.url + "/admin/secret"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["webhook_status"] == "invalid"
    assert internal.seen == []


def _fragment(response: TestResponse) -> dict[str, list[str]]:
    return parse_qs(urlsplit(response.headers["Location"]).fragment)
