"""The ``webdav`` connector: the storage API over any WebDAV server (Nextcloud, ownCloud,
Apache mod_dav, WsgiDAV, ...), plus pass-through.

Ids
    WebDAV is path-based, so ids encode the path relative to the account's WebDAV root:
    ``file_`` or ``folder_`` + unpadded base64url of the UTF-8 path (``root`` is the root),
    like the ``path`` ids Kloudless used for path-based services. An id is stable for as long
    as the object stays at its path; a rename or move gives the object the id of its new path
    (the response of the PATCH carries it). Paths whose id would exceed 512 characters
    (about 380 bytes of path) are not addressable.

Uploads
    The body is spooled to a temporary file on the gateway (enforcing the size limit), then sent
    once with a streamed ``PUT`` (with ``Content-Length``) to a hidden temporary name in the
    target folder, then moved (``MOVE``) onto the final name, so a broken upload never leaves
    a partial file under the real name. Multipart uploads reach :meth:`WebDAVStorage.upload` as one
    stream of the assembled parts.

Activity
    Changes made through the API are logged by the API layer. Changes made directly on the
    WebDAV server are detected when a folder is listed: the members' ETag (or
    ``getlastmodified`` and size) are compared with the snapshot taken at the previous listing
    of that folder and differences are logged as ``add``/``update``/``delete`` events. The first
    listing of a folder only records the baseline.

Deletes are permanent (WebDAV has no trash); ``permanent`` is accepted and ignored.
"""

from __future__ import annotations

import base64
import binascii
import io
import mimetypes
import posixpath
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

from kloudless.server.activity import ActivityRecorder
from kloudless.server.availability import parse_datetime
from kloudless.server.connectors.base import (
    READ_WRITE_CAPABILITIES,
    AccountEnv,
    Connector,
    FileContents,
    PassthroughRequest,
    StorageBackend,
    StorageObject,
    validate_name,
)
from kloudless.server.connectors.webdav_auth import (
    check_address,
    clean_settings,
    credentials,
    imported_config,
    stored_config,
)
from kloudless.server.connectors.webdav_client import (
    DAVResource,
    WebDAVClient,
    client_for,
    normalize_path,
)
from kloudless.server.connectors.webdav_errors import (
    InvalidParentFolder,
    NamingConflict,
    NotFound,
    UpstreamError,
)
from kloudless.server.connectors.webdav_passthrough import forward_request
from kloudless.server.connectors.webdav_snapshots import Snapshots
from kloudless.server.connectors.webdav_streams import RemoteFile, Spooled
from kloudless.server.errors import (
    ApiError,
    invalid_parameters,
    naming_conflict,
    not_found,
)
from kloudless.server.intents import Intent
from kloudless.server.outbound import DEFAULT_POLICY, OutboundPolicy, policy_for

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from kloudless.server.store import Store

ROOT = "root"
MAX_ID_LENGTH = 512
#: Bounds of the recursive walks behind ``recursive`` listings, search and recent.
MAX_WALK_ENTRIES = 20000
MAX_WALK_DEPTH = 64
#: Attempts at a free ``name (n).ext`` before giving up.
MAX_RENAME_ATTEMPTS = 1000
#: Prefix of the hidden temporary names uploads use before their final MOVE.
UPLOAD_PREFIX = ".kloudless-upload-"
_CHUNK = 64 * 1024

# -- ids ----------------------------------------------------------------------------------------


def encode_id(path: str, kind: str) -> str:
    """:returns: the opaque id of the object at ``path`` (``root`` for ``"/"``)."""
    path = normalize_path(path)
    if path == "/":
        return ROOT
    text = base64.urlsafe_b64encode(path.encode("utf-8")).decode().rstrip("=")
    return f"{kind}_{text}"


def decode_id(object_id: str) -> tuple[str | None, str]:
    """:returns: ``(kind, path)``; ``kind`` is None for the root.

    :raises ApiError: 404 ``not_found`` for ids this connector did not make.
    """
    if object_id == ROOT:
        return None, "/"
    kind, _, text = object_id.partition("_")
    if kind not in ("file", "folder") or not text or len(object_id) > MAX_ID_LENGTH:
        raise not_found(f"Not found: {object_id[:100]}")
    try:
        path = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
        path = normalize_path(path)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise not_found(f"Not found: {object_id[:100]}") from None
    if path == "/" or encode_id(path, kind) != object_id:
        raise not_found(f"Not found: {object_id[:100]}")
    return kind, path


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parent(path: str) -> str:
    return posixpath.dirname(path.rstrip("/")) or "/"


def _join(folder: str, name: str) -> str:
    return normalize_path(posixpath.join(folder, name))


def _signature(res: DAVResource) -> str:
    """What must change when a resource's contents change (for change detection)."""
    if res.etag:
        return res.etag
    return f"{_iso(res.last_modified)}|{res.size}"


def _candidate_names(name: str) -> Iterator[str]:
    """Yield ``name``, ``name (1).ext``, ``name (2).ext``, ..."""
    yield name
    stem, ext = posixpath.splitext(name)
    if not stem:  # ".bashrc" has no extension
        stem, ext = name, ""
    for number in range(1, MAX_RENAME_ATTEMPTS):
        yield f"{stem} ({number}){ext}"


# -- downloads ----------------------------------------------------------------------------------


# -- the backend --------------------------------------------------------------------------------


class WebDAVStorage(StorageBackend):
    """:class:`StorageBackend` of one ``webdav`` account.

    :param client: the account's WebDAV client.
    :param account_id: the account (for the change-detection snapshots and activity).
    :param store: the server's store (change-detection snapshots); optional for direct use.
    :param activity: records the upstream changes found by listings; optional too.
    :param intent: the intent slot of a keyed request: uploads and copies record the path they
        are about to create, and a retry after a crash finds that object instead of creating a
        ``name (1)`` copy.
    """

    capabilities = dict.fromkeys(READ_WRITE_CAPABILITIES, True)

    def __init__(
        self,
        client: WebDAVClient,
        account_id: int,
        store: Store | None = None,
        activity: ActivityRecorder | None = None,
        intent: Intent | None = None,
    ) -> None:
        self.client = client
        self.account_id = int(account_id)
        self.store = store
        self.activity = activity
        self.intent = intent

    # -- objects -------------------------------------------------------------------------------

    def _object(self, res: DAVResource) -> StorageObject:
        kind = "folder" if res.is_collection else "file"
        path = res.path
        ancestors: list[tuple[str, str]] = []
        if path != "/":
            ancestors.append((ROOT, ""))
            parts = path.strip("/").split("/")[:-1]
            for i in range(len(parts)):
                sub = "/" + "/".join(parts[: i + 1])
                ancestors.append((encode_id(sub, "folder"), parts[i]))
        mime = None
        if kind == "file":
            mime = (res.content_type or "").split(";")[0].strip() or (
                mimetypes.guess_type(res.name)[0] or "application/octet-stream"
            )
        raw = {"href": res.href, "properties": dict(res.props)}
        return StorageObject(
            id=encode_id(path, kind),
            name=res.name,
            type=kind,
            parent_id=None if path == "/" else encode_id(_parent(path), "folder"),
            size=res.size if kind == "file" else None,
            mime_type=mime,
            created=_iso(res.created),
            modified=_iso(res.last_modified),
            ancestors=ancestors,
            etag=res.etag,
            raw=raw,
            raw_id=path,
        )

    def id_for_raw_id(self, raw_id: str, kind: str) -> str:
        """A WebDAV object's native id is its path below the account's root (``/a/b.txt``)."""
        try:
            return encode_id(raw_id if raw_id.startswith("/") else "/" + raw_id, kind)
        except ValueError:  # climbs above the root
            raise not_found(f"Not found: {raw_id[:100]!r}") from None

    def _stat(self, object_id: str, kind: str | None) -> DAVResource:
        id_kind, path = decode_id(object_id)
        if kind is not None and id_kind is not None and id_kind != kind:
            raise not_found(f"{kind.capitalize()} not found: {object_id[:100]}")
        try:
            res = self.client.stat(path)
        except NotFound:
            raise not_found(
                f"{(kind or 'object').capitalize()} not found: {object_id[:100]}"
            ) from None
        if kind is not None and (kind == "folder") != res.is_collection:
            raise not_found(f"{kind.capitalize()} not found: {object_id[:100]}")
        return res

    def _folder_path(self, folder_id: Any) -> str:
        """:returns: the path of a target folder. :raises ApiError: 400 for a bad parent."""
        if not isinstance(folder_id, str):
            raise ApiError(400, "invalid_parent_folder", "'parent_id' must be a folder id.")
        try:
            res = self._stat(folder_id, "folder")
        except ApiError as exc:
            if exc.status != 404:
                raise
            raise ApiError(
                400, "invalid_parent_folder", f"Invalid parent folder: {folder_id[:100]}"
            ) from None
        return res.path

    def _members(self, path: str) -> list[DAVResource]:
        _, members = self.client.list_folder(path)
        return [m for m in members if not m.name.startswith(UPLOAD_PREFIX)]

    @staticmethod
    def _sorted(objects: list[StorageObject]) -> list[StorageObject]:
        return sorted(objects, key=lambda o: (o.type != "folder", o.name.lower(), o.name))

    # -- reads ---------------------------------------------------------------------------------

    def get(self, object_id: str, kind: str) -> StorageObject:
        return self._object(self._stat(object_id, kind))

    def list_folder(self, folder_id: str, recursive: bool = False) -> list[StorageObject]:
        if recursive:
            res = self._stat(folder_id, "folder")
            return [self._object(m) for m in self._walk(res.path, detect=True)]
        _, path = decode_id(folder_id)
        try:
            folder, members = self.client.list_folder(path)  # one PROPFIND, depth 1
        except NotFound:
            raise not_found(f"Folder not found: {folder_id[:100]}") from None
        if not folder.is_collection or folder_id != encode_id(path, "folder"):
            raise not_found(f"Folder not found: {folder_id[:100]}")
        members = [m for m in members if not m.name.startswith(UPLOAD_PREFIX)]
        self._detect_changes(path, members)
        return self._sorted([self._object(m) for m in members])

    def _walk(self, path: str, detect: bool = False) -> list[DAVResource]:
        """Breadth-first listing below ``path``, bounded in entries and depth."""
        found: list[DAVResource] = []
        queue: list[tuple[str, int]] = [(path, 0)]
        while queue:
            folder, depth = queue.pop(0)
            members = self._members(folder)
            if detect:
                self._detect_changes(folder, members)
            members.sort(key=lambda m: (not m.is_collection, m.name.lower(), m.name))
            for member in members:
                found.append(member)
                if len(found) >= MAX_WALK_ENTRIES:
                    return found
                if member.is_collection and depth + 1 < MAX_WALK_DEPTH:
                    queue.append((member.path, depth + 1))
        return found

    def open_contents(self, file_id: str) -> FileContents:
        res = self._stat(file_id, "file")
        obj = self._object(res)
        size = res.size if res.size is not None else 0
        return FileContents(
            stream=io.BufferedReader(RemoteFile(self.client, res.path, size), _CHUNK),
            size=size,
            mime_type=obj.mime_type or "application/octet-stream",
            etag=res.etag.strip('"') if res.etag else None,
            modified=obj.modified,
            name=obj.name,
        )

    def search(self, query: str, parents: list[str] | None) -> list[StorageObject]:
        needle = query.lower()
        roots = [self._stat(p, "folder").path for p in parents] if parents else ["/"]
        results: dict[str, StorageObject] = {}
        for root in roots:
            for res in self._walk(root):
                if needle in res.name.lower():
                    obj = self._object(res)
                    results[obj.id] = obj
        return list(results.values())

    def recent(self, after: str | None) -> list[StorageObject]:
        resources = [r for r in self._walk("/") if not r.is_collection]
        if after:
            try:
                since = parse_datetime(after)
            except ValueError:
                return []  # an invalid 'after' matches nothing (spec §5.6)
            # WebDAV times (getlastmodified) have whole seconds: a file changed in the same
            # second as 'after' may be newer, so ties are listed (a client may see it twice,
            # never miss it).
            since = since.replace(microsecond=0)
            resources = [r for r in resources if r.last_modified and r.last_modified >= since]
        files = [self._object(r) for r in resources]
        return sorted(files, key=lambda f: f.modified or "", reverse=True)

    def quota(self) -> dict[str, int | None]:
        root = self.client.stat("/")
        total = None
        if root.quota_available is not None and root.quota_used is not None:
            total = root.quota_used + root.quota_available
        return {"used": root.quota_used, "total": total}

    # -- writes --------------------------------------------------------------------------------

    def create_folder(
        self, parent_id: str, name: str, conflict_if_exists: bool
    ) -> tuple[StorageObject, bool]:
        validate_name(name)
        parent = self._folder_path(parent_id)
        path = _join(parent, name)
        try:
            self.client.mkcol(path)
        except NamingConflict:
            existing = self.client.stat(path)
            existing_id = encode_id(path, "folder" if existing.is_collection else "file")
            if existing.is_collection and not conflict_if_exists:
                return self._object(existing), False
            raise naming_conflict(f"'{name}' already exists in the folder.", existing_id) from None
        obj = self._note(self.client.stat(path))
        self._log("add", obj)
        return obj, True

    def upload(
        self, parent_id: str, name: str, stream: IO[bytes], overwrite: bool, max_bytes: int
    ) -> StorageObject:
        validate_name(name)
        parent = self._folder_path(parent_id)
        with self._spool(stream, max_bytes) as (spooled, size):
            names = {m.name for m in self._members(parent)}
            existed = overwrite and name in names
            earlier = None if overwrite else self._earlier_attempt("upload", False, size)
            if earlier is not None:
                return earlier
            taken = set() if overwrite else names
            for candidate in _candidate_names(name):
                if candidate in taken:
                    continue
                path = _join(parent, candidate)
                self._intend("upload", path)
                try:
                    self._put_atomically(path, spooled, size, overwrite)
                except NamingConflict:
                    spooled.seek(0)
                    continue  # someone took the name meanwhile: try the next one
                break
            else:
                raise naming_conflict(f"No free name for '{name}'.", None)
        obj = self._note(self.client.stat(path))
        self._log("update" if existed else "add", obj)
        return obj

    def replace_contents(self, file_id: str, stream: IO[bytes], max_bytes: int) -> StorageObject:
        res = self._stat(file_id, "file")
        with self._spool(stream, max_bytes) as (spooled, size):
            self._put_atomically(res.path, spooled, size, overwrite=True)
        obj = self._note(self.client.stat(res.path))
        self._log("update", obj)
        return obj

    def _spool(self, stream: IO[bytes], max_bytes: int) -> Spooled:
        return Spooled(stream, max_bytes)

    def _put_atomically(self, path: str, body: IO[bytes], size: int, overwrite: bool) -> None:
        """PUT to a hidden name in the same folder, then MOVE onto ``path``."""
        temp = _join(_parent(path), f"{UPLOAD_PREFIX}{uuid.uuid4().hex}")
        mime = mimetypes.guess_type(posixpath.basename(path))[0] or "application/octet-stream"
        try:
            self.client.put(temp, body, mime, size)
            self.client.move(temp, path, overwrite=overwrite)
        except BaseException:
            try:
                self.client.delete(temp)
            except UpstreamError:
                pass  # it may not exist (PUT failed) or the server is gone
            raise

    def update(
        self,
        object_id: str,
        kind: str,
        name: str | None = None,
        parent_id: str | None = None,
    ) -> StorageObject:
        res = self._stat(object_id, kind)
        if res.path == "/":
            raise invalid_parameters("The root folder cannot be renamed or moved.")
        new_name = validate_name(name) if name is not None else res.name
        new_parent = self._folder_path(parent_id) if parent_id is not None else _parent(res.path)
        target = _join(new_parent, new_name)
        if target == res.path:
            return self._object(res)
        if res.is_collection and (target + "/").startswith(res.path + "/"):
            raise ApiError(400, "invalid_parent_folder", "A folder cannot move into itself.")
        try:
            self.client.move(res.path, target, collection=res.is_collection)
        except NamingConflict:
            existing = self.client.stat(target)
            existing_id = encode_id(target, "folder" if existing.is_collection else "file")
            raise naming_conflict(
                f"'{new_name}' already exists in the destination folder.", existing_id
            ) from None
        moved = self.client.stat(target)  # upstream first: local writes hold the write lock
        self._forget(res.path, subtree=res.is_collection)
        obj = self._note(moved)
        self._log("move" if _parent(target) != _parent(res.path) else "rename", obj)
        return obj

    def copy(self, object_id: str, kind: str, parent_id: str, name: str | None) -> StorageObject:
        res = self._stat(object_id, kind)
        if res.path == "/":
            raise invalid_parameters("The root folder cannot be copied.")
        new_name = validate_name(name) if name is not None else res.name
        parent = self._folder_path(parent_id)
        if res.is_collection and (parent + "/").startswith(res.path + "/"):
            raise ApiError(400, "invalid_parent_folder", "A folder cannot be copied into itself.")
        earlier = self._earlier_attempt("copy", res.is_collection, res.size)
        if earlier is not None:
            return earlier
        taken = {m.name for m in self._members(parent)}
        for candidate in _candidate_names(new_name):
            if candidate in taken:
                continue
            target = _join(parent, candidate)
            self._intend("copy", target)
            try:
                self.client.copy(res.path, target, collection=res.is_collection)
            except NamingConflict:
                continue
            break
        else:
            raise naming_conflict(f"No free name for '{new_name}'.", None)
        obj = self._note(self.client.stat(target))
        self._log("copy", obj)
        return obj

    def delete(self, object_id: str, kind: str, recursive: bool, permanent: bool) -> StorageObject:
        res = self._stat(object_id, kind)
        if res.path == "/":
            raise ApiError(403, "forbidden", "The root folder cannot be deleted.")
        if res.is_collection and not recursive and self._members(res.path):
            raise ApiError(
                403, "folder_not_empty", "The folder is not empty; delete it with recursive=true."
            )
        obj = self._object(res)
        self.client.delete(res.path, collection=res.is_collection)
        self._forget(res.path, subtree=res.is_collection)
        self._log("delete", obj)
        return obj

    # -- intents (keyed requests) --------------------------------------------------------------

    def _intend(self, op: str, path: str) -> None:
        """Record the path a keyed request is about to create, before creating it."""
        if self.intent is not None:
            self.intent.remember(op, {"path": path})

    def _earlier_attempt(self, op: str, collection: bool, size: int | None) -> StorageObject | None:
        """:returns: the object an interrupted earlier attempt of this keyed request created
        (its intent names a path that now exists, of the expected kind and size), recorded
        now; or None."""
        previous = None if self.intent is None else self.intent.recall(op)
        if previous is None or not isinstance(previous.get("path"), str):
            return None
        try:
            res = self.client.stat(previous["path"])
        except NotFound:
            return None
        if res.is_collection != collection or (not collection and res.size != size):
            return None
        obj = self._note(res)
        self._log("add" if op == "upload" else op, obj)
        return obj

    # -- change detection ----------------------------------------------------------------------

    def _snapshots(self) -> Snapshots | None:
        return None if self.store is None else Snapshots(self.store, self.account_id)

    def _detect_changes(self, folder: str, members: list[DAVResource]) -> None:
        """Log upstream changes in ``folder`` since its last listing, then store the snapshot."""
        snapshots = self._snapshots()
        if snapshots is None:
            return
        current = {
            m.name: ["folder" if m.is_collection else "file", _signature(m)] for m in members
        }
        assert self.store is not None
        with self.store.transaction():  # serialises snapshot updates
            previous = snapshots.load(folder)
            snapshots.save(folder, current)
        if previous is None:
            return  # first listing: the baseline
        by_name = {m.name: m for m in members}
        for name, (kind, sig) in sorted(current.items()):
            old = previous.get(name)
            if old is None or old[0] != kind:
                self._log("add", self._object(by_name[name]))
            elif kind == "file" and old[1] != sig:
                self._log("update", self._object(by_name[name]))
        for name, (kind, _sig) in sorted(previous.items()):
            if name not in current or current[name][0] != kind:
                path = _join(folder, name)
                gone = DAVResource(path=path, href="", is_collection=kind == "folder")
                self._log("delete", self._object(gone))
                if kind == "folder":
                    snapshots.forget(path, subtree=True)

    def _log(self, type_: str, obj: StorageObject) -> None:
        if self.activity is not None:
            self.activity.record(type_, obj)

    def _note(self, res: DAVResource) -> StorageObject:
        """Record an API-made change in its folder's snapshot (so it is not reported again).

        :returns: the object of ``res``.
        """
        snapshots = self._snapshots()
        if snapshots is not None:
            kind = "folder" if res.is_collection else "file"
            snapshots.note(res.path, kind, _signature(res))
        return self._object(res)

    def _forget(self, path: str, subtree: bool) -> None:
        snapshots = self._snapshots()
        if snapshots is not None:
            snapshots.forget(path, subtree)


def connect(
    settings: dict[str, Any],
    secret: bytes | None = None,
    policy: OutboundPolicy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Validate WebDAV connection settings against the server and build the account config.

    Checks the URL's address with the outbound ``policy``, then sends one ``PROPFIND``
    (depth 0) to the URL with the credentials.

    :param settings: ``url`` (or ``domain``), ``username``, ``password``.
    :param secret: the server secret (``Store.server_secret()``); when given the password is
        sealed (see :mod:`~kloudless.server.connectors.webdav_auth`), else stored as is.
    :param policy: the server's outbound policy (:func:`~kloudless.server.outbound.policy_for`).
    :returns: the ``config`` to store on the account (never returned by the API).
    :raises ApiError: 400 for bad settings, a refused address or a URL that is not a WebDAV
        collection; the upstream's errors otherwise (401 ``service_unauthorized`` for a wrong
        password, 503 ``service_not_available`` when nothing answers, ...).
    """
    url, username, password = clean_settings(settings)
    check_address(url, policy)
    with WebDAVClient(url, username, password, policy=policy) as client:
        try:
            root = client.stat("/")
        except NotFound:
            raise invalid_parameters("Nothing exists at this WebDAV URL.") from None
        except InvalidParentFolder:
            raise invalid_parameters("This URL is not a WebDAV collection.") from None
        if not root.is_collection:
            raise invalid_parameters("This URL is a file, not a WebDAV folder.")
    return stored_config(client.root_url, username, password, secret)


class WebDAVConnector(Connector):
    """Storage over a WebDAV server, with pass-through."""

    service = "webdav"
    service_name = "WebDAV"
    apis = ("storage", "events")

    def client(self, env: AccountEnv) -> WebDAVClient:
        """:returns: the pooled client of an account, from its stored credentials."""
        return client_for(
            *credentials(env.config, env.store.server_secret()), policy=policy_for(env.settings)
        )

    def storage(self, env: AccountEnv) -> StorageBackend | None:
        return WebDAVStorage(self.client(env), env.account_id, env.store, env.activity, env.intent)

    def passthrough(self, env: AccountEnv, request: PassthroughRequest) -> Response | None:
        return forward_request(request, self.client(env), env.settings.max_upload_bytes)

    def validate_config(
        self,
        config: dict[str, Any],
        store: Store | None = None,
        policy: OutboundPolicy = DEFAULT_POLICY,
    ) -> dict[str, Any]:
        """Check the settings against the server (see :func:`connect`).

        :param store: the server's store; when given the password is sealed with its secret.
        :param policy: the server's outbound policy.
        """
        return connect(config, store.server_secret() if store is not None else None, policy)

    def import_config(
        self, fields: dict[str, Any], store: Store, previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Kloudless import fields (``domain``, ``username``, ``token`` = the password), stored
        untried (see :func:`~kloudless.server.connectors.webdav_auth.imported_config`)."""
        return imported_config(fields, store.server_secret(), previous)

    def on_account_deleted(self, store: Store, account_id: int, data_dir: str) -> None:
        Snapshots(store, account_id).delete_all()


WEBDAV = WebDAVConnector()

__all__ = [
    "ROOT",
    "UPLOAD_PREFIX",
    "WEBDAV",
    "WebDAVConnector",
    "WebDAVStorage",
    "connect",
    "decode_id",
    "encode_id",
]
