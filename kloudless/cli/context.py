"""What a client command works with: its arguments, the SDK account and the path resolver.

Credentials and the server come from flags or the environment (see :mod:`kloudless.cli.env`):

* ``--token`` / ``KLOUDLESS_TOKEN``: a bearer token (the account is the token's own);
* ``--api-key`` / ``KLOUDLESS_API_KEY`` with ``--account`` / ``KLOUDLESS_ACCOUNT_ID``;
* ``--base-url`` / ``KLOUDLESS_BASE_URL``: the API server (default ``http://localhost:8002``).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from . import output
from .env import ENV_ACCOUNT, ENV_API_KEY, ENV_BASE_URL, ENV_TOKEN
from .errors import CommandError
from .resolve import Resolver


class Context:
    """What a command needs: its parsed arguments and a lazily built account.

    :param args: the parsed command-line arguments.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(getattr(args, "json", False))
        self._account: Any = None
        self._resolver: Resolver | None = None

    def option(self, name: str, env: str) -> str | None:
        """Read a setting from its flag, else from the environment.

        :param name: the argparse destination of the flag.
        :param env: the environment variable.
        :returns: the value, or None when neither is set (empty counts as unset).
        """
        value = getattr(self.args, name, None) or os.environ.get(env) or None
        return str(value) if value is not None else None

    @property
    def base_url(self) -> str:
        """The API base URL in use (flag, environment, then the SDK's configuration)."""
        explicit = self.option("base_url", ENV_BASE_URL)
        if explicit:
            return explicit
        from kloudless.config import configuration

        return str(configuration.get("base_url") or "")

    @property
    def account(self) -> Any:
        """The :class:`kloudless.Account` for the configured credentials (built on first use).

        :raises CommandError: when no usable credentials are configured.
        """
        if self._account is None:
            token = self.option("token", ENV_TOKEN)
            if getattr(self.args, "api_key", None) and not getattr(self.args, "token", None):
                token = None  # an explicit --api-key wins over $KLOUDLESS_TOKEN
            self._account = make_account(
                token=token,
                api_key=self.option("api_key", ENV_API_KEY),
                account_id=self.option("account", ENV_ACCOUNT),
                base_url=self.option("base_url", ENV_BASE_URL),
                timeout=getattr(self.args, "timeout", None),
                retries=getattr(self.args, "retries", None),
            )
        return self._account

    @property
    def resolver(self) -> Resolver:
        """The path/id resolver for this command's account."""
        if self._resolver is None:
            self._resolver = Resolver(self.account)
        return self._resolver

    def close(self) -> None:
        """Release the account's HTTP connections."""
        if self._account is not None:
            close = getattr(self._account, "close", None)
            if callable(close):
                close()


def make_account(
    token: str | None,
    api_key: str | None,
    account_id: str | None,
    base_url: str | None,
    timeout: float | None = None,
    retries: int | None = None,
) -> Any:
    """Build the SDK account for the command line's credentials.

    :param token: a bearer token (wins over the API key, as in the SDK).
    :param api_key: an application API key; needs ``account_id``.
    :param account_id: the account to act on with an API key.
    :param base_url: the API server, None for the SDK's configured default.
    :param timeout: seconds before a request is abandoned, None for the SDK's default.
    :param retries: retries per request, None for the SDK's default.
    :returns: a :class:`kloudless.Account`.
    :raises CommandError: when no credentials are given or an API key lacks an account id.
    """
    import warnings

    from kloudless.account import Account

    if not token and not api_key:
        raise CommandError(
            f"no credentials: pass --token or set {ENV_TOKEN} "
            f"(or --api-key/{ENV_API_KEY} with --account/{ENV_ACCOUNT})"
        )
    if not token and not account_id:
        raise CommandError(f"an API key needs an account id: pass --account or set {ENV_ACCOUNT}")
    options: dict[str, Any] = {}
    if base_url:
        options["base_url"] = base_url
    if timeout is not None:
        if timeout <= 0:
            raise CommandError("--timeout must be more than 0 seconds")
        options["timeout"] = timeout
    if retries is not None:
        if retries < 0:
            raise CommandError("--retries must be 0 or more")
        options["max_retries"] = retries
    # Show SDK warnings (e.g. plain http to a remote host) as one line, not a source excerpt.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if token:
            account = Account(token=token, account_id=account_id or None, **options)
        else:
            account = Account(api_key=api_key, account_id=account_id, **options)
    for warning in caught:
        output.info(f"{output.PROG}: warning: {warning.message}")
    return account
