"""A real local API server on 127.0.0.1 for the command-line and example tests.

It is the server package's own :class:`kloudless.server.runner.ServerThread` (waitress in a
background thread, the same one ``tests/e2e`` uses) on a free loopback port with a temporary data
dir. Each test gets its own account and bearer token (:meth:`LiveServer.new_account`), so tests
never see each other's files or activity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings


@dataclass
class Credentials:
    """One application and account of the live server."""

    base_url: str
    app_id: str
    api_key: str
    account_id: int
    token: str

    def env(self) -> dict[str, str]:
        """:returns: the KLOUDLESS_* environment variables for this account."""
        return {
            "KLOUDLESS_BASE_URL": self.base_url,
            "KLOUDLESS_TOKEN": self.token,
            "KLOUDLESS_API_KEY": self.api_key,
            "KLOUDLESS_APP_ID": self.app_id,
            "KLOUDLESS_ACCOUNT_ID": str(self.account_id),
        }


class LiveServer:
    """Start and stop the server; hand out accounts.

    :param data_dir: an empty temporary folder for the server's state.
    :param settings: other :class:`kloudless.server.Settings` fields (e.g. a small part size).
    """

    def __init__(self, data_dir: str, **settings: Any) -> None:
        self.thread = ServerThread(
            Settings(data_dir=data_dir, host="127.0.0.1", port=0, **settings)
        )
        self.base_url = self.thread.base_url
        first = self.thread.credentials
        assert first is not None, "a fresh data dir gets an application on first start"
        self.app_id, self.api_key = first.app_id, first.api_key

    def start(self) -> LiveServer:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release sockets, threads and the database."""
        self.thread.stop()

    def new_account(self) -> Credentials:
        """Create a fresh ``local`` account with its own bearer token.

        :returns: its credentials.
        """
        store = self.thread.app.store
        account_id = store.create_account(self.app_id, "local", "cli-test")
        token = store.create_token(self.app_id, account_id)
        return Credentials(self.base_url, self.app_id, self.api_key, account_id, token)
