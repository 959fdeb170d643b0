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
        tokens = [t.strip() for t in credential.split(",")][:50]
        rows = [store.lookup_token_account(t) for t in tokens if t]
        if not rows or any(r is None for r in rows):
            raise ApiError(401, "invalid_token", "The Bearer token is invalid or revoked.")
        apps = {str(r["auth_app_id"]) for r in rows if r is not None}
        if len(apps) != 1:
            raise ApiError(401, "invalid_token", "The Bearer tokens belong to different apps.")
        first = rows[0]
        assert first is not None
        account_id = first["auth_account_id"]
        ids = tuple(
            int(r["auth_account_id"]) for r in rows if r and r["auth_account_id"] is not None
        )
        return Auth(
            "bearer",
            apps.pop(),
            None if account_id is None else int(account_id),
            str(first["auth_scope"]),
            ids if len(rows) > 1 else (),
            tuple(str(r["auth_scope"]) for r in rows if r is not None),
            account_rows={int(r["id"]): r for r in rows if r is not None and r["id"] is not None},
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
