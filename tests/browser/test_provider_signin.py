"""Signing in at a provider from the consent page in a real browser: the page lists the
provider, Allow goes to the (stand-in) provider's authorization page and back through
``/v1/oauth/callback`` to the application, with the browser's own cookie handling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kloudless.server.connectors import providers
from tests.providers.standins import Provider

from .conftest import AppSite, Live
from .test_consent_page import account_of, authorize_url, exchange, redirected, serious_violations


@pytest.fixture
def standin() -> Iterator[Provider]:
    provider = Provider().start()
    yield provider
    provider.stop()


def test_connect_a_google_drive_account_in_a_browser(
    page: Any, live: Live, app_site: AppSite, standin: Provider
) -> None:
    app = providers.build("google", standin.settings())
    providers.save(live.store, live.creds.app_id, app)
    page.goto(authorize_url(live, app_site, scope="gdrive"))
    choice = page.get_by_label("Your Google Drive account")
    assert choice.is_checked()  # the scope names the provider: pre-selected
    assert serious_violations(page) == []
    page.get_by_role("button", name="Allow access").click()
    query = redirected(page, app_site)
    assert query["state"] == ["st-123"]
    token = exchange(live, app_site, query["code"][0])
    account = account_of(live, token["access_token"])
    assert account["service"] == "gdrive" and account["account"] == "ada@example.com"
    # The browser went through the provider with PKCE and came back once.
    assert [r["grant_type"] for r in standin.state.token_requests] == ["authorization_code"]
    assert standin.state.token_requests[0]["code_verifier"]


def test_denied_at_the_provider_in_a_browser(
    page: Any, live: Live, app_site: AppSite, standin: Provider
) -> None:
    providers.save(live.store, live.creds.app_id, providers.build("dropbox", standin.settings()))
    standin.state.decision = "access_denied"
    page.goto(authorize_url(live, app_site, scope="dropbox"))
    page.get_by_role("button", name="Allow access").click()
    query = redirected(page, app_site)
    assert query["error"] == ["access_denied"] and query["state"] == ["st-123"]
    assert len(live.store.list_accounts()) == 1  # only the first-start local account
