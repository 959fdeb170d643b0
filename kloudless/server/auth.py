"""Authentication: who is calling, from the ``Authorization`` header."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import developers
from .errors import ApiError
from .store import Store

__all__ = ["Auth", "authenticate", "unauthenticated"]


@dataclass
class Auth:
    """Who is calling: ``kind`` is ``'bearer'`` (``account_id`` set, or None for an
    application-level token), ``'apikey'`` or ``'developer'`` (the operator's developer key:
    ``app_id`` is empty, ``developer_id`` set; it reaches the management API only)."""

    kind: str
    app_id: str
    account_id: int | None = None
    scope: str = "all"
    #: Every account reachable with this credential when several comma-separated Bearer tokens
    #: were sent (``Bearer t1,t2``); ``account_id`` is then the first one.
    account_ids: tuple[int, ...] = ()
    #: The scope of every token sent (one per token); :mod:`kloudless.server.scopes` checks
    #: each of them.
    scopes: tuple[str, ...] = ()
    #: The developer of a developer key (``kind == 'developer'``).
    developer_id: int | None = None
    #: The rows of the tokens' accounts, read with the tokens (Bearer tokens only), by id:
    #: :meth:`~kloudless.server.context.RequestContext.account` takes each once instead of
    #: reading it again.
    account_rows: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    def may_access(self, account_id: int) -> bool:
        """:returns: whether a Bearer credential covers ``account_id`` (API keys: see app)."""
        if self.kind != "bearer":
            return True
        return account_id == self.account_id or account_id in self.account_ids


def unauthenticated() -> ApiError:
    """:returns: the 401 ``authentication_required`` error (no credentials sent)."""
    return ApiError(401, "authentication_required", "An Authorization header is required.")


def authenticate(store: Store, header: str) -> Auth:
    """Parse ``Authorization``: ``Bearer <token>``, ``APIKey <key>`` or ``DeveloperKey <key>``
    (case-insensitive schemes). A developer key sent as ``Bearer <key>`` is accepted too: it is
    what the 2.x SDK calls a "meta bearer token" (``Client(token=...).get('meta/applications')``).

    :raises ApiError: 401 when missing or invalid.
    """
    if not header.strip():
        raise unauthenticated()
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    scheme = scheme.lower()
    developer_key = scheme == "developerkey" or (
        scheme == "bearer" and credential.startswith(developers.KEY_PREFIX)
    )
    if developer_key and credential:
        developer_id = developers.developer_for_key(store, credential)
        if developer_id is None:
            raise ApiError(401, "unauthorized", "The developer key is invalid.")
        return Auth("developer", "", developer_id=developer_id)
    if scheme == "bearer" and credential:
        # One plain loop (every request with a token runs it): the rows, their apps, accounts
        # and scopes.
        rows = []
        apps = set()
        ids: list[int] = []
        token_scopes: list[str] = []
        account_rows = {}
        for token in credential.split(",")[:50]:
            token = token.strip()
            if not token:
                continue
            row = store.lookup_token_account(token)
            if row is None:
                raise ApiError(401, "invalid_token", "The Bearer token is invalid or revoked.")
            rows.append(row)
            apps.add(str(row["auth_app_id"]))
            if row["auth_account_id"] is not None:
                ids.append(int(row["auth_account_id"]))
            token_scopes.append(str(row["auth_scope"]))
            if row["id"] is not None:
                account_rows[int(row["id"])] = row
        if not rows:
            raise ApiError(401, "invalid_token", "The Bearer token is invalid or revoked.")
        if len(apps) != 1:
            raise ApiError(401, "invalid_token", "The Bearer tokens belong to different apps.")
        account_id = rows[0]["auth_account_id"]
        return Auth(
            "bearer",
            apps.pop(),
            None if account_id is None else int(account_id),
            token_scopes[0],
            tuple(ids) if len(rows) > 1 else (),
            tuple(token_scopes),
            account_rows=account_rows,
        )
    if scheme == "apikey" and credential:
        app_id = store.app_for_api_key(credential)
        if app_id is None:
            raise ApiError(401, "unauthorized", "The API key is invalid.")
        return Auth("apikey", app_id)
    raise ApiError(
        401,
        "unauthorized",
        "Unsupported Authorization header; use 'Bearer <token>', 'APIKey <key>' or "
        "'DeveloperKey <key>'.",
    )
