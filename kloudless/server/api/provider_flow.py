"""The consent page's provider choice: from the page to the provider and back.

1. :func:`start` (the consent form posted with ``account_id=provider:<name>``): records the
   sign-in (:mod:`kloudless.server.provider_flows`), sets a ``SameSite=Lax`` cookie that
   binds it to this browser (a ``Strict`` cookie would not come back from the provider's
   site), and redirects to the provider's authorization endpoint (code flow, ``state``, PKCE
   where supported) with the redirect URI ``<server>/v1/oauth/callback``.
2. :func:`complete` (``GET /v1/oauth/callback``): claims the sign-in by its ``state`` (once),
   checks the browser, then exchanges the code
   (:mod:`~kloudless.server.connectors.provider_tokens`), asks the provider who the user is,
   and builds the account's config. Every upstream call is
   made before anything is written; :mod:`kloudless.server.api.oauth` then creates (or, for
   the same provider user, reuses) the account and finishes the Kloudless flow.

Every failure of a sign-in is :class:`FlowFailed` with the OAuth error code for the
application's redirect URI, so the user lands back at the application (which can offer to try
again), never at a dead end: the user denied access at the provider, an expired sign-in, a
provider error, a missing or refused code, an unreachable provider, a provider that does not
say who the user is, a provider no longer configured, a callback from another browser than the
one that began the sign-in, and a ``state`` that matches no sign-in while the browser's cookie
names one (that sign-in ends). Only a callback that can be tied to no sign-in at all (no
matching ``state`` and no sign-in begun by this browser, or one completed already) is an
:class:`~kloudless.server.errors.ApiError` shown as a page, since there is no trustworthy
redirect URI to send it to. The provider's ``error_description`` is never passed on (it is the
provider's text, not the server's).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from .. import provider_flows
from ..connectors import provider_connect, provider_tokens, providers
from ..context import RequestContext
from ..errors import ApiError, invalid_parameters
from ..outbound import policy_for

log = logging.getLogger("kloudless.server.oauth")

#: The cookie binding a sign-in to the browser that started it.
FLOW_COOKIE = "kloudless_provider"
CALLBACK_PATH = "v1/oauth/callback"
#: The prefix of the consent form's ``account_id`` for a provider choice.
CHOICE_PREFIX = "provider:"


class FlowFailed(Exception):
    """The sign-in failed in a way the application is told of.

    :param request: the Kloudless authorization request of the sign-in.
    :param error: the OAuth error code for the application (``access_denied``,
        ``server_error``, ``temporarily_unavailable``).
    :param description: a plain explanation (no secrets, no provider text).
    """

    def __init__(self, request: dict[str, str], error: str, description: str) -> None:
        super().__init__(description)
        self.request = request
        self.error = error
        self.description = description


@dataclass
class Connected:
    """A finished sign-in: the Kloudless request to finish and the account to create."""

    request: dict[str, str]
    app_id: str
    provider: str
    identity: provider_connect.Identity
    config: dict[str, Any]
    token_expiry: str | None


def callback_uri(ctx: RequestContext) -> str:
    """:returns: the redirect URI registered at the providers."""
    return ctx.site_url(CALLBACK_PATH)


def offered(ctx: RequestContext, app_id: str, scope: str) -> list[providers.ProviderApp]:
    """:returns: the configured providers the consent page offers for ``scope``: those whose
    name or service ids a scope item names (``gdrive``, ``dropbox.storage``, ``google``), else
    every configured one (``all``, ``storage``, ... but not a scope naming only DAV services,
    which the caller checks)."""
    configured = providers.configured(ctx.store, app_id)
    named = set()
    for item in scope.split():
        word = item.split(":", 1)[0].split(".", 1)[0].lower()
        named.add(word)
    picked = [
        p
        for p in configured
        if named & {p.name, *p.provider.services, p.provider.calendar_service} - {""}
    ]
    return picked or configured


def start(ctx: RequestContext, params: dict[str, str], app_id: str, name: str) -> Response:
    """Send the browser to the provider ``name`` (see the module docstring).

    :raises ApiError: 400 when the provider is not configured for the application.
    """
    app = providers.load(ctx.store, app_id, name)
    if app is None:
        raise invalid_parameters("That provider is not available for this application.")
    state = provider_flows.new_state()
    apis = providers.requested_apis(params.get("scope") or "all", app.provider)
    auth = provider_tokens.authorization(
        app, callback_uri(ctx), state, providers.scopes_for(app, apis)
    )
    binding = secrets.token_urlsafe(32)
    provider_flows.begin(
        ctx.store,
        state,
        app_id,
        app.name,
        params,
        auth.code_verifier,
        binding,
        ctx.settings.oauth_page_ttl,
    )
    response = redirect(auth.url, 302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.set_cookie(
        FLOW_COOKIE,
        binding,
        httponly=True,
        samesite="Lax",
        path="/" + CALLBACK_PATH,
        secure=ctx.request.scheme == "https",
        max_age=int(ctx.settings.oauth_page_ttl),
    )
    return response


def complete(ctx: RequestContext) -> Connected:
    """Handle the provider's redirect back (see the module docstring).

    :raises ApiError: a callback that belongs to no sign-in of this browser.
    :raises FlowFailed: the sign-in failed; tell the application.
    """
    args = ctx.request.args
    cookie = ctx.request.cookies.get(FLOW_COOKIE, "")
    flow = provider_flows.claim(ctx.store, args.get("state", ""))
    if flow is None:
        mine = provider_flows.claim_for_browser(ctx.store, cookie)
        if mine is None:
            raise ApiError(
                400,
                "invalid_state",
                "This sign-in cannot be completed: it is unknown, was completed already, or "
                "the link was changed.",
            )
        title = providers.provider(mine.provider).title
        raise FlowFailed(
            mine.request,
            "access_denied",
            f"The answer from {title} did not belong to this sign-in (its state did not "
            "match); start again.",
        )
    if not flow.same_browser(cookie):
        # The application still hears of it (no code: a login CSRF gains nothing).
        raise FlowFailed(
            flow.request,
            "access_denied",
            "This sign-in was started in another browser; start again from the application.",
        )
    title = providers.provider(flow.provider).title
    if flow.expired:
        raise FlowFailed(flow.request, "access_denied", "The sign-in took too long; it expired.")
    error = args.get("error", "")
    if error:
        log.info(
            "provider sign-in failed at %s: %s (request_id=%s)",
            flow.provider,
            error[:100],
            ctx.request_id,
        )
        if error == "access_denied":
            raise FlowFailed(flow.request, "access_denied", f"Access was denied at {title}.")
        raise FlowFailed(flow.request, "server_error", f"{title} reported an error: {error[:60]}.")
    code = args.get("code", "")
    if not code:
        raise FlowFailed(flow.request, "server_error", f"{title} sent no authorization code.")
    app = providers.load(ctx.store, flow.app_id, flow.provider)
    if app is None:
        raise FlowFailed(
            flow.request, "server_error", f"{title} is no longer configured on this server."
        )
    policy = policy_for(ctx.settings)
    try:
        token = provider_tokens.exchange(app, policy, code, callback_uri(ctx), flow.verifier)
        requested = providers.requested_apis(flow.request.get("scope") or "all", app.provider)
        apis = providers.granted_apis(app.provider, token.get("scope"), requested)
        identity = provider_connect.identify(app, policy, str(token["access_token"]), apis)
    except (provider_tokens.TokenError, provider_connect.ConnectError) as exc:
        log.info(
            "provider sign-in at %s failed: %s (request_id=%s)",
            flow.provider,
            exc,
            ctx.request_id,
        )
        kind = "temporarily_unavailable" if getattr(exc, "code", "") == "unreachable" else ""
        raise FlowFailed(
            flow.request,
            kind or "server_error",
            f"The sign-in at {title} could not be completed ({exc}).",
        ) from None
    config = provider_connect.account_config(app, identity, token, ctx.store.server_secret())
    config["provider_apis"] = list(apis)
    spec_token = provider_tokens.from_rclone(provider_tokens.to_rclone(token))
    expiry = spec_token.expiry.strftime("%Y-%m-%dT%H:%M:%SZ") if spec_token.expiry else None
    return Connected(flow.request, flow.app_id, flow.provider, identity, config, expiry)
