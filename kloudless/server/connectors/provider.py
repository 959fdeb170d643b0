"""Accounts the server connected itself at Google, Microsoft, Dropbox or Box (the consent
page's provider choice): storage through rclone, pass-through to the provider's API, and one
current OAuth token for both.

Such an account is an rclone account (service ``gdrive``, ``onedrivebiz``, ``skydrive``,
``dropbox`` or ``box``) whose config also names its ``provider``. Its sealed remote holds the
client credentials it was connected with (rclone options ``client_id``, ``client_secret`` and,
when overridden, ``token_url``/``auth_url``) and the token in rclone's format
(:mod:`~.provider_tokens`). The one token is kept current here:

* before the account's storage or pass-through is used, a token that expires within
  :data:`~.provider_tokens.REFRESH_MARGIN` is refreshed by the server, so rclone is handed a
  valid token and never needs to refresh (a refresh rclone made anyway is read back from the
  rcd first, :func:`~.rclone.read_back_token`);
* a pass-through answered 401 by the provider refreshes once and is sent again;
* refreshes are serialised per account across every process sharing the database (a
  :mod:`~kloudless.server.named_locks` lock: an advisory lock on PostgreSQL, a file lock
  beside SQLite's database), and the stored token is read again under the lock, so concurrent
  requests on any worker or machine refresh once (providers that rotate refresh tokens, like
  Box and Microsoft, would otherwise see the old refresh token reused and revoke the grant);
* a refreshed token is committed at once (a standalone transaction), whatever happens to the
  request, since the old refresh token may no longer work; the account's ``token_expiry``
  follows it; the remote's sealed config changes, so the rcd gets the new token on next use;
* a refresh the provider refuses with ``invalid_grant`` (revoked or expired grant) marks the
  account inactive (``active: false``) and answers 401 ``invalid_token`` with a reconnect hint,
  now and for every later request, without calling the provider again; connecting the same
  provider account again through the consent page makes it active again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .. import named_locks
from ..errors import ApiError
from ..outbound import policy_for
from ..store import Store, now_iso
from . import provider_tokens
from .base import AccountEnv, PassthroughRequest, StorageBackend
from .provider_passthrough import forward
from .providers import CATALOGUE, ProviderApp, build
from .rclone import RcloneConnector, read_back_token
from .rclone_remotes import RemoteSpec, load_spec, stored_config

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

#: Most seconds a request waits for another one's refresh of the same account (it makes at
#: most one token endpoint call, bounded by its timeout).
REFRESH_WAIT = 2 * provider_tokens.TOKEN_TIMEOUT + 10


@contextlib.contextmanager
def _refreshing(store: Store, account_id: int) -> Iterator[None]:
    """Hold the account's refresh lock (every process sharing the database)."""
    # Inside an open transaction (a request that wrote already) no waiting: the holder may
    # need the write lock this request holds to save its token.
    wait = 0.0 if store.conn.in_transaction else REFRESH_WAIT
    try:
        with named_locks.hold(store, f"provider-token:{account_id}", wait):
            yield
    except named_locks.LockTimeout:
        raise ApiError(
            503,
            "service_unavailable",
            "The account's token is being refreshed by another request; try again.",
            headers={"Retry-After": "5"},
        ) from None


def revoked_error(account_id: int, title: str) -> ApiError:
    """:returns: the 401 of an account whose grant the provider revoked."""
    return ApiError(
        401,
        "invalid_token",
        f"{title} no longer accepts this account's authorization (it was revoked or has "
        f"expired); account {account_id} is inactive. Connect it again through the consent "
        f"page: signing in to the same {title} account reuses account {account_id}.",
    )


def app_of(config: dict[str, Any], spec: RemoteSpec) -> ProviderApp:
    """:returns: the provider client an account was connected with (from its sealed remote)."""
    main = spec.sections[spec.main]
    values: dict[str, Any] = {
        "client_id": main.get("client_id", ""),
        "client_secret": main.get("client_secret", ""),
    }
    values.update(config.get("provider_overrides") or {})
    return build(str(config["provider"]), values)


def _write_now(store: Store, call: Callable[[], None]) -> None:
    """Run ``call`` in a transaction committed at once (standalone), or in the request's
    unit of work when that has begun writing already."""
    try:
        with store.transaction(standalone=True):
            call()
    except RuntimeError:
        with store.transaction():
            call()


class TokenKeeper:
    """The current access token of one provider account."""

    def __init__(self, env: AccountEnv) -> None:
        self.env = env

    def reload(self) -> AccountEnv:
        """:returns: the env with the account's current row (after a refresh elsewhere)."""
        row = self.env.store.get_account(self.env.account_id)
        if row is None:
            raise ApiError(404, "not_found", "The account was deleted.")
        self.env = dataclasses.replace(self.env, account=row)
        return self.env

    def _parts(self) -> tuple[RemoteSpec, provider_tokens.StoredToken]:
        spec = load_spec(self.env.config, self.env.store.server_secret())
        try:
            token = provider_tokens.from_rclone(spec.sections[spec.main].get("token", ""))
        except ValueError:
            raise ApiError(
                500, "internal_error", "The account's stored token is unreadable."
            ) from None
        return spec, token

    @property
    def title(self) -> str:
        return CATALOGUE[str(self.env.config["provider"])].title

    def access_token(self, rejected: str | None = None) -> str:
        """:param rejected: an access token the provider just answered 401 to: refresh even
            if it has not expired (once; a newer stored token is used as it is).
        :returns: a current access token.
        :raises ApiError: 401 ``invalid_token`` for a revoked grant, 503 when the token
            endpoint cannot be reached.
        """
        if not self.env.account["active"]:
            raise revoked_error(self.env.account_id, self.title)
        if read_back_token(self.env):
            self.reload()
        spec, token = self._parts()
        if rejected is None and not token.expires_within(provider_tokens.REFRESH_MARGIN):
            return token.access_token
        with _refreshing(self.env.store, self.env.account_id):
            self.reload()
            if not self.env.account["active"]:
                raise revoked_error(self.env.account_id, self.title)
            spec, token = self._parts()
            if rejected is None and not token.expires_within(provider_tokens.REFRESH_MARGIN):
                return token.access_token  # another request refreshed meanwhile
            if rejected is not None and token.access_token != rejected:
                return token.access_token
            return self._refresh(spec, token)

    def _refresh(self, spec: RemoteSpec, token: provider_tokens.StoredToken) -> str:
        env = self.env
        app = app_of(env.config, spec)
        if not token.refresh_token:
            self._revoke()
        try:
            fresh = provider_tokens.refresh(app, policy_for(env.settings), token.refresh_token)
        except provider_tokens.TokenError as exc:
            if exc.revoked:
                self._revoke()
            raise ApiError(
                503,
                "service_unavailable",
                f"The account's token could not be refreshed: {exc.message}.",
            ) from None
        save_token(env.store, env.account_id, env.config, spec, fresh)
        self.reload()
        return str(fresh["access_token"])

    def _revoke(self) -> None:
        env = self.env

        def mark() -> None:
            env.store.execute(
                "UPDATE accounts SET active = 0, modified = ? WHERE id = ?",
                (now_iso(), env.account_id),
            )

        _write_now(env.store, mark)
        raise revoked_error(env.account_id, self.title)


def save_token(
    store: Store,
    account_id: int,
    config: dict[str, Any],
    spec: RemoteSpec,
    token: dict[str, Any],
) -> None:
    """Store a new token in the account's sealed remote (committed at once) and its expiry
    in ``token_expiry``."""
    spec.sections[spec.main]["token"] = provider_tokens.to_rclone(token)
    new_config = dict(config, **stored_config(spec, store.server_secret()))
    expiry = provider_tokens.from_rclone(spec.sections[spec.main]["token"]).expiry
    shown = expiry.strftime("%Y-%m-%dT%H:%M:%SZ") if expiry else None

    def write() -> None:
        store.execute(
            "UPDATE accounts SET config = ?, token_expiry = ?, modified = ? WHERE id = ?",
            (json.dumps(new_config), shown, now_iso(), account_id),
        )

    _write_now(store, write)


class ProviderConnector(RcloneConnector):
    """An rclone service whose accounts may have been connected by the server at a provider
    (see the module docstring); other accounts of the service (imported rclone remotes)
    behave as plain rclone accounts."""

    def storage(self, env: AccountEnv) -> StorageBackend | None:
        if env.config.get("provider"):
            keeper = TokenKeeper(env)
            keeper.access_token()  # refreshed before rclone is handed the remote
            env = keeper.reload()  # the current row, whoever refreshed
        return super().storage(env)

    def passthrough(self, env: AccountEnv, request: PassthroughRequest) -> Response | None:
        if not env.config.get("provider"):
            return super().passthrough(env, request)
        return passthrough(env, request)


def passthrough(env: AccountEnv, request: PassthroughRequest) -> Response:
    """Forward a pass-through request of a provider account with its current token."""
    keeper = TokenKeeper(env)
    spec = load_spec(env.config, env.store.server_secret())
    return forward(
        app_of(env.config, spec),
        keeper.access_token,
        request,
        policy_for(env.settings),
        env.settings.max_upload_bytes,
        env.settings.data_dir,
    )


#: The services of provider accounts, served by :class:`ProviderConnector`.
PROVIDER_SERVICES = tuple(s for p in CATALOGUE.values() for s in p.services)
CONNECTORS: tuple[ProviderConnector, ...] = tuple(ProviderConnector(s) for s in PROVIDER_SERVICES)
