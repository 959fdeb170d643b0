"""Shared fixtures: one stand-in provider and one live server (waitress on loopback) per
module; each test starts from a fresh provider state and configures the provider it needs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from kloudless.server import Settings
from kloudless.server.bootstrap import Credentials
from kloudless.server.connectors import providers
from kloudless.server.runner import ServerThread

from .standins import Provider

#: Where the application wants the user back (nothing listens there: the test stops at it).
APP_REDIRECT = "http://127.0.0.1:9/app/callback"
MAX_HOPS = 10
#: The stand-in authorization server's own oauthlib loggers (the provider's logs, not ours).
STANDIN_LOGGERS = ("oauthlib.oauth2.rfc6749.grant_types", "oauthlib.oauth2.rfc6749.endpoints")


@dataclass
class Live:
    server: ServerThread
    creds: Credentials
    provider: Provider

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def configure(self, name: str = "google", **overrides: Any) -> providers.ProviderApp:
        app = providers.build(name, {**self.provider.settings(), **overrides})
        providers.save(self.server.app.store, self.creds.app_id, app)
        return app


@pytest.fixture(scope="module")
def standin() -> Iterator[Provider]:
    provider = Provider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def live_module(standin: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data = tmp_path_factory.mktemp("providers-data")
    server = ServerThread(
        Settings(data_dir=str(data), host="127.0.0.1", port=0, allow_upstream=["127.0.0.1"])
    )
    assert server.credentials is not None
    server.start()
    try:
        yield Live(server, server.credentials, standin)
    finally:
        server.stop()


@pytest.fixture
def live(live_module: Live) -> Iterator[Live]:
    live_module.provider.reset()
    store = live_module.server.app.store
    store.execute("DELETE FROM provider_apps")
    yield live_module


def consent(
    live: Live, choice: str, scope: str = "all", response_type: str = "code"
) -> tuple[requests.Session, requests.Response]:
    """Open the consent page like a browser, choose ``choice`` and follow the redirects until
    the application's redirect URI. :returns: the browser session and the last answer (the
    redirect to the application, or a page)."""
    browser = requests.Session()
    query = {
        "client_id": live.creds.app_id,
        "response_type": response_type,
        "redirect_uri": APP_REDIRECT,
        "scope": scope,
        "state": "app-state-1",
    }
    page = browser.get(f"{live.base_url}/v1/oauth", params=query, headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert token is not None
    form = dict(query, csrf_token=token.group(1), decision="allow", account_id=choice)
    answer = browser.post(
        f"{live.base_url}/v1/oauth",
        data=form,
        allow_redirects=False,
        headers={"Accept": "text/html"},
    )
    for _ in range(MAX_HOPS):
        location = answer.headers.get("Location", "")
        if answer.status_code != 302 or location.startswith(APP_REDIRECT):
            return browser, answer
        answer = browser.get(location, allow_redirects=False, headers={"Accept": "text/html"})
    raise AssertionError("too many redirects")


def redirect_params(answer: requests.Response) -> dict[str, str]:
    """:returns: the query parameters of the redirect to the application."""
    location = answer.headers.get("Location", "")
    assert answer.status_code == 302, answer.text + repr(answer.url)
    assert location.startswith(APP_REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(live: Live, code: str) -> dict[str, Any]:
    answer = requests.post(
        f"{live.base_url}/v1/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": live.creds.app_id,
            "client_secret": live.creds.api_key,
            "redirect_uri": APP_REDIRECT,
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def connect(live: Live, provider: str = "google") -> tuple[int, str]:
    """Connect an account through the consent page. :returns: (account id, Kloudless token)."""
    _, answer = consent(live, f"provider:{provider}")
    params = redirect_params(answer)
    assert "code" in params, params
    grant = exchange(live, params["code"])
    return int(grant["account_id"]), str(grant["access_token"])
