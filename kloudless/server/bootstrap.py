"""First-start setup: an application (app id + API key) and one ``local`` account with a bearer
token, created when the data dir has no application yet, and the operator's developer key (the
management API, :mod:`kloudless.server.developers`) when the server has none."""

from __future__ import annotations

from dataclasses import dataclass

from . import developers
from .store import Store


@dataclass
class Credentials:
    """Secrets created on first start; shown once, never stored in clear."""

    app_id: str
    api_key: str
    account_id: int
    token: str
    #: The operator's developer key, when this start created it (None when one existed).
    developer_key: str | None = None


def bootstrap(store: Store) -> Credentials | None:
    """Create the first application, account and token if the store has no application.

    :returns: the new credentials, or None when the data dir was already set up.
    """
    with store.transaction():
        if store.list_apps():
            return None
        app_id, api_key = store.create_app()
        account_id = store.create_account(app_id, "local", "local")
        token = store.create_token(app_id, account_id)
        developer_key = None if developers.has_key(store) else developers.create_key(store)
    return Credentials(app_id, api_key, account_id, token, developer_key)
