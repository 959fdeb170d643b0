"""The server without HTTP: what handlers, connectors' factories and background jobs share.

:class:`Core` owns the settings, the store, the activity log, the background executor (tasks,
sweeps), webhook delivery and the sweeper. The WSGI application
(:class:`~kloudless.server.app.ServerApp`) is a :class:`Core` plus routing, authentication and
the JSON error contract. Any request can reach any process: nothing here must be shared
between processes except through the store.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import instances, webhooks
from .activity import ActivityListener, ActivityLog, ActivityRecorder, ActivityWriter, Describe
from .connectors import caldav, rclone, webdav_client
from .connectors.base import AccountEnv, Connector
from .connectors.registry import get_connector
from .intents import Intent
from .recovery import orphan_cutoff, recover, take_over
from .settings import Settings
from .store import Store
from .sweep import Sweeper
from .transfer_limits import TransferLimits

__all__ = ["Core"]


class Core:
    """Settings, store, activity log, executor, webhooks and sweeper of one server process.

    :param settings: the server settings; the data dir is created if missing.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Connectors and API modules register their tables' migrations at import time (the
        # imports above and the app's), so the store is opened only now.
        self.store = Store(settings.db_path, settings.database_url)
        #: This process in the registry of live server processes (owner of its claims).
        self.instance = instances.Instance(self.store)
        #: What start-up recovery found left in progress by an earlier process: all of it only
        #: when no other live process shares the database (it would undo their work), else
        #: what dead processes left (:func:`~kloudless.server.recovery.take_over`).
        self.recovered: dict[str, int] = {}
        orphans_before = None
        if self.instance.register() == 0:
            # Before this process writes a blob: the start-up sweep removes the orphan blobs
            # older than this, in the background (the store is not listed here).
            orphans_before = orphan_cutoff(settings)
            self.recovered = recover(self.store, settings)
        else:  # others live: only what dead processes left (e.g. the worker this one replaces)
            self.recovered = take_over(self.store)
        rclone.configure(settings)  # the rcd itself starts on the first rclone account's use
        #: The one activity log (events API, webhooks).
        self.activity = ActivityLog(self.store)
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kloudless-task")
        #: Webhook delivery (a background thread started on the first activity).
        self.webhooks = webhooks.attach(self)
        self.sweeper = Sweeper(self, orphans_before=orphans_before)
        self.sweeper.maybe_run()  # start-up sweep, in the background
        #: Concurrent uploads and downloads per credential and client address.
        self.transfer_limits = TransferLimits(
            settings.transfers_per_credential, settings.transfers_per_address
        )

    @property
    def instance_id(self) -> str:
        """:returns: this process's id in the registry of live server processes."""
        return self.instance.id

    @property
    def activity_listeners(self) -> list[ActivityListener]:
        """Called after every committed activity append (``listener(account_id, cursor)``)."""
        return self.activity.listeners

    @property
    def activity_writers(self) -> list[ActivityWriter]:
        """Run inside every activity append's transaction (``writer(account_id, cursor)``)."""
        return self.activity.writers

    def connector(self, account: sqlite3.Row) -> Connector:
        """:returns: the :class:`~kloudless.server.connectors.base.Connector` of the account."""
        return get_connector(str(account["service"]))

    def account_env(
        self,
        account: sqlite3.Row,
        ip: str | None = None,
        describe: Describe | None = None,
        actor: dict[str, Any] | None = None,
        request_key: str | None = None,
    ) -> AccountEnv:
        """:returns: what the account's connector is given: store, settings, account row, an
        activity recorder (``ip`` and ``actor`` stored with its events, ``describe`` building
        their metadata) and, for a keyed request (``request_key``), its intent slot.
        """
        recorder = ActivityRecorder(self.activity, int(account["id"]), ip, describe, actor)
        intent = None
        if request_key is not None:
            intent = Intent(self.store, request_key, int(account["id"]))
        return AccountEnv(self.store, self.settings, account, recorder, intent)

    def close(self) -> None:
        """Stop background work, close pooled upstream (DAV) connections and the database."""
        self.webhooks.stop()
        self.executor.shutdown(wait=True)
        self.instance.close()
        webdav_client.close_clients()
        rclone.close(self.settings)
        caldav.close_backends()
        self.store.close()
