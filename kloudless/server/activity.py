"""The activity log: the one way every change is recorded (events API, webhooks).

:class:`ActivityLog` appends an event to the ``activity`` table and, once the surrounding store
transaction commits, tells its listeners (webhook delivery). Called inside the change's own
transaction, the event commits or rolls back with the change.

:class:`ActivityRecorder` is the same log bound to one account (and the caller's address): it is
what a connector is given (:class:`~kloudless.server.connectors.base.AccountEnv`) to record the
changes it makes. ``describe`` turns a backend object into the event's metadata (the API's JSON
of the object); the API layer supplies it, so connectors never import API serializers.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from .store import Store

log = logging.getLogger("kloudless.server")

#: Called after each activity append has committed: ``listener(account_id, cursor)``.
ActivityListener = Callable[[int, int], None]
#: Called inside the append's transaction: ``writer(account_id, cursor)``; may only write to
#: the store (no I/O that can wait), and its writes commit or roll back with the change.
ActivityWriter = Callable[[int, int], object]
#: Turns a backend object (a ``StorageObject``, a calendar record, ...) into event metadata.
Describe = Callable[[Any], dict[str, Any]]

__all__ = ["ActivityListener", "ActivityLog", "ActivityRecorder", "ActivityWriter", "Describe"]


class ActivityLog:
    """Appends activity events, runs the writers in the same transaction and notifies
    listeners after the commit.

    :param store: the server's store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        #: Called after every committed append (webhook delivery plugs in here).
        self.listeners: list[ActivityListener] = []
        #: Run inside every append's transaction (webhook delivery queues there).
        self.writers: list[ActivityWriter] = []

    def record(
        self,
        account_id: int,
        type_: str,
        metadata: dict[str, Any],
        object_id: str | None = None,
        ip: str | None = None,
        actor: dict[str, Any] | None = None,
    ) -> int:
        """Append an event (``add``, ``update``, ``delete``, ``rename``, ``move``, ``copy``).

        :param metadata: the object's JSON as the API returns it.
        :param actor: who acted, when not the account itself (impersonation).
        :returns: the new cursor.
        """
        # A transaction of its own joins the request's unit of work (see Store.unit_of_work),
        # so the event commits with the change and the stored answer.
        with self.store.transaction():
            cursor = self.store.append_activity(
                account_id, type_, object_id or metadata.get("id"), metadata, ip, actor
            )
            for writer in list(self.writers):
                writer(account_id, cursor)

        def notify() -> None:
            for listener in list(self.listeners):
                try:
                    listener(account_id, cursor)
                except Exception:  # a listener must never break the request
                    log.exception("activity listener failed")

        self.store.after_commit(notify)
        return cursor


def _as_metadata(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise TypeError(f"no describe function for {type(obj).__name__}")
    return obj


class ActivityRecorder:
    """One account's activity log, as given to connectors.

    :param log: the server's :class:`ActivityLog`.
    :param account_id: the account whose changes are recorded.
    :param ip: the caller's address, stored with each event.
    :param describe: turns the objects passed to :meth:`record` into event metadata; without
        it :meth:`record` takes the metadata dict itself.
    :param actor: who acts, when not the account itself (an admin account impersonating a
        team user), stored with each event.
    """

    def __init__(
        self,
        log: ActivityLog,
        account_id: int,
        ip: str | None = None,
        describe: Describe | None = None,
        actor: dict[str, Any] | None = None,
    ) -> None:
        self.log = log
        self.account_id = int(account_id)
        self.ip = ip
        self.describe: Describe = describe or _as_metadata
        self.actor = actor

    def record(self, type_: str, obj: Any) -> int:
        """Append one event for ``obj`` (inside the change's transaction when there is one).

        :returns: the new cursor.
        """
        metadata = self.describe(obj)
        object_id = metadata.get("id", getattr(obj, "id", None))
        return self.log.record(
            self.account_id,
            type_,
            metadata,
            None if object_id is None else str(object_id),
            self.ip,
            self.actor,
        )
