"""Turning a provider's token into an account: who the user is at the provider, and the
rclone remote built from the token.

After the code exchange the server asks the provider's API who granted access (which also
proves the token works): Google ``GET /drive/v3/about?fields=user``, Microsoft Graph
``GET /v1.0/me`` and ``GET /v1.0/me/drive`` (its ``driveType`` decides ``onedrivebiz`` or
``skydrive``, and rclone needs the drive's id and type), Dropbox
``POST /2/users/get_current_account``, Box ``GET /2.0/users/me``. The account is named by the
user's e-mail address (or login) and remembers the provider's user id, so that connecting the
same provider account again reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from ..outbound import OutboundPolicy
from . import provider_tokens
from .providers import ENDPOINTS, ProviderApp
from .rclone_remotes import RemoteSpec, stored_config

#: Timeout of the identity calls (seconds).
TIMEOUT = 30


class ConnectError(Exception):
    """The provider's API did not say who the user is (the message has no secrets)."""


@dataclass(frozen=True)
class Identity:
    """Who granted access: the provider's user id, a display name, the service id, and the
    rclone options the remote needs besides the token."""

    user_id: str
    name: str
    service: str
    options: dict[str, str]


def _get(
    session: requests.Session, app: ProviderApp, token: str, path: str, method: str = "GET"
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if method == "POST":
        headers["Content-Type"] = "application/json"
    try:
        answer = session.request(
            method,
            app.api_base + path,
            headers=headers,
            data=b"null" if method == "POST" else None,
            timeout=TIMEOUT,
        )
    except (requests.RequestException, OSError) as exc:
        raise ConnectError(
            f"the {app.provider.title} API could not be reached ({type(exc).__name__})"
        ) from None
    if answer.status_code != 200:
        raise ConnectError(f"the {app.provider.title} API answered HTTP {answer.status_code}")
    try:
        value = answer.json()
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ConnectError(f"the {app.provider.title} API gave an unreadable answer")
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def identify(
    app: ProviderApp, policy: OutboundPolicy, token: str, apis: tuple[str, ...] = ("storage",)
) -> Identity:
    """:param apis: the APIs the user granted; without ``storage`` the account is a calendar
        account (service :attr:`~.providers.Provider.calendar_service`), identified through
        the calendar API (Google: the primary calendar, whose id is the user's address;
        Microsoft: ``/v1.0/me``).
    :returns: who the token belongs to. :raises ConnectError: the API did not say."""
    with policy.session() as session:
        if "storage" not in apis and app.provider.calendar_service:
            return _calendar_identity(session, app, token)
        if app.name == "google":
            user = _get(session, app, token, "/drive/v3/about?fields=user").get("user") or {}
            return Identity(
                _text(user.get("permissionId")) or _text(user.get("emailAddress")),
                _text(user.get("emailAddress")) or _text(user.get("displayName")),
                "gdrive",
                {},
            )
        if app.name == "microsoft":
            me = _get(session, app, token, "/v1.0/me")
            drive = _get(session, app, token, "/v1.0/me/drive")
            kind = _text(drive.get("driveType"))
            if not _text(drive.get("id")) or not kind:
                raise ConnectError("Microsoft Graph did not name the user's drive")
            return Identity(
                _text(me.get("id")),
                _text(me.get("mail")) or _text(me.get("userPrincipalName")),
                "skydrive" if kind == "personal" else "onedrivebiz",
                {"drive_id": drive["id"], "drive_type": kind},
            )
        if app.name == "dropbox":
            account = _get(session, app, token, "/2/users/get_current_account", method="POST")
            return Identity(
                _text(account.get("account_id")), _text(account.get("email")), "dropbox", {}
            )
        me = _get(session, app, token, "/2.0/users/me")
        return Identity(_text(me.get("id")), _text(me.get("login")), "box", {})


def _calendar_identity(session: requests.Session, app: ProviderApp, token: str) -> Identity:
    service = app.provider.calendar_service
    if app.name == "google":
        primary = _get(session, app, token, "/calendar/v3/calendars/primary")
        address = _text(primary.get("id"))
        if not address:
            raise ConnectError("Google Calendar did not name the user's primary calendar")
        return Identity(address, address, service, {})
    me = _get(session, app, token, "/v1.0/me")
    name = _text(me.get("mail")) or _text(me.get("userPrincipalName"))
    return Identity(_text(me.get("id")), name, service, {})


def account_config(
    app: ProviderApp, identity: Identity, token: dict[str, Any], secret: bytes
) -> dict[str, Any]:
    """:returns: the config of the account: the rclone remote (type, the client it was
    connected with, the token in rclone's format, sealed) plus the provider's name, the
    user's id at the provider and the endpoint overrides."""
    section = {
        "type": app.provider.rclone_type,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "token": provider_tokens.to_rclone(token),
        **identity.options,
    }
    for name in ("auth_url", "token_url"):
        if name in app.overrides:
            section[name] = getattr(app, name)
    config = stored_config(RemoteSpec({"main": section}, "main", ""), secret)
    config.update(
        rclone_service=identity.service,
        rclone_label=identity.name or identity.service,
        provider=app.name,
        provider_user=identity.user_id,
        provider_overrides={e: getattr(app, e) for e in ENDPOINTS if e in app.overrides},
    )
    return config
