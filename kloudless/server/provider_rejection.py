"""A provider's 401 on the storage side of a provider account: refresh the token once.

Pass-through refreshes on a provider 401 itself (it can send the request again). Storage calls
go through rclone, which reports a rejected token as 401 ``service_unauthorized``; this handler
wrapper (``app.handler_wrappers``) then refreshes the account's token once
(:meth:`~kloudless.server.connectors.provider.TokenKeeper.access_token` with the rejected
token: a revoked grant becomes 401 ``invalid_token`` with the reconnect hint) and, for ``GET``
and ``HEAD`` requests, which are safe to repeat and run outside any unit of work, runs the
handler again with the new token. Other requests keep the 401 (the next request uses the
refreshed token).
"""

from __future__ import annotations

import json
import re
from typing import Callable

from werkzeug.wrappers import Response

from .connectors import provider_tokens
from .connectors.provider import TokenKeeper
from .connectors.rclone_remotes import load_spec
from .context import RequestContext
from .errors import ApiError
from .imported import rejected_account

__all__ = ["refresh_on_rejection"]

_ACCOUNT_PATH = re.compile(r"^/v\d+/accounts/(me|\d{1,18})/storage(?:/|$)")


def refresh_on_rejection(ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
    """See the module docstring."""
    try:
        return call_next()
    except ApiError as exc:
        account = rejected_account(ctx, exc, _ACCOUNT_PATH)
        if account is None:
            raise
        config = json.loads(account["config"] or "{}")
        if not isinstance(config, dict) or not config.get("provider"):
            raise
        spec = load_spec(config, ctx.store.server_secret())
        rejected = provider_tokens.from_rclone(spec.sections[spec.main]["token"]).access_token
        TokenKeeper(ctx.account_env(account)).access_token(rejected=rejected)
        if ctx.request.method not in ("GET", "HEAD"):
            raise
    return call_next()
