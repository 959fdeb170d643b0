"""The consent page people see: secure by default (existing accounts only with proof of
ownership), a signed and expiring form, security headers, HTML error pages, and the home page.

The flow of codes and tokens is in ``test_oauth.py``; the browser tests are in
``tests/browser``."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.test import Client

from kloudless.server import Settings, create_app, invitations
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials, bootstrap
from kloudless.version import VERSION

from .conftest import BufferedClient, assert_error, cli_options

#: The redirect of the attack in issue #24: a loopback address on the visitor's own machine.
LOOPBACK = "http://localhost:9/cb"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _query(creds: Credentials, **extra: str) -> dict[str, str]:
    query = {
        "client_id": creds.app_id,
        "response_type": "token",
        "redirect_uri": LOOPBACK,
        "state": "x",
    }
    query.update(extra)
    return query


def _form(client: Client, creds: Credentials, **extra: str) -> tuple[str, dict[str, str]]:
    query = _query(creds, **extra)
    page = client.get("/v1/oauth", query_string=query, headers=HTML)
    assert page.status_code == 200, page.get_data(as_text=True)
    text = page.get_data(as_text=True)
    hidden = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', text))
    return text, dict(hidden, decision="allow")


def _tokens(app: ServerApp) -> int:
    row = app.store.one("SELECT COUNT(*) AS n FROM tokens")
    assert row is not None
    return int(row["n"])


def test_the_attack_of_issue_24_gets_no_token(
    client: Client, app: ServerApp, creds: Credentials
) -> None:
    """Default settings: open the consent page, pick the existing account, press Allow."""
    text, form = _form(client, creds)
    # The page does not offer, or even name, the application's existing account.
    assert f'value="{creds.account_id}"' not in text and "(local, id" not in text
    assert 'name="invitation"' in text
    before = _tokens(app)
    for accept in ({}, HTML):
        answer = client.post(
            "/v1/oauth", data=dict(form, account_id=str(creds.account_id)), headers=accept
        )
        assert answer.status_code == 400 and "Location" not in answer.headers
        assert "access_token" not in answer.get_data(as_text=True)
    assert_error(
        client.post("/v1/oauth", data=dict(form, account_id=str(creds.account_id))),
        400,
        "invalid_parameters",
    )
    assert _tokens(app) == before


def test_invitation_code_connects_the_existing_account_once(
    client: Client, app: ServerApp, creds: Credentials
) -> None:
    code = invitations.create(app.store, creds.account_id)
    assert code.startswith("inv_") and code not in str(
        app.store.all("SELECT * FROM consent_invitations")[0][:]
    )
    _, form = _form(client, creds)
    form.update(account_id="invitation", invitation=code)
    answer = client.post("/v1/oauth", data=form, headers=HTML)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    fragment = parse_qs(urlsplit(answer.headers["Location"]).fragment)
    assert fragment["account_id"] == [str(creds.account_id)] and fragment["state"] == ["x"]
    me = client.get(
        "/v1/accounts/me", headers={"Authorization": f"Bearer {fragment['access_token'][0]}"}
    )
    assert me.get_json()["id"] == creds.account_id

    # Spent: the second use re-shows the form with an error, creates nothing, echoes nothing.
    before = _tokens(app)
    _, form = _form(client, creds)
    again = client.post("/v1/oauth", data=dict(form, account_id="invitation", invitation=code))
    text = again.get_data(as_text=True)
    assert again.status_code == 400 and again.mimetype == "text/html"
    assert "not valid" in text and code not in text and 'role="alert"' in text
    assert re.search(r'id="c-invitation"[^>]* checked', text)
    assert _tokens(app) == before


def test_invitation_is_bound_to_its_application_and_expires(
    client: Client, app: ServerApp, creds: Credentials
) -> None:
    other_app, _ = app.store.create_app("Other")
    other_account = app.store.create_account(other_app, "local", "theirs")
    foreign = invitations.create(app.store, other_account)
    expired = invitations.create(app.store, creds.account_id, ttl=-1)
    deleted_account = app.store.create_account(creds.app_id, "local", "gone")
    deleted = invitations.create(app.store, deleted_account)
    app.store.delete_account(deleted_account)
    before = _tokens(app)
    for code in (foreign, expired, deleted, "inv_guessed", "not-even-a-code", ""):
        _, form = _form(client, creds)
        answer = client.post("/v1/oauth", data=dict(form, account_id="invitation", invitation=code))
        assert answer.status_code == 400, code
    assert _tokens(app) == before
    with pytest.raises(LookupError):
        invitations.create(app.store, 999)


@pytest.fixture
def open_app(make_settings: Callable[..., Settings]) -> Iterator[ServerApp]:
    app = create_app(make_settings(oauth_existing_accounts="any"))
    yield app
    app.close()


def test_single_user_opt_in_lists_existing_accounts(open_app: ServerApp) -> None:
    creds = bootstrap(open_app.store)
    assert creds is not None
    client = BufferedClient(open_app)
    text, form = _form(client, creds)
    assert f'value="{creds.account_id}"' in text and "(local, id" in text
    assert 'name="invitation"' not in text
    answer = client.post("/v1/oauth", data=dict(form, account_id=str(creds.account_id)))
    assert answer.status_code == 302 and "access_token=" in answer.headers["Location"]


def test_settings_refuse_an_unknown_mode(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="oauth_existing_accounts"):
        Settings(data_dir=str(tmp_path), oauth_existing_accounts="everyone")


def test_changed_and_expired_requests(client: Client, app: ServerApp, creds: Credentials) -> None:
    _, form = _form(client, creds)
    form.update(account_id="new")
    # A hidden field changed after the page was shown (another, still valid, redirect_uri).
    changed = client.post("/v1/oauth", data=dict(form, redirect_uri="http://localhost:10/cb"))
    assert_error(changed, 400, "bad_request")
    page = client.post("/v1/oauth", data=dict(form, scope="calendar"), headers=HTML).get_data(
        as_text=True
    )
    assert "changed after it was shown" in page and "<form" not in page
    # An old page.
    app.settings.oauth_page_ttl = -1
    try:
        assert_error(client.post("/v1/oauth", data=form), 400, "request_expired")
        page = client.post("/v1/oauth", data=form, headers=HTML).get_data(as_text=True)
        assert "This page has expired" in page
    finally:
        app.settings.oauth_page_ttl = 3600
    assert client.post("/v1/oauth", data=form).status_code == 302  # the control case


def test_page_security_headers_and_cookie(client: Client, creds: Credentials) -> None:
    page = client.get("/v1/oauth", query_string=_query(creds, response_type="code"))
    csp = page.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'none'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self' http://localhost:9;",
        "base-uri 'none'",
    ):
        assert directive in csp + ";", directive
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/v1/oauth" in cookie
    text = page.get_data(as_text=True)
    assert '<link rel="stylesheet" href="/static/kloudless.css">' in text
    assert "<script" not in text and "style=" not in text  # nothing inline for the CSP to allow
    assert 'lang="en"' in text and 'name="viewport"' in text
    # Every visible field has a label.
    for ident in re.findall(r'<input type="(?:text|url|password)" [^>]*id="([\w-]+)"', text):
        assert f'<label for="{ident}">' in text, ident


def test_custom_scheme_redirect_is_allowed_by_the_csp(
    client: Client, app: ServerApp, creds: Credentials
) -> None:
    app.store.execute(
        "UPDATE apps SET redirect_uris = ? WHERE id = ?",
        ('["ktester://kloudless/callback"]', creds.app_id),
    )
    page = client.get(
        "/v1/oauth",
        query_string=_query(
            creds, response_type="code", redirect_uri="ktester://kloudless/callback"
        ),
    )
    assert "form-action 'self' ktester:;" in page.headers["Content-Security-Policy"] + ";"


def test_scope_in_plain_words(client: Client, creds: Credentials) -> None:
    text, _ = _form(client, creds, scope="any.storage calendar")
    assert "See, add, change and delete your files and folders" in text
    assert "See, add, change and delete your calendars and events" in text
    text, _ = _form(client, creds, scope="storage")
    assert "calendars" not in text.split("Which account?")[0]
    text, _ = _form(client, creds, scope="box.crm")
    assert "Use the permission “box.crm”" in text


def test_browser_errors_are_pages_api_errors_stay_json(client: Client) -> None:
    page = client.get(
        "/v1/oauth", query_string={"client_id": "nope", "redirect_uri": LOOPBACK}, headers=HTML
    )
    assert page.status_code == 400 and page.mimetype == "text/html"
    assert "Unknown or missing client_id" in page.get_data(as_text=True)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert_error(
        client.get("/v1/oauth", query_string={"client_id": "nope", "redirect_uri": LOOPBACK}),
        400,
        "invalid_parameters",
    )


def test_forged_post_from_a_browser_gets_a_page(client: Client, creds: Credentials) -> None:
    _, form = _form(client, creds)
    fresh = BufferedClient(client.application)  # no cookie: a cross-site post
    answer = fresh.post("/v1/oauth", data=dict(form, account_id="new"), headers=HTML)
    assert answer.status_code == 403 and answer.mimetype == "text/html"
    assert "This form cannot be used" in answer.get_data(as_text=True)


def test_home_page(client: Client) -> None:
    home = client.get("/")
    assert home.status_code == 200 and home.mimetype == "text/html"
    text = home.get_data(as_text=True)
    assert VERSION in text and 'href="/v1/openapi.json"' in text
    assert "kloudless.readthedocs.io" in text and "/v1/oauth?client_id=" in text
    assert "frame-ancestors 'none'" in home.headers["Content-Security-Policy"]
    # API paths keep answering JSON.
    assert_error(client.get("/v1/no-such-thing"), 404, "not_found")
    assert_error(client.get("/v1/accounts"), 401, "authentication_required")


def test_static_files(client: Client) -> None:
    css = client.get("/static/kloudless.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert b"@media (max-width" in css.data and b"url(" not in css.data  # nothing fetched
    assert client.get("/static/oob.js").mimetype == "text/javascript"
    for missing in ("/static/iexd.html", "/static/..%2fpages.py", "/static/pages.py"):
        assert_error(client.get(missing), 404, "not_found")


def test_cli_invite(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    from kloudless.cli import main

    settings = make_settings()
    data = cli_options(settings)
    app = create_app(settings)
    creds = bootstrap(app.store)
    assert creds is not None
    try:
        assert main(["accounts", "invite", *data, str(creds.account_id)]) == 0
        out = capsys.readouterr().out
        code = re.search(r"(inv_\S+)", out)
        assert code is not None and "one use" in out
        row = invitations.lookup(app.store, creds.app_id, code.group(1))
        assert row is not None and row["id"] == creds.account_id
        assert main(["accounts", "invite", *data, "99"]) == 1
        assert main(["accounts", "invite", *data, "1", "--hours", "0"]) == 2
    finally:
        app.close()


def test_invitation_codes_expire_by_time(app: ServerApp, creds: Credentials) -> None:
    code = invitations.create(app.store, creds.account_id, ttl=3600)
    assert invitations.lookup(app.store, creds.app_id, code) is not None
    app.store.execute("UPDATE consent_invitations SET expires = ?", (time.time() - 1,))
    assert invitations.lookup(app.store, creds.app_id, code) is None
    assert not invitations.spend(app.store, code)
