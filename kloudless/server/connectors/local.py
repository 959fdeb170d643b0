"""The ``local`` connector: storage on disk (``local_storage``) and calendars in SQLite
(``local_calendar``, when present). It has no upstream, so pass-through answers 501."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from .base import Connector, StorageBackend, register
from .local_storage import LocalStorage, account_dir

if TYPE_CHECKING:
    from ..app import RequestContext


class LocalConnector(Connector):
    """Files in a folder on disk plus SQLite; the embedded default service."""

    service = "local"
    service_name = "Local"
    apis = ("storage", "calendar", "events")

    def storage(self, ctx: RequestContext, account: sqlite3.Row) -> StorageBackend | None:
        return LocalStorage(ctx.store, ctx.settings.data_dir, int(account["id"]))

    def calendar(self, ctx: RequestContext, account: sqlite3.Row) -> Any | None:
        try:
            from . import local_calendar
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.local_calendar":
                raise
            return None
        # Contract with the calendar helper: local_calendar.backend_for(ctx, account_row).
        factory = getattr(local_calendar, "backend_for", None)
        if factory is None:
            return None
        return factory(ctx, account)

    def on_account_deleted(self, ctx_store: Any, account_id: int, data_dir: str) -> None:
        import shutil

        shutil.rmtree(account_dir(data_dir, account_id), ignore_errors=True)


LOCAL = register(LocalConnector())
