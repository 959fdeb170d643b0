"""OAuth 2.0 client side of provider accounts: the authorization request, the code exchange,
refreshes, and the token in rclone's format.

oauthlib's :class:`~oauthlib.oauth2.WebApplicationClient` builds every request (authorization
URI with ``state`` and PKCE ``S256`` where the provider supports it, token request bodies) and
parses every token endpoint answer (errors become :class:`oauthlib.oauth2.OAuth2Error`); the
requests go through the server's outbound policy session, which follows no redirects. The
client authenticates with ``client_secret`` in the body (``client_secret_post``, which every
one of the four providers accepts).

A token is kept the way rclone keeps it in a remote's ``token`` option, so one value serves the
storage side (rclone) and the pass-through side (the server): JSON
``{"access_token", "token_type", "refresh_token", "expiry"}`` with ``expiry`` an RFC 3339 time
(:func:`to_rclone`, :func:`from_rclone`).

Nothing here logs or puts a token, a code or a secret into an error message.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

import requests
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient

from ..outbound import OutboundPolicy
from .providers import ProviderApp

#: Seconds before the expiry at which a token is refreshed (requests need time to run).
REFRESH_MARGIN = 300
#: Timeout of token endpoint calls (seconds).
TOKEN_TIMEOUT = 30
#: Largest token endpoint answer read.
MAX_TOKEN_ANSWER = 64 * 1024


class TokenError(Exception):
    """A token endpoint call failed.

    :param code: the OAuth error code (``invalid_grant``, ...) or ``unreachable`` /
        ``bad_answer`` for transport and protocol failures.
    :param message: a description without secrets.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def revoked(self) -> bool:
        """Whether the provider refused the grant itself (revoked, expired or already used)."""
        return self.code == "invalid_grant"


@dataclass(frozen=True)
class Authorization:
    """An authorization request to send the browser to, and what the callback needs."""

    url: str
    state: str
    code_verifier: str | None


def authorization(
    app: ProviderApp, redirect_uri: str, state: str, scopes: tuple[str, ...] | None = None
) -> Authorization:
    """:param scopes: the scopes to ask for (default: the application's).
    :returns: the provider's authorization URL for the code flow (``state``, PKCE ``S256``
    when the provider supports it, the provider's offline-access parameters)."""
    client = WebApplicationClient(app.client_id)
    verifier = challenge = None
    if app.provider.pkce:
        verifier = client.create_code_verifier(64)
        challenge = client.create_code_challenge(verifier, "S256")
    # oauthlib builds only https URIs; http is allowed for loopback endpoints alone (see
    # providers.check_url), built as https and given back their scheme.
    insecure = app.auth_url.lower().startswith("http://")
    url = client.prepare_request_uri(
        "https://" + app.auth_url[len("http://") :] if insecure else app.auth_url,
        redirect_uri=redirect_uri,
        scope=list(app.scopes if scopes is None else scopes) or None,
        state=state,
        code_challenge=challenge,
        code_challenge_method="S256" if challenge else None,
        **dict(app.provider.auth_params),
    )
    if insecure:
        url = "http://" + url[len("https://") :]
    return Authorization(url, state, verifier)


def _post(app: ProviderApp, policy: OutboundPolicy, body: str) -> dict[str, Any]:
    client = WebApplicationClient(app.client_id)
    try:
        with policy.session() as session:
            answer = session.post(
                app.token_url,
                data=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
                timeout=TOKEN_TIMEOUT,
                stream=True,
            )
            text = answer.raw.read(MAX_TOKEN_ANSWER + 1, decode_content=True)
            answer.close()
    except (requests.RequestException, OSError, ValueError) as exc:
        # OutboundError (a refused address) is a requests ConnectionError.
        raise TokenError(
            "unreachable",
            f"the {app.provider.title} token endpoint could not be reached ({type(exc).__name__})",
        ) from None
    if len(text) > MAX_TOKEN_ANSWER:
        raise TokenError("bad_answer", "the token endpoint's answer is too long")
    try:
        token: dict[str, Any] = client.parse_request_body_response(text.decode("utf-8", "replace"))
    except OAuth2Error as exc:
        raise TokenError(
            str(exc.error or "invalid_request"),
            # The provider's error code only: its description is its own text.
            f"{app.provider.title} refused the token request ({exc.error})",
        ) from None
    except (ValueError, Warning, KeyError, TypeError):
        raise TokenError(
            "bad_answer", f"{app.provider.title}'s token endpoint gave an unreadable answer"
        ) from None
    if answer.status_code != 200:
        raise TokenError("bad_answer", f"the token endpoint answered HTTP {answer.status_code}")
    return token


def exchange(
    app: ProviderApp,
    policy: OutboundPolicy,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
) -> dict[str, Any]:
    """Exchange an authorization code. :returns: the token (``access_token``,
    ``refresh_token``, ``expires_at``...). :raises TokenError: refused or unreachable."""
    client = WebApplicationClient(app.client_id)
    body = client.prepare_request_body(
        code=code,
        redirect_uri=redirect_uri,
        include_client_id=True,
        client_secret=app.client_secret,
        code_verifier=code_verifier,
    )
    return _post(app, policy, body)


def refresh(app: ProviderApp, policy: OutboundPolicy, refresh_token: str) -> dict[str, Any]:
    """Refresh an access token. :returns: the new token (a provider that does not rotate
    refresh tokens answers without one: the old one is kept). :raises TokenError: refused
    (``revoked`` when the grant is gone) or unreachable."""
    client = WebApplicationClient(app.client_id)
    body = client.prepare_refresh_body(
        refresh_token=refresh_token, client_id=app.client_id, client_secret=app.client_secret
    )
    token = _post(app, policy, body)
    token.setdefault("refresh_token", refresh_token)
    return token


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def to_rclone(token: dict[str, Any]) -> str:
    """:returns: a token endpoint answer as rclone's ``token`` option (JSON)."""
    expiry = None
    if token.get("expires_at"):
        expiry = datetime.datetime.fromtimestamp(float(token["expires_at"]), datetime.timezone.utc)
    value = {
        "access_token": str(token["access_token"]),
        "token_type": str(token.get("token_type") or "Bearer"),
        "refresh_token": str(token.get("refresh_token") or ""),
        "expiry": expiry.isoformat().replace("+00:00", "Z") if expiry else "0001-01-01T00:00:00Z",
    }
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class StoredToken:
    """A token read from rclone's ``token`` option."""

    access_token: str
    refresh_token: str
    expiry: datetime.datetime | None

    def expires_within(self, seconds: float, now: datetime.datetime | None = None) -> bool:
        """:returns: whether the token expires in less than ``seconds`` (never for tokens
        without an expiry)."""
        if self.expiry is None:
            return False
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return (self.expiry - now).total_seconds() < seconds


def parse_time(text: str) -> datetime.datetime | None:
    """:returns: an RFC 3339 time as rclone (Go) writes it, nanoseconds included, or None for
    Go's zero time or an unreadable value."""
    if not text or text.startswith("0001-01-01"):
        return None
    value = text.strip().replace("Z", "+00:00")
    main, dot, rest = value.partition(".")
    if dot:  # Python reads at most 6 fraction digits
        digits = "".join(c for c in rest if c.isdigit())
        value = f"{main}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return _utc(datetime.datetime.fromisoformat(value))
    except ValueError:
        return None


def from_rclone(text: str) -> StoredToken:
    """:returns: the token of rclone's ``token`` option. :raises ValueError: malformed."""
    value = json.loads(text)
    if not isinstance(value, dict) or not isinstance(value.get("access_token"), str):
        raise ValueError("not an OAuth token")
    return StoredToken(
        value["access_token"],
        str(value.get("refresh_token") or ""),
        parse_time(str(value.get("expiry") or "")),
    )
