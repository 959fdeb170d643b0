"""Browser clients (issue #21): trusted domains (storage, meta API, CLI), CORS preflights and
answer headers, and the popup (out-of-band) flow's completion page. The same flow in a real
browser is ``tests/browser/test_popup_flow.py``."""

from __future__ import annotations

import json
import re
from typing import Any, Callable

import pytest
from werkzeug.test import Client

from kloudless.server import trusted_domains
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials

from .conftest import BufferedClient, assert_error, cli_options

ORIGIN = "http://127.0.0.1:5555"
OOB = "urn:ietf:wg:oauth:2.0:oob"
HTML = {"Accept": "text/html"}


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("https://App.Example.com:443/", "https://app.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:80", "http://localhost"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_normalize(text: str, origin: str) -> None:
    assert trusted_domains.normalize(text) == origin


@pytest.mark.parametrize(
    "text",
    [
        "",
        "null",
        "app.example.com",
        "ftp://x.org",
        "https://x.org/app",
        "https://u:p@x.org",
        "https://x.org?q",
        "https://x.org#f",
        "https://x.org:99999",
        "https://bad_host",
        "https://é.fr",
    ],
)
def test_normalize_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        trusted_domains.normalize(text)


def _api_key(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"APIKey {creds.api_key}"}


def test_meta_api(client: Client, app: ServerApp, creds: Credentials) -> None:
    base = f"/v1/meta/applications/{creds.app_id}/trusted_domains"
    added = client.post(base, json={"domain": "HTTPS://App.Example.com/"}, headers=_api_key(creds))
    assert added.status_code == 201
    body = added.get_json()
    assert body["type"] == "trusted_domain" and body["domain"] == "https://app.example.com"
    again = client.post(base, json={"domain": "https://app.example.com"}, headers=_api_key(creds))
    assert again.status_code == 200 and again.get_json()["id"] == body["id"]
    listing = client.get(base, headers=_api_key(creds)).get_json()
    assert [o["domain"] for o in listing["objects"]] == ["https://app.example.com"]
    assert client.get(f"{base}/{body['id']}", headers=_api_key(creds)).status_code == 200
    assert_error(
        client.post(base, json={"domain": "https://x.org/path"}, headers=_api_key(creds)),
        400,
        "invalid_parameters",
    )
    # Another application's credentials see nothing of it.
    other, other_key = app.store.create_app("Other")
    theirs = {"Authorization": f"APIKey {other_key}"}
    assert_error(client.get(base, headers=theirs), 404, "not_found")
    # An account token is not enough.
    assert_error(
        client.get(base, headers={"Authorization": f"Bearer {creds.token}"}), 403, "forbidden"
    )
    assert client.delete(f"{base}/{body['id']}", headers=_api_key(creds)).status_code == 204
    assert_error(client.delete(f"{base}/{body['id']}", headers=_api_key(creds)), 404, "not_found")
    assert not trusted_domains.is_trusted(app.store, creds.app_id, "https://app.example.com")


def test_cli(make_settings: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    from kloudless.cli import main
    from kloudless.server import create_app
    from kloudless.server.bootstrap import bootstrap

    settings = make_settings()
    data = cli_options(settings)
    app = create_app(settings)
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        assert main(["apps", "trusted-domain", "add", *data, "HTTP://LOCALHOST:3000/"]) == 0
        assert "http://localhost:3000" in capsys.readouterr().out
        assert main(["apps", "trusted-domain", "list", *data]) == 0
        assert capsys.readouterr().out.splitlines() == ["http://localhost:3000"]
        assert trusted_domains.is_trusted(app.store, creds.app_id, "http://localhost:3000")
        assert main(["apps", "trusted-domain", "add", *data, "localhost:3000"]) == 2
        assert main(["apps", "trusted-domain", "remove", *data, "http://localhost:3000"]) == 0
        assert main(["apps", "trusted-domain", "remove", *data, "http://localhost:3000"]) == 1
    finally:
        app.close()


def _preflight(client: Client, path: str, origin: str, headers: str = "authorization") -> Any:
    return client.open(
        path,
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": headers,
        },
    )


def test_preflight(client: Client, app: ServerApp, creds: Credentials) -> None:
    trusted_domains.add(app.store, creds.app_id, ORIGIN)
    answer = _preflight(
        client,
        "/v1/accounts/me",
        ORIGIN,
        "Authorization, X-Kloudless-Source, Idempotency-Key, X-Evil",
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in answer.headers["Vary"]
    assert "PATCH" in answer.headers["Access-Control-Allow-Methods"]
    allowed = answer.headers["Access-Control-Allow-Headers"]
    assert allowed == "authorization, x-kloudless-source, idempotency-key"
    assert answer.headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    # An origin nobody trusts learns nothing, and gets nothing a browser would accept.
    untrusted = _preflight(client, "/v1/accounts/me", "http://evil.example")
    assert untrusted.status_code == 204 and untrusted.data == b""
    assert not any(h.startswith("Access-Control-") for h, _ in untrusted.headers.items())
    # No such route: the usual JSON 404.
    assert_error(_preflight(client, "/v1/nothing-here", ORIGIN), 404, "not_found")


def test_answer_headers(client: Client, app: ServerApp, creds: Credentials) -> None:
    bearer = {"Authorization": f"Bearer {creds.token}"}
    other, _ = app.store.create_app("Other")
    trusted_domains.add(app.store, other, "http://other.example")
    trusted_domains.add(app.store, creds.app_id, ORIGIN)

    ok = client.get("/v1/accounts/me", headers=dict(bearer, Origin=ORIGIN))
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Request-Id" in ok.headers["Access-Control-Expose-Headers"]
    assert "Origin" in ok.headers["Vary"] and "Access-Control-Allow-Credentials" not in ok.headers
    # An origin trusted by another application only: the browser may not read the answer.
    foreign = client.get("/v1/accounts/me", headers=dict(bearer, Origin="http://other.example"))
    assert foreign.status_code == 200 and "Access-Control-Allow-Origin" not in foreign.headers
    # No credential yet: a trusted origin can read its 401.
    denied = client.get("/v1/accounts/me", headers={"Origin": ORIGIN})
    assert denied.status_code == 401 and denied.headers["Access-Control-Allow-Origin"] == ORIGIN
    stranger = client.get("/v1/accounts/me", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in stranger.headers
    # Token verification (the Authenticator's step 3) answers by the token's application.
    verify = client.get("/v1/oauth/token", headers=dict(bearer, Origin=ORIGIN))
    assert verify.headers["Access-Control-Allow-Origin"] == ORIGIN
    verify = client.get("/v1/oauth/token", headers=dict(bearer, Origin="http://other.example"))
    assert "Access-Control-Allow-Origin" not in verify.headers
    # Public links carry no credential: any origin may read them.
    link = client.get("/l/nope", headers={"Origin": "http://evil.example"})
    assert link.headers["Access-Control-Allow-Origin"] == "*"
    # Without an Origin nothing changes.
    assert (
        "Access-Control-Allow-Origin" not in client.get("/v1/accounts/me", headers=bearer).headers
    )


def _popup_query(creds: Credentials, origin: str = ORIGIN, **extra: str) -> dict[str, str]:
    query = {
        "client_id": creds.app_id,
        "response_type": "token",
        "redirect_uri": OOB,
        "state": "req-42",
        "request_id": "req-42",
        "origin": origin,
        "scope": "storage",
    }
    query.update(extra)
    return query


def _payload(text: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="kloudless-result">(.*?)</script>', text)
    assert match is not None
    value: dict[str, Any] = json.loads(match.group(1))
    return value


def test_popup_flow(client: Client, app: ServerApp, creds: Credentials) -> None:
    before = app.store.one("SELECT COUNT(*) AS n FROM tokens")["n"]
    # Untrusted origin: refused before anything is shown or created.
    assert_error(client.get("/v1/oauth", query_string=_popup_query(creds)), 400, "untrusted_origin")
    page = client.get("/v1/oauth", query_string=_popup_query(creds), headers=HTML)
    assert page.status_code == 400 and "kloudless apps trusted-domain add" in page.get_data(
        as_text=True
    )
    query = _popup_query(creds, origin="")
    assert_error(client.get("/v1/oauth", query_string=query), 400, "invalid_parameters")

    trusted_domains.add(app.store, creds.app_id, ORIGIN)
    page = client.get("/v1/oauth", query_string=_popup_query(creds))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "the application&#x27;s window" in text
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', text)
    assert token is not None
    form = dict(_popup_query(creds), csrf_token=token.group(1), decision="allow", account_id="new")
    done = client.post("/v1/oauth", data=form)
    assert done.status_code == 200 and "Location" not in done.headers
    csp = done.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    result = _payload(done.get_data(as_text=True))
    assert result["origin"] == ORIGIN
    message = result["message"]
    assert message["type"] == "authentication" and message["id"] == "req-42"
    data = message["data"]
    assert data["token_type"] == "Bearer" and data["state"] == "req-42"
    assert data["scope"] == "storage" and isinstance(data["account_id"], int)
    me = client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {data['access_token']}"})
    assert me.get_json()["id"] == data["account_id"]
    assert "tok_" not in done.get_data(as_text=True).split("<script")[0]  # not shown as text
    assert app.store.one("SELECT COUNT(*) AS n FROM tokens")["n"] == before + 1

    # Denied: the error goes to the opener the same way.
    page = client.get("/v1/oauth", query_string=_popup_query(creds))
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.get_data(as_text=True))
    assert token is not None
    form = dict(_popup_query(creds), csrf_token=token.group(1), decision="deny")
    denied = _payload(client.post("/v1/oauth", data=form).get_data(as_text=True))
    assert denied["message"]["data"] == {
        "error": "access_denied",
        "error_description": "The user denied access.",
        "state": "req-42",
    }


def test_popup_origin_must_match_exactly(
    client: Client, app: ServerApp, creds: Credentials
) -> None:
    trusted_domains.add(app.store, creds.app_id, ORIGIN)
    for origin in (ORIGIN + "/", "https://127.0.0.1:5555", "http://127.0.0.1:5556", "null"):
        answer = BufferedClient(app).get(
            "/v1/oauth", query_string=_popup_query(creds, origin=origin)
        )
        assert_error(answer, 400, "untrusted_origin")
