"""OAuth: consent page with CSRF, code grant, implicit grant, code rules, token verification."""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.test import Client, TestResponse

from kloudless.server import invitations
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials

from .conftest import assert_error

REDIRECT = "http://localhost:8020/callback"


def _consent(client: Client, creds: Credentials, **extra: str) -> tuple[str, dict[str, str]]:
    params = {
        "client_id": creds.app_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "storage",
        "state": "s t/a+te",
    }
    params.update(extra)
    page = client.get("/v1/oauth", query_string=params)
    assert page.status_code == 200 and page.mimetype == "text/html"
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.get_data(as_text=True))
    assert token is not None
    # The existing account is reached with an operator's invitation code (the default rule).
    code = invitations.create(client.application.store, creds.account_id)  # type: ignore[attr-defined]
    form = dict(
        params,
        csrf_token=token.group(1),
        decision="allow",
        account_id="invitation",
        invitation=code,
    )
    return page.get_data(as_text=True), form


def _submit(client: Client, form: dict[str, str]) -> TestResponse:
    return client.post("/v1/oauth", data=form)


def _exchange(
    client: Client,
    creds: Credentials,
    code: str,
    redirect_uri: str = REDIRECT,
    content_type: str = "application/x-www-form-urlencoded",
    **extra: str,
) -> TestResponse:
    from urllib.parse import urlencode

    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": creds.app_id,
        "client_secret": creds.api_key,
    }
    body.update(extra)
    return client.post("/v1/oauth/token", data=urlencode(body), content_type=content_type)


def _code(client: Client, creds: Credentials) -> str:
    _, form = _consent(client, creds)
    response = _submit(client, form)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["state"] == ["s t/a+te"]
    return query["code"][0]


def test_code_flow(client: Client, creds: Credentials) -> None:
    page, _ = _consent(client, creds)
    assert "local" in page
    code = _code(client, creds)
    # The 2.x SDK sends the literal content type "application/form-urlencoded".
    response = _exchange(client, creds, code, content_type="application/form-urlencoded")
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["account_id"] == creds.account_id
    verify = client.get(
        "/v1/oauth/token", headers={"Authorization": f"Bearer {body['access_token']}"}
    ).get_json()
    assert verify == {
        "client_id": creds.app_id,
        "account_id": creds.account_id,
        "scope": "storage",
        "token_type": "Bearer",
    }


def test_code_single_use(client: Client, creds: Credentials) -> None:
    code = _code(client, creds)
    assert _exchange(client, creds, code).status_code == 200
    assert_error(_exchange(client, creds, code), 400, "invalid_grant")


def test_code_bound_to_redirect_uri_and_client(
    client: Client, app: ServerApp, creds: Credentials
) -> None:
    code = _code(client, creds)
    assert_error(
        _exchange(client, creds, code, redirect_uri=REDIRECT + "/other"), 400, "invalid_grant"
    )
    other_app, other_key = app.store.create_app("other")
    response = _exchange(client, creds, code, client_id=other_app, client_secret=other_key)
    assert_error(response, 400, "invalid_grant")
    assert_error(_exchange(client, creds, code, client_secret="wrong"), 401, "unauthorized")


def test_code_expires(client: Client, app: ServerApp, creds: Credentials) -> None:
    code = _code(client, creds)
    app.store.execute("UPDATE oauth_codes SET expires = 0")
    assert_error(_exchange(client, creds, code), 400, "invalid_grant")


def test_csrf_required(client: Client, creds: Credentials) -> None:
    _, form = _consent(client, creds)
    forged = dict(form, csrf_token="0" * 64)
    assert_error(_submit(client, forged), 403, "forbidden")
    fresh = Client(client.application)  # no cookie: a cross-site post
    assert_error(fresh.post("/v1/oauth", data=form), 403, "forbidden")


def test_new_account_and_implicit_grant(client: Client, app: ServerApp, creds: Credentials) -> None:
    _, form = _consent(client, creds, response_type="token")
    form.update(account_id="new", new_account="fresh")
    response = _submit(client, form)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.query == ""
    fragment = parse_qs(location.fragment)
    assert fragment["token_type"] == ["Bearer"] and fragment["state"] == ["s t/a+te"]
    me = client.get(
        "/v1/accounts/me", headers={"Authorization": f"Bearer {fragment['access_token'][0]}"}
    )
    assert me.get_json()["account"] == "fresh"


def test_deny(client: Client, creds: Credentials) -> None:
    _, form = _consent(client, creds)
    response = _submit(client, dict(form, decision="deny"))
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["access_denied"] and "code" not in query


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": "nope", "redirect_uri": REDIRECT},
        {"redirect_uri": REDIRECT},
        {"client_id": "APP", "redirect_uri": ""},
        {"client_id": "APP", "redirect_uri": REDIRECT, "response_type": "bogus"},
    ],
)
def test_bad_authorize_requests(client: Client, creds: Credentials, params: dict[str, Any]) -> None:
    query = {k: (creds.app_id if v == "APP" else v) for k, v in params.items()}
    assert_error(client.get("/v1/oauth", query_string=query), 400, "invalid_parameters")


def test_verify_invalid_token_is_400(client: Client) -> None:
    assert_error(
        client.get("/v1/oauth/token", headers={"Authorization": "Bearer nope"}),
        400,
        "invalid_token",
    )
    assert_error(client.get("/v1/oauth/token"), 400, "invalid_token")


def test_state_and_code_not_logged(
    client: Client, creds: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    code = _code(client, creds)
    token = _exchange(client, creds, code).get_json()["access_token"]
    text = caplog.text
    for secret in (code, token, creds.api_key, "s t/a+te"):
        assert secret not in text


def test_new_accounts_only(make_settings: Callable[..., Any]) -> None:
    from kloudless.server import create_app
    from kloudless.server.bootstrap import bootstrap

    app = create_app(make_settings(oauth_existing_accounts="none"))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        client = Client(app)
        page, form = _consent(client, creds)
        assert f'value="{creds.account_id}"' not in page and 'name="invitation"' not in page
        # Not even an invitation code reaches an existing account in this mode.
        assert_error(_submit(client, form), 400, "invalid_parameters")
        by_id = dict(form, account_id=str(creds.account_id))
        assert_error(_submit(client, by_id), 400, "invalid_parameters")
        created = _submit(client, dict(form, account_id="new"))
        assert created.status_code == 302 and "code=" in created.headers["Location"]
    finally:
        app.close()
