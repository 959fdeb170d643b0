"""The calendar contract: one set of calendar API tests (test_contract.py) run against every
calendar service: ``local``, ``caldav`` (Radicale) and the cloud calendars, each against its
loopback stand-in (``google_calendar``: google_standin.py; ``outlook_calendar``:
tests/providers/graph_standin.py). A new calendar service adds its
name to :data:`CALENDAR_SERVICES` and a ``<name>_auth`` fixture giving Bearer headers of a
fresh account whose primary calendar is empty."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from werkzeug.test import Client

from kloudless.server.connectors import providers
from tests.dav import conftest as dav
from tests.providers.standins import Provider

from .google_standin import GoogleProvider

#: The services the contract runs against (each has a ``<name>_auth`` fixture).
CALENDAR_SERVICES = ["local", "caldav", "google_calendar", "outlook_calendar"]
# The API server, its credentials and the CalDAV fixtures of tests/dav.
app, api, creds = dav.app, dav.api, dav.creds
caldav_server, caldav_auth, _close_pooled_clients = (
    dav.caldav_server,
    dav.caldav_auth,
    dav._close_pooled_clients,
)
#: Where the application wants the user back (the werkzeug client stops at it).
APP_REDIRECT = "http://127.0.0.1:9/app/callback"


def new_event(api: Client, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    """Create an event in the primary calendar. :returns: its JSON."""
    created = api.post("/v1/accounts/me/cal/calendars/primary/events", headers=auth, json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    return dict(created.get_json())


@pytest.fixture
def local_auth(creds: Any) -> dict[str, str]:
    """Bearer headers of the first-start ``local`` account."""
    return {"Authorization": f"Bearer {creds.token}"}


@pytest.fixture(params=CALENDAR_SERVICES)
def calendar_auth(request: pytest.FixtureRequest) -> dict[str, str]:
    """Bearer headers of an account of each calendar service (parametrized)."""
    return dict(request.getfixturevalue(f"{request.param}_auth"))


@pytest.fixture(scope="session")
def google() -> Iterator[GoogleProvider]:
    """The Google stand-in: OAuth (tests/providers) + Calendar v3 on one API host."""
    provider = GoogleProvider().start()
    yield provider
    provider.stop()


def connect_provider(
    api: Client, app: Any, creds: Any, provider: str, scope: str, standin: Any
) -> dict[str, Any]:
    """Connect an account through the consent page's provider choice, the stand-in's
    authorization endpoint and ``/v1/oauth/callback``, then exchange the code.

    :returns: the token answer (``account_id``, ``access_token``)."""
    providers.save(app.store, creds.app_id, providers.build(provider, standin.settings()))
    query = {
        "client_id": creds.app_id,
        "response_type": "code",
        "redirect_uri": APP_REDIRECT,
        "scope": scope,
        "state": "s1",
    }
    html = {"Accept": "text/html"}
    page = api.get("/v1/oauth", query_string=query, headers=html)
    assert page.status_code == 200, page.get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.get_data(as_text=True))
    assert found is not None
    form = dict(
        query, csrf_token=found.group(1), decision="allow", account_id=f"provider:{provider}"
    )
    to_provider = api.post("/v1/oauth", data=form, headers=html)
    assert to_provider.status_code == 302, to_provider.get_data(as_text=True)
    back = requests.get(to_provider.headers["Location"], allow_redirects=False, timeout=30)
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["Location"])
    done = api.get(callback.path, query_string=callback.query, headers=html)
    assert done.status_code == 302, done.get_data(as_text=True)
    code = re.search(r"[?&]code=([^&]+)", done.headers["Location"])
    assert code is not None, done.headers["Location"]
    grant = api.post(
        "/v1/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code.group(1),
            "client_id": creds.app_id,
            "client_secret": creds.api_key,
            "redirect_uri": APP_REDIRECT,
        },
    )
    assert grant.status_code == 200, grant.get_data(as_text=True)
    return dict(grant.get_json())


@pytest.fixture
def google_calendar_auth(
    api: Client, app: Any, creds: Any, google: GoogleProvider
) -> dict[str, str]:
    """Bearer headers of a ``google_calendar`` account (a calendar-only sign-in) over a
    fresh stand-in whose primary calendar is empty."""
    google.reset()
    grant = connect_provider(api, app, creds, "google", "google_calendar", google)
    return {"Authorization": f"Bearer {grant['access_token']}"}


@pytest.fixture(scope="session")
def microsoft() -> Iterator[Provider]:
    """The Microsoft stand-in (tests/providers): OAuth, Graph's identity calls and the Graph
    calendar API (tests/providers/graph_standin.py) on one API host."""
    provider = Provider().start()
    yield provider
    provider.stop()


@pytest.fixture
def outlook_calendar_auth(api: Client, app: Any, creds: Any, microsoft: Provider) -> dict[str, str]:
    """Bearer headers of an ``outlook_calendar`` account (a calendar-only sign-in) over a
    fresh Graph stand-in whose default calendar is empty."""
    microsoft.reset()
    grant = connect_provider(api, app, creds, "microsoft", "outlook_calendar", microsoft)
    return {"Authorization": f"Bearer {grant['access_token']}"}
