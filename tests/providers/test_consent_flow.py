"""Connecting an account through the consent page at a stand-in provider."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest
import requests

from kloudless.server.connectors import provider_tokens, providers
from kloudless.server.connectors.rclone_remotes import load_spec

from .conftest import STANDIN_LOGGERS, Live, connect, consent, redirect_params


def _accounts(live: Live) -> list[dict[str, object]]:
    return [
        dict(r)
        for r in live.server.app.store.all("SELECT * FROM accounts WHERE service != 'local'")
    ]


def test_the_page_lists_configured_providers(live: Live) -> None:
    page = requests.get(
        f"{live.base_url}/v1/oauth",
        params={"client_id": live.creds.app_id, "redirect_uri": "http://127.0.0.1:9/cb"},
        timeout=30,
    )
    assert "provider:" not in page.text
    live.configure("google")
    live.configure("dropbox")
    page = requests.get(
        f"{live.base_url}/v1/oauth",
        params={"client_id": live.creds.app_id, "redirect_uri": "http://127.0.0.1:9/cb"},
        timeout=30,
    )
    assert 'value="provider:google"' in page.text and "Your Google Drive account" in page.text
    assert 'value="provider:dropbox"' in page.text
    # A scope naming one service offers only that provider.
    page = requests.get(
        f"{live.base_url}/v1/oauth",
        params={
            "client_id": live.creds.app_id,
            "redirect_uri": "http://127.0.0.1:9/cb",
            "scope": "dropbox.storage",
        },
        timeout=30,
    )
    assert 'value="provider:dropbox"' in page.text and "provider:google" not in page.text


def test_the_whole_flow_creates_an_account_with_its_rclone_remote(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    live.configure("google")
    browser, answer = consent(live, "provider:google")
    params = redirect_params(answer)
    assert params["state"] == "app-state-1" and "code" in params
    # The provider saw the code flow with PKCE S256 and our callback.
    authorize = live.provider.state.token_requests[0]
    assert authorize["grant_type"] == "authorization_code"
    assert authorize["code_verifier"] and authorize["redirect_uri"].endswith("/v1/oauth/callback")
    account_id, token = connect(live)  # a second time: the same provider user
    rows = [r for r in _accounts(live) if r["service"] == "gdrive"]
    assert len(rows) == 1 and rows[0]["id"] == account_id  # reused, not duplicated
    row = rows[0]
    assert row["service"] == "gdrive" and row["account"] == "ada@example.com"
    assert row["token_expiry"]
    config = json.loads(str(row["config"]))
    assert config["provider"] == "google" and config["provider_user"] == "user-42"
    spec = load_spec(config, live.server.app.store.server_secret())
    section = spec.sections[spec.main]
    assert section["type"] == "drive" and section["client_id"] == "standin-client"
    assert section["token_url"].endswith("/token")
    stored = provider_tokens.from_rclone(section["token"])
    assert stored.access_token in live.provider.state.grant.access
    assert stored.refresh_token in live.provider.state.grant.refresh
    # Sealed: no token or secret in the database row.
    assert all(s not in json.dumps(row) for s in live.provider.secrets_seen())
    # The Kloudless token works for the account.
    me = requests.get(
        f"{live.base_url}/v1/accounts/me", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert me.status_code == 200 and me.json()["service"] == "gdrive"
    assert all(s not in me.text for s in live.provider.secrets_seen())
    # No token, code or secret in any log record of the server (the stand-in's own oauthlib
    # records are the provider's).
    leaks = [
        r.name
        for r in caplog.records
        if not r.name.startswith(STANDIN_LOGGERS)
        and any(s in r.getMessage() for s in live.provider.secrets_seen())
    ]
    assert leaks == []


def test_each_provider_gets_its_service(live: Live) -> None:
    for name, service in (("microsoft", "onedrivebiz"), ("dropbox", "dropbox"), ("box", "box")):
        live.configure(name)
        live.provider.state.require_pkce = name != "box"  # Box has no PKCE
        account_id, _ = connect(live, name)
        row = live.server.app.store.get_account(account_id)
        assert row is not None and row["service"] == service
        config = json.loads(row["config"])
        spec = load_spec(config, live.server.app.store.server_secret())
        if name == "microsoft":
            assert spec.sections["main"]["drive_id"] == "drive-7"
            assert spec.sections["main"]["drive_type"] == "business"
    # Box has no PKCE: no code_verifier was sent.
    assert "code_verifier" not in live.provider.state.token_requests[-1]


def test_denied_at_the_provider(live: Live) -> None:
    live.configure("google")
    before = _accounts(live)
    live.provider.state.decision = "access_denied"
    _, answer = consent(live, "provider:google")
    params = redirect_params(answer)
    assert params["error"] == "access_denied" and params["state"] == "app-state-1"
    assert "denied" in params["error_description"]
    assert _accounts(live) == before


def test_a_refused_code_and_an_unreachable_provider(live: Live) -> None:
    before = _accounts(live)
    live.configure("google", client_secret="wrong-secret")
    _, answer = consent(live, "provider:google")
    params = redirect_params(answer)
    assert (
        params["error"] == "server_error"
        and "could not be completed" in params["error_description"]
    )
    assert "wrong-secret" not in answer.headers["Location"]
    live.configure("google", token_url="http://127.0.0.1:9/token")
    _, answer = consent(live, "provider:google")
    assert redirect_params(answer)["error"] == "temporarily_unavailable"
    assert _accounts(live) == before


def test_callbacks_tied_to_no_sign_in_are_a_page(live: Live) -> None:
    live.configure("google")
    page = requests.get(
        f"{live.base_url}/v1/oauth/callback?state=nope&code=x",
        headers={"Accept": "text/html"},
        timeout=30,
    )
    assert page.status_code == 400 and "cannot be completed" in page.text
    # The callback is single use, even for the right browser: the application already got
    # its answer (a code here), so a replay gets a page, not a second answer.
    session, answer = _until_callback(live)
    done = session.get(answer, headers={"Accept": "text/html"}, timeout=30, allow_redirects=False)
    assert "code" in redirect_params(done)
    again = session.get(answer, headers={"Accept": "text/html"}, timeout=30, allow_redirects=False)
    assert again.status_code == 400 and "cannot be completed" in again.text


def _without(url: str, name: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != name]
    return parts._replace(query=urlencode(query)).geturl()


def _wrong_state(url: str) -> str:
    return _without(url, "state") + "&state=not-the-one-sent"


@pytest.mark.parametrize(
    ("case", "error", "says"),
    [
        ("another browser", "access_denied", "started in another browser"),
        ("wrong state", "access_denied", "did not belong to this sign-in"),
        ("expired", "access_denied", "expired"),
        ("no code", "server_error", "no authorization code"),
        ("provider error", "server_error", "reported an error: temporarily_unavailable"),
        ("unknown user", "server_error", "could not be completed"),
        ("unconfigured meanwhile", "server_error", "no longer configured"),
    ],
)
def test_failed_sign_ins_land_at_the_application_with_an_oauth_error(
    live: Live, case: str, error: str, says: str
) -> None:
    """Whatever goes wrong after the consent page sent the user to the provider, the user
    lands on the application's redirect URI with the OAuth error parameters and its state
    (the application can offer to try again), and nothing is created."""
    live.configure("google")
    before = _accounts(live)
    store = live.server.app.store
    if case == "provider error":
        live.provider.state.decision = "temporarily_unavailable"
    if case == "unknown user":
        live.provider.state.accept_tokens = False  # the identity call is refused
    browser, callback = _until_callback(live)
    if case == "another browser":
        browser = requests.Session()  # without the sign-in's cookie
    elif case == "wrong state":
        callback = _wrong_state(callback)
    elif case == "expired":
        store.execute("UPDATE provider_flows SET expires = 1")
    elif case == "no code":
        callback = _without(callback, "code")
    elif case == "unconfigured meanwhile":
        providers.remove(store, live.creds.app_id, "google")
    answer = browser.get(
        callback, headers={"Accept": "text/html"}, timeout=30, allow_redirects=False
    )
    params = redirect_params(answer)
    assert params["error"] == error and params["state"] == "s", params
    assert says in params["error_description"], params
    assert "code" not in params
    assert _accounts(live) == before
    # The sign-in is over: its callback cannot be used again.
    again = browser.get(
        callback, headers={"Accept": "text/html"}, timeout=30, allow_redirects=False
    )
    assert again.status_code == 400


def _until_callback(live: Live) -> tuple[requests.Session, str]:
    """Run the flow up to the provider's redirect to our callback. :returns: the browser and
    the callback URL (not yet visited)."""
    import re

    browser = requests.Session()
    query = {
        "client_id": live.creds.app_id,
        "response_type": "code",
        "redirect_uri": "http://127.0.0.1:9/app/callback",
        "state": "s",
    }
    page = browser.get(f"{live.base_url}/v1/oauth", params=query, timeout=30)
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert token is not None
    answer = browser.post(
        f"{live.base_url}/v1/oauth",
        data=dict(query, csrf_token=token.group(1), decision="allow", account_id="provider:google"),
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text
    at_provider = answer.headers["Location"]
    assert "code_challenge=" in at_provider and "code_challenge_method=S256" in at_provider
    assert parse_qs(urlsplit(at_provider).query)["access_type"] == ["offline"]
    back = browser.get(at_provider, allow_redirects=False, timeout=30)
    assert back.status_code == 302 and "/v1/oauth/callback?" in back.headers["Location"]
    return browser, back.headers["Location"]
