"""Imported accounts: credentials stored untried, judged by the first upstream call.

Kloudless stored the credentials given to an account import (``POST /v1/accounts`` with
``token``, ...) without trying them, and so does this server (migration scripts import
thousands of accounts; see ``Connector.import_config``). The connector marks such an account's
config ``"imported": true``. When the upstream later rejects the stored credentials (the
connector raises 401 ``service_unauthorized``), :func:`judge_rejection` marks the account
inactive (``active: false``) and answers 401 ``invalid_token``, as Kloudless did. A ``PATCH``
with new credentials (``token``, ...) makes the account active again.

Accounts connected interactively (consent page, ``kloudless accounts create``, ``POST
/v1/accounts`` with the server's own ``url``/``username``/``password`` settings) had their
credentials checked at connection time and keep the upstream's ``service_unauthorized``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from werkzeug.wrappers import Response

from .context import RequestContext
from .errors import ApiError
from .store import now_iso

__all__ = ["judge_rejection"]

#: The account a request is about: ``/v1/accounts/<id or me>/...``.
_ACCOUNT_PATH = re.compile(r"^/v\d+/accounts/(me|\d{1,18})(?:/|$)")


def _is_imported(config: str | None) -> bool:
    try:
        return bool(json.loads(config or "{}").get("imported"))
    except (ValueError, AttributeError):
        return False


def rejected_account(
    ctx: RequestContext, exc: ApiError, path: re.Pattern[str] = _ACCOUNT_PATH
) -> Any | None:
    """:returns: the account of the request's URL (matched by ``path``, group 1 the account
    reference) when ``exc`` is its upstream rejecting the credentials (401
    ``service_unauthorized``), else None."""
    if exc.status != 401 or exc.error_code != "service_unauthorized":
        return None
    match = path.match(ctx.request.path)
    if match is None:
        return None
    try:
        return ctx.account(match.group(1))
    except ApiError:
        return None


def judge_rejection(ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
    """A handler wrapper (``app.handler_wrappers``): turn an upstream's rejection of an
    imported account's credentials into 401 ``invalid_token`` and mark the account inactive."""
    try:
        return call_next()
    except ApiError as exc:
        account = rejected_account(ctx, exc)
        if account is None or not _is_imported(account["config"]):
            raise
        ctx.store.execute(
            "UPDATE accounts SET active = 0, modified = ? WHERE id = ?",
            (now_iso(), int(account["id"])),
        )
        raise ApiError(
            401,
            "invalid_token",
            f"The service rejected the imported credentials of account {int(account['id'])}; "
            "the account is now inactive. Send new ones with PATCH /v1/accounts/"
            f"{int(account['id'])} (token, ...).",
        ) from None
