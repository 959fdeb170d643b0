"""Connector interfaces.

An account's ``service`` (``local``, ``webdav``, ``caldav``, ...) maps to a :class:`Connector`
(the table is in :mod:`~kloudless.server.connectors.registry`). A connector offers optional
backends: :meth:`Connector.storage` returns a :class:`StorageBackend` bound to one account,
:meth:`Connector.calendar` a calendar backend (see ``calendar_base.py``),
:meth:`Connector.contacts` a contacts backend (see ``contacts_base.py``), and
:meth:`Connector.passthrough` handles ``POST accounts/{id}/raw``. Returning None (the default)
means "not supported": the API answers 501 ``not_implemented``.

A connector is given what it needs explicitly, in an :class:`AccountEnv` (the store, the server
settings, the account row, the account's activity recorder), never the HTTP request context;
pass-through gets a :class:`PassthroughRequest` built by the API layer.

Backends raise :class:`~kloudless.server.errors.ApiError` for user-facing failures (404 for
unknown ids, 409 for name conflicts, ...).
"""

from __future__ import annotations

import abc
import json
import sqlite3
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from ..activity import ActivityRecorder
from ..errors import ApiError
from ..intents import Intent
from ..outbound import DEFAULT_POLICY, OutboundPolicy
from ..settings import Settings
from ..store import Store

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from .contacts_base import ContactsBackend

#: Most bytes in one name, and the characters names may not contain.
MAX_NAME_BYTES = 255


def validate_name(name: Any, what: str = "name") -> str:
    """Check a file or folder name.

    :returns: the name. :raises ApiError: 400 ``invalid_parameters`` when it is not a string, is
        empty, ``.`` or ``..``, has ``/``, ``\\``, NUL or control characters, or is over 255
        bytes of UTF-8.
    """
    if not isinstance(name, str) or not name:
        raise ApiError(400, "invalid_parameters", f"'{what}' must be a non-empty string.")
    if name in (".", ".."):
        raise ApiError(400, "invalid_parameters", f"'{what}' may not be '.' or '..'.")
    if any(c in name for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ApiError(
            400,
            "invalid_parameters",
            f"'{what}' may not contain '/', '\\', NUL or control characters.",
        )
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_parameters", f"'{what}' is not valid Unicode.") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise ApiError(
            400, "invalid_parameters", f"'{what}' is longer than {MAX_NAME_BYTES} bytes of UTF-8."
        )
    return name


@dataclass(frozen=True)
class AccountEnv:
    """What a connector's backend gets for one account (instead of the HTTP request).

    :param store: the server's store (for local state: rows, snapshots, intents).
    :param settings: the server settings (data dir, limits).
    :param account: the account row (``id``, ``app_id``, ``service``, ``account``, ``config``).
    :param activity: records the account's changes (see :mod:`kloudless.server.activity`).
    :param intent: for a request with an ``Idempotency-Key``, its intent slot (see
        :mod:`kloudless.server.intents`): remote backends record there what they are about to
        create upstream, and find it again when a crash made the client retry.
    """

    store: Store
    settings: Settings
    account: sqlite3.Row
    activity: ActivityRecorder
    intent: Intent | None = None

    @property
    def account_id(self) -> int:
        """The account's numeric id."""
        return int(self.account["id"])

    @property
    def config(self) -> dict[str, Any]:
        """The account's stored connector config (sealed credentials stay sealed)."""
        value = json.loads(self.account["config"] or "{}")
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class PassthroughRequest:
    """A ``POST accounts/{id}/raw`` call as the API layer parsed it, for
    :meth:`Connector.passthrough`.

    :param method: the upstream method (``X-Kloudless-Raw-Method``).
    :param uri: the upstream URI (``X-Kloudless-Raw-URI``).
    :param headers: the request's headers, in order (the connector drops the API's own).
    :param raw_headers: the ``X-Kloudless-Raw-Headers`` JSON text ("" when absent).
    :param query: the query parameters, in order.
    :param body: the body stream; ``content_length`` its declared size, ``chunked`` true for a
        body of unknown size.
    """

    method: str
    uri: str
    headers: list[tuple[str, str]]
    raw_headers: str
    query: list[tuple[str, str]]
    body: IO[bytes]
    content_length: int | None
    chunked: bool


@dataclass
class StorageObject:
    """A file or folder as a backend describes it; the API adds ``api``, ``href``, ``account``.

    ``ancestors`` lists ``(id, name)`` pairs from the root down to the parent.
    ``raw`` is the connector's native record (sent only with ``X-Kloudless-Raw-Data``);
    ``raw_id`` the upstream's own id of the object when it differs from ``id`` (a WebDAV path).
    """

    id: str
    name: str
    type: str  # "file" | "folder"
    parent_id: str | None
    size: int | None = None
    mime_type: str | None = None
    created: str | None = None
    modified: str | None = None
    ancestors: list[tuple[str, str]] = field(default_factory=list)
    etag: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    raw_id: str | None = None


@dataclass
class FileContents:
    """An opened file for download: the stream (closed by the response), size, type, etag,
    and its name (for the download's ``Content-Disposition``)."""

    stream: IO[bytes]
    size: int
    mime_type: str
    etag: str | None = None
    modified: str | None = None
    name: str | None = None


#: The capabilities of a read-write storage backend that offers every operation; a backend
#: reports them with ``dict.fromkeys(READ_WRITE_CAPABILITIES, True)`` plus any of its own.
READ_WRITE_CAPABILITIES = (
    "can_upload_file",
    "can_rename_file",
    "can_move_file",
    "can_copy_file",
    "can_update_file_content",
    "can_delete_file",
    "can_create_folder",
    "can_rename_folder",
    "can_move_folder",
    "can_copy_folder",
    "can_delete_folder",
    "multipart_uploads_supported_for_files",
    "can_search_file_name",
)


@dataclass(frozen=True)
class UpstreamLink:
    """A public link made by the service itself.

    :param expiration: when it stops working (ISO-8601 UTC), as far as the server knows; None
        when it does not expire or the service does not say.
    """

    url: str
    expiration: str | None = None


class StorageBackend(abc.ABC):
    """Storage operations for one account. Ids are opaque, URL-safe strings; ``root`` is the
    root folder. Every method raises ApiError 404 for ids that do not exist in this account.

    Every write records its activity event through the account's recorder
    (``env.activity.record(type_, obj)``: ``add``, ``update``, ``rename``, ``move``, ``copy``,
    ``delete``) once the change is made, inside the backend's transaction when it has local
    state; the API layer never records storage events itself."""

    #: Capabilities reported by ``GET accounts/{id}?retrieve_full=true``.
    capabilities: dict[str, bool] = {}

    @abc.abstractmethod
    def get(self, object_id: str, kind: str) -> StorageObject:
        """:param kind: ``file`` or ``folder``. :returns: the object."""

    @abc.abstractmethod
    def list_folder(self, folder_id: str, recursive: bool = False) -> list[StorageObject]:
        """:returns: the folder's children (all descendants when ``recursive``), folders first."""

    def list_folder_page(
        self, folder_id: str, recursive: bool, start: int, count: int, *, with_raw: bool = True
    ) -> tuple[list[StorageObject], bool]:
        """One slice of :meth:`list_folder` (same order), for paged listings.

        Backends that can build only the requested objects override it; this default slices
        the full list.

        :param with_raw: False when nobody will read the objects' ``raw`` records (the request
            did not ask for them): a backend may then leave them empty.
        :returns: ``(objects[start:start + count], whether more objects follow them)``.
        """
        objects = self.list_folder(folder_id, recursive)
        return objects[start : start + count], len(objects) > start + count

    def find_child(self, folder_id: str, name: str) -> StorageObject | None:
        """:returns: the folder's child named exactly ``name``, or None. :raises ApiError: 404
        for a missing folder. Backends with an index by name override this scan."""
        for child in self.list_folder(folder_id):
            if child.name == name:
                return child
        return None

    @abc.abstractmethod
    def create_folder(
        self, parent_id: str, name: str, conflict_if_exists: bool
    ) -> tuple[StorageObject, bool]:
        """:returns: ``(folder, created)``; an existing folder is returned when
        ``conflict_if_exists`` is false, else 409 ``naming_conflict``."""

    @abc.abstractmethod
    def upload(
        self, parent_id: str, name: str, stream: IO[bytes], overwrite: bool, max_bytes: int
    ) -> StorageObject:
        """Store a new file atomically (nothing visible unless complete). With ``overwrite``
        false an existing name gets a new ``name (1).ext`` style name.

        :raises ApiError: 413 when the stream exceeds ``max_bytes``.
        """

    @abc.abstractmethod
    def open_contents(self, file_id: str) -> FileContents:
        """:returns: the file opened for reading."""

    @abc.abstractmethod
    def replace_contents(self, file_id: str, stream: IO[bytes], max_bytes: int) -> StorageObject:
        """Replace a file's bytes atomically. :returns: the updated file."""

    @abc.abstractmethod
    def update(
        self, object_id: str, kind: str, name: str | None = None, parent_id: str | None = None
    ) -> StorageObject:
        """Rename and/or move. :raises ApiError: 409 on a name conflict, 400 for a bad parent."""

    @abc.abstractmethod
    def copy(self, object_id: str, kind: str, parent_id: str, name: str | None) -> StorageObject:
        """:returns: the copy (a name conflict auto-renames the copy)."""

    @abc.abstractmethod
    def delete(self, object_id: str, kind: str, recursive: bool, permanent: bool) -> StorageObject:
        """Delete (a folder's subtree atomically). :returns: the object as it was.

        :raises ApiError: 403 ``folder_not_empty`` for a non-empty folder without ``recursive``.
        """

    @abc.abstractmethod
    def search(self, query: str, parents: list[str] | None) -> list[StorageObject]:
        """:returns: objects whose name contains ``query`` (case-insensitive)."""

    @abc.abstractmethod
    def recent(self, after: str | None) -> list[StorageObject]:
        """:returns: files by ``modified`` descending, optionally only those after a time."""

    def id_for_raw_id(self, raw_id: str, kind: str) -> str:
        """:returns: the id of the ``kind`` object whose native id is ``raw_id``, or ``raw_id``
        itself for backends whose ids are native (``local``). Backends that encode an upstream
        id (WebDAV: the path) override it. :raises ApiError: 404 for a malformed ``raw_id``."""
        return raw_id

    def find_raw_id(self, raw_id: str, kind: str | None) -> StorageObject:
        """:returns: the object whose native id is ``raw_id`` (of ``kind``, or of either kind).

        :raises ApiError: 404 when there is none.
        """
        for candidate in (kind,) if kind else ("file", "folder"):
            try:
                return self.get(self.id_for_raw_id(raw_id, candidate), candidate)
            except ApiError as exc:
                if exc.status != 404:
                    raise
        raise ApiError(404, "not_found", f"No {kind or 'object'} has the raw id {raw_id[:100]!r}.")

    @abc.abstractmethod
    def quota(self) -> dict[str, int | None]:
        """:returns: ``{"used": bytes, "total": bytes or None}``."""

    def public_link(self, object_id: str, kind: str, expires_in: int | None = None) -> UpstreamLink:
        """:returns: the service's own public link of an object (made upstream, served by the
        service, not by this server).

        :param expires_in: seconds the link should work (the service may cap it); None: the
            service's default.
        :raises ApiError: 501 ``not_implemented`` when the service has no public links.
        """
        raise no_upstream_links()

    def remove_public_link(self, object_id: str, kind: str) -> None:
        """Remove the service's public link of an object (where the service can revoke one).

        :raises ApiError: 501 ``not_implemented`` when the service has no public links.
        """
        raise no_upstream_links()


def no_upstream_links() -> ApiError:
    """:returns: the error for a service without public links of its own (not raised)."""
    return ApiError(
        501,
        "not_implemented",
        "This service offers no public links of its own; create the link without 'upstream'"
        " (this server serves it).",
    )


class Connector:
    """A service. Subclass it and override the backends it offers, then list an instance in
    :mod:`~kloudless.server.connectors.registry`.

    :param service: service identifier stored on accounts (``local``).
    :param service_name: display name (``Local``).
    :param apis: API families announced on the account object (``storage``, ``calendar``, ...).
    :param records_intents: its backends may record intents (``AccountEnv.intent``, see
        :mod:`~kloudless.server.intents`); False for one whose backends never do, so that no
        intent can exist under the keys of its accounts' requests (none is deleted when their
        answers are stored).
    """

    service: str = ""
    service_name: str = ""
    apis: tuple[str, ...] = ()
    records_intents: bool = True

    def storage(self, env: AccountEnv) -> StorageBackend | None:
        """:returns: the account's storage backend, or None when unsupported."""
        return None

    def calendar(self, env: AccountEnv) -> Any | None:
        """:returns: the account's calendar backend (a ``CalendarBackend``), or None."""
        return None

    def contacts(self, env: AccountEnv) -> ContactsBackend | None:
        """:returns: the account's contacts backend (a ``ContactsBackend``), or None."""
        return None

    def passthrough(self, env: AccountEnv, request: PassthroughRequest) -> Response | None:
        """Forward ``POST accounts/{id}/raw`` upstream. :returns: the response, or None when
        the service has no upstream HTTP API (the API then answers 501)."""
        return None

    def validate_config(
        self,
        config: dict[str, Any],
        store: Store | None = None,
        policy: OutboundPolicy = DEFAULT_POLICY,
    ) -> dict[str, Any]:
        """Check account settings given on ``POST /accounts``, the OAuth consent form or
        ``kloudless accounts create`` (e.g. a server URL and credentials).

        :param config: the settings (request body minus ``service`` and ``account``).
        :param store: the server's store, when there is one; connectors use its
            ``server_secret()`` to seal credentials before they are stored.
        :param policy: the server's outbound policy
            (:func:`kloudless.server.outbound.policy_for`); every connection a connector makes
            for the account must obey it.
        :returns: the config to store. :raises ApiError: 400 when invalid.
        """
        return config

    def import_config(
        self, fields: dict[str, Any], store: Store, previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Build an account config from a Kloudless account import (``POST /v1/accounts`` with
        ``token``, ``token_secret``, ``refresh_token`` and per-service fields such as
        ``domain``), *without* contacting the upstream: Kloudless stored imported credentials
        untried. Seal secrets with ``store.server_secret()`` and set ``"imported": true``
        in the config; a later upstream 401 then marks the account (see
        :mod:`kloudless.server.imported`).

        :param fields: the import body minus the account fields (``service``, ``account``...).
        :param previous: the stored config, when ``PATCH /v1/accounts/{id}`` replaces
            credentials of an existing account.
        :returns: the config to store. :raises ApiError: 400 ``invalid_parameters`` naming a
            missing field; the default refuses: the service takes no imported credentials.
        """
        raise ApiError(
            400,
            "invalid_parameters",
            f"The {self.service} service takes no imported credentials ('token').",
        )

    def account_apis(self, config: dict[str, Any]) -> tuple[str, ...]:
        """:param config: the account's stored config.
        :returns: the API families this account offers (shown as the account's ``apis``);
            a provider account offers ``calendar`` only when the user granted it.
        """
        return self.apis

    def account_identity(self, config: dict[str, Any]) -> tuple[str, str | None]:
        """:param config: a config :meth:`validate_config` returned.
        :returns: ``(service id to store on the account, default display name or None)``;
            a connector serving several services (rclone) picks the service from the config.
        """
        return self.service, None

    def on_account_deleted(self, store: Store, account_id: int, data_dir: str) -> None:
        """Clean up connector state after an account is deleted (files on disk, ...)."""
