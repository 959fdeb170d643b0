"""The ``local`` connector: storage on disk (``local_storage``), calendars in SQLite
(``local_calendar``) and contacts in SQLite (``local_contacts``). It has no upstream, so
pass-through answers 501."""

from __future__ import annotations

import shutil
from typing import Any

from .. import quota
from ..blobs import blob_store, remove_prefix, stores_for
from ..store import Store
from .base import AccountEnv, Connector, StorageBackend
from .contacts_base import ContactsBackend
from .local_calendar import LocalCalendar
from .local_contacts import LocalContacts
from .local_storage import LocalStorage, account_dir


class LocalConnector(Connector):
    """Files in a folder on disk plus SQLite; the embedded default service."""

    service = "local"
    service_name = "Local"
    apis = ("storage", "calendar", "crm", "events")
    records_intents = False  # no upstream: every change is in the request's own transaction

    def storage(self, env: AccountEnv) -> StorageBackend | None:
        return LocalStorage(
            env.store,
            env.settings.data_dir,
            env.account_id,
            env.activity,
            # Looked up by the first write that needs it: a read makes no query for it.
            quota_limit=lambda: quota.limit_for(env.store, env.settings, env.account_id),
            blobs=blob_store(env.settings),
            inline_bytes=env.settings.inline_file_bytes,
        )

    def calendar(self, env: AccountEnv) -> Any | None:
        return LocalCalendar(env.store, env.account_id, str(env.account["account"] or "Calendar"))

    def contacts(self, env: AccountEnv) -> ContactsBackend | None:
        return LocalContacts(
            env.store,
            env.settings.data_dir,
            env.account_id,
            env.activity,
            blobs=blob_store(env.settings),
        )

    def on_account_deleted(self, store: Store, account_id: int, data_dir: str) -> None:
        shutil.rmtree(account_dir(data_dir, account_id), ignore_errors=True)
        # Blob stores elsewhere (S3, another folder): what fails here, or is not opened in
        # this process, the orphan sweep removes (no row references those blobs any more).
        for blobs in stores_for(data_dir):
            remove_prefix(blobs, f"accounts/{int(account_id)}/")


LOCAL = LocalConnector()
