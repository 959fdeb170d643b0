"""examples/django_views.py: the README's Django sample, driven with Django's RequestFactory and
signed-cookie sessions against the live server's consent page."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from example_helpers import EXAMPLES, ROOT, TIMEOUT, consent, example_env, load_example

REDIRECT_URL = "http://127.0.0.1:8000/callback"


class User:
    """The little of a Django user the sample needs."""

    is_authenticated = True

    def __init__(self) -> None:
        self.kloudless_token: str | None = None
        self.saves = 0

    def save(self) -> None:
        self.saves += 1


@pytest.fixture
def django_setup(creds: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Configure Django once for this process and point the SDK at the live server."""
    import django
    from django.conf import settings
    from django.test.utils import override_settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY="tests-only-secret",
            INSTALLED_APPS=["django.contrib.sessions"],
            SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
            ALLOWED_HOSTS=["testserver"],
        )
        django.setup()
    import kloudless

    monkeypatch.setitem(kloudless.configuration, "base_url", creds.base_url)
    with override_settings(
        KLOUDLESS_APP_ID=creds.app_id,
        KLOUDLESS_API_KEY=creds.api_key,
        KLOUDLESS_REDIRECT_URL=REDIRECT_URL,
    ):
        yield load_example("django_views")


def start(views: Any) -> tuple[str, str]:
    """Run the start view; return the consent URL and the saved (signed-cookie) session key."""
    from django.contrib.sessions.backends.signed_cookies import SessionStore
    from django.test import RequestFactory

    request = RequestFactory().get("/start")
    request.session = SessionStore()
    response = views.start_authorization_flow(request)
    assert response.status_code == 302
    request.session.save()
    return response["Location"], request.session.session_key


def call_back(views: Any, location: str, session_key: str, user: Any = None) -> tuple[Any, str]:
    """Run the callback view for the API's redirect; return the response and the new session key."""
    from django.contrib.sessions.backends.signed_cookies import SessionStore
    from django.test import RequestFactory

    assert location.startswith(REDIRECT_URL + "?")
    request = RequestFactory().get("/callback", dict(parse_qsl(urlsplit(location).query)))
    request.session = SessionStore(session_key=session_key)
    request.user = user if user is not None else User()
    response = views.callback(request)
    request.session.save()
    return response, request.session.session_key


def test_authorization_code_flow(django_setup: Any, creds: Any) -> None:
    views = django_setup
    consent_url, session_key = start(views)
    query = dict(parse_qsl(urlsplit(consent_url).query))
    assert consent_url.startswith(creds.base_url + "/v1/oauth?")
    assert query["scope"] == "storage" and query["redirect_uri"] == REDIRECT_URL

    with requests.Session() as browser:
        location = consent(browser, consent_url)
    user = User()
    response, after_key = call_back(views, location, session_key, user)
    assert response.status_code == 200, response.content
    assert b"connected successfully" in response.content
    assert user.saves == 1 and user.kloudless_token

    # The stored token works against the API.
    from kloudless import Account

    with Account(token=user.kloudless_token, base_url=creds.base_url) as account:
        assert account.get().data["type"] == "account"

    # The state was taken out of the session: a second callback with it is refused...
    again, _ = call_back(views, location, after_key)
    assert again.status_code == 400 and b"No authorization in progress" in again.content
    # ...and replaying the old session cookie fails on the single-use code.
    replay, _ = call_back(views, location, session_key)
    assert replay.status_code == 400 and b"refused" in replay.content


def test_denied_and_forged(django_setup: Any) -> None:
    views = django_setup
    consent_url, session_key = start(views)
    with requests.Session() as browser:
        location = consent(browser, consent_url, decision="deny")
    denied, _ = call_back(views, location, session_key)
    assert denied.status_code == 400 and b"access_denied" in denied.content

    _, session_key = start(views)
    forged, _ = call_back(views, REDIRECT_URL + "?code=x&state=forged", session_key)
    assert forged.status_code == 400 and b"state" in forged.content


def test_runs_as_a_script(creds: Any) -> None:
    # `python examples/django_views.py check` configures Django from the environment.
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "django_views.py"), "check"],
        capture_output=True,
        text=True,
        env=example_env(creds),
        timeout=TIMEOUT,
        check=False,
        cwd=str(ROOT),
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
