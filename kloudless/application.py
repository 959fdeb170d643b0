"""OAuth helpers: authorization URL, code exchange and token verification (always API v1)."""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Any

import requests

from .client import Client
from .exceptions import APIException, JSONDecodeException, OauthFlowFailed, TokenVerificationFailed
from .util import construct_kloudless_endpoint

__all__ = ["OAUTH_API_VERSION", "get_authorization_url", "get_token_from_code", "verify_token"]

OAUTH_API_VERSION = 1


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise JSONDecodeException(response) from None


def verify_token(app_id: str, token: str) -> dict[str, Any]:
    """Verify that ``token`` belongs to the application ``app_id``.

    Sends ``GET {base_url}/v1/oauth/token`` with the token.

    :param app_id: application id.
    :param token: the account's Bearer token.
    :returns: the token information (``client_id``, ``account_id``, ...).
    :raises kloudless.exceptions.TokenVerificationFailed: when the token is another app's.
    :raises kloudless.exceptions.APIException: for API errors (an invalid token...).
    """
    with Client(token=token) as client:
        response = client.get("oauth/token", api_version=OAUTH_API_VERSION, get_raw_response=True)
        data = _json(response)
    if not isinstance(data, dict):
        raise APIException(response, "Unexpected token information.")
    client_id = data.get("client_id")
    if client_id is None or not hmac.compare_digest(str(client_id), str(app_id)):
        raise TokenVerificationFailed(
            f"Token verification failed, the token is grant to {client_id} but not {app_id}"
        )
    return data


def get_authorization_url(
    app_id: str,
    redirect_uri: str,
    scope: str = "all",
    state: str = "",
    extra_data: Any = "",
    **params: Any,
) -> tuple[str, str]:
    """Get the URL that starts the first leg of the OAuth flow (no network call).

    :param app_id: application id.
    :param redirect_uri: your callback URL.
    :param scope: space-delimited scopes.
    :param state: value echoed to the callback; a random URL-safe string by default.
    :param extra_data: dict (JSON-encoded) or string pre-filling the authentication forms.
    :param params: additional query parameters (the ones above take precedence).
    :returns: ``(url, state)``: redirect the user to ``url``; keep ``state`` in their session.
    """
    if isinstance(extra_data, dict):
        extra_data = json.dumps(extra_data)
    if not state:
        state = secrets.token_urlsafe(12)
    params.update(
        {
            "client_id": app_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "extra_data": extra_data,
        }
    )
    url = construct_kloudless_endpoint("oauth", api_version=OAUTH_API_VERSION)
    prepared = requests.Request("GET", url, params=params).prepare()
    return str(prepared.url), state


def get_token_from_code(
    app_id: str, api_key: str, orig_state: str, orig_redirect_uri: str, **params: Any
) -> str:
    """Exchange the authorization code of the OAuth callback for a Bearer token.

    :param app_id: application id.
    :param api_key: API key (also sent as ``client_secret``).
    :param orig_state: the state from :func:`get_authorization_url`.
    :param orig_redirect_uri: the ``redirect_uri`` given to :func:`get_authorization_url`.
    :param params: the callback's query parameters (``code``, ``state`` or ``error``...).
    :returns: the Bearer token.
    :raises kloudless.exceptions.OauthFlowFailed: for an error callback, a state that is missing
        or does not match, or a missing code.
    :raises kloudless.exceptions.APIException: when the exchange fails.
    """
    error = params.get("error")
    if error:
        description = params.get("error_description")
        exc = OauthFlowFailed(f"{error}: {description}" if description else str(error))
        exc.error_data = dict(params)
        raise exc
    got_state = params.get("state")
    if (
        not orig_state
        or not got_state
        or not hmac.compare_digest(str(orig_state).encode(), str(got_state).encode())
    ):
        raise OauthFlowFailed("state values do not match.")
    code = params.get("code")
    if not code:
        raise OauthFlowFailed("An authorization code is required.")
    with Client(api_key=api_key) as client:
        response = client.post(
            "oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": orig_redirect_uri,
                "client_id": app_id,
                "client_secret": api_key,
            },
            api_version=OAUTH_API_VERSION,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            get_raw_response=True,
        )
        data = _json(response)
    token = data.get("access_token") if isinstance(data, dict) else None
    if not token:
        raise OauthFlowFailed("The token response has no access_token.")
    return str(token)
