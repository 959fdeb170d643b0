"""The README's Django sample: connect a user's account with the OAuth authorization-code flow.

Add the two views to your project's ``urls.py`` (or include :data:`urlpatterns`) and set, in your
Django settings, ``KLOUDLESS_APP_ID``, ``KLOUDLESS_API_KEY`` and ``KLOUDLESS_REDIRECT_URL`` (the
full URL of :func:`callback`)::

    from django.urls import include, path
    urlpatterns = [path("kloudless/", include("django_views"))]

:func:`start_authorization_flow` sends the user to the API's consent page and keeps the ``state``
in the user's session; :func:`callback` checks it (once: it is removed from the session), trades
the code for a bearer token, verifies that the token belongs to this application, and stores it
with :func:`save_token`, which, as in the original sample, sets ``request.user.kloudless_token``
and saves the user. Replace :func:`save_token` to store tokens elsewhere; never put a token in a
cookie or a URL.

Run it on its own against the local server (no database needed; the token is not stored)::

    KLOUDLESS_APP_ID=... KLOUDLESS_API_KEY=... KLOUDLESS_BASE_URL=http://localhost:8002 \\
        python examples/django_views.py runserver 127.0.0.1:8000

then open http://127.0.0.1:8000/.
"""

from __future__ import annotations

import logging
import os
import sys

from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.urls import path
from django.views.decorators.http import require_GET

from kloudless import get_authorization_url, get_token_from_code, verify_token
from kloudless.exceptions import APIException, KloudlessException, OauthFlowFailed

logger = logging.getLogger(__name__)

#: Session key of the pending authorization's state.
STATE_KEY = "kloudless_authorization_state"


def save_token(request: HttpRequest, token: str) -> None:
    """Keep the new bearer token for the current user (replace this to suit your models).

    :param request: the callback request.
    :param token: the bearer token; store it server side only.
    """
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        user.kloudless_token = token
        user.save()


@require_GET
def start_authorization_flow(request: HttpRequest) -> HttpResponse:
    """Redirect the user to start the authorization flow."""
    url, state = get_authorization_url(
        app_id=settings.KLOUDLESS_APP_ID,
        redirect_uri=settings.KLOUDLESS_REDIRECT_URL,
        scope="storage",
    )
    request.session[STATE_KEY] = state
    return HttpResponseRedirect(url)


@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """The endpoint for ``settings.KLOUDLESS_REDIRECT_URL``."""
    orig_state = request.session.pop(STATE_KEY, None)
    if orig_state is None:
        return HttpResponseBadRequest("No authorization in progress; start again.")
    params = request.GET.dict()
    try:
        token = get_token_from_code(
            app_id=settings.KLOUDLESS_APP_ID,
            api_key=settings.KLOUDLESS_API_KEY,
            orig_state=orig_state,
            orig_redirect_uri=settings.KLOUDLESS_REDIRECT_URL,
            **params,
        )
        token_info = verify_token(settings.KLOUDLESS_APP_ID, token)
    except OauthFlowFailed as exc:
        return HttpResponseBadRequest(f"Authorization failed: {exc}")
    except APIException as exc:
        logger.warning("Kloudless API error during the OAuth callback: %s", exc.status)
        if exc.status is not None and 400 <= exc.status < 500:
            # e.g. a reused or expired code: the user can simply start again.
            return HttpResponseBadRequest("The authorization was refused; start again.")
        return HttpResponse("The Kloudless API failed; try again later.", status=502)
    except KloudlessException:
        return HttpResponse("The Kloudless API could not be reached.", status=502)
    save_token(request, token)
    return HttpResponse(f"Account {token_info.get('account_id')} connected successfully.")


def index(request: HttpRequest) -> HttpResponse:
    """A start page for running this module on its own."""
    return HttpResponse('<a href="start">Connect a storage account</a>')


urlpatterns = [
    path("", index),
    path("start", start_authorization_flow),
    path("callback", callback),
]


def configure_from_environment() -> None:
    """Configure Django for running this module on its own (signed-cookie sessions, no database)."""
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or os.urandom(32).hex(),
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        SESSION_COOKIE_HTTPONLY=True,
        KLOUDLESS_APP_ID=os.environ.get("KLOUDLESS_APP_ID", ""),
        KLOUDLESS_API_KEY=os.environ.get("KLOUDLESS_API_KEY", ""),
        KLOUDLESS_REDIRECT_URL=os.environ.get(
            "KLOUDLESS_REDIRECT_URL", "http://127.0.0.1:8000/callback"
        ),
    )


if __name__ == "__main__":
    configure_from_environment()
    from django.core.management import execute_from_command_line

    execute_from_command_line([sys.argv[0], *(sys.argv[1:] or ["runserver", "127.0.0.1:8000"])])
