"""The storage API over one rclone remote (any rclone backend), through the rcd.

Ids
    Stable opaque ids from :mod:`~kloudless.server.connectors.rclone_ids`: renames and moves made
    through the API keep them.

Uploads
    The request body streams to the rcd (``operations/uploadfile``, which streams it into the
    backend) under a hidden temporary name in the target folder, then ``operations/movefile``
    gives it its final name: a broken upload never shows under the real name, and the gateway
    keeps no copy, in memory or on disk (rclone itself spools to its temp folder only for
    backends that cannot take a stream of unknown size). Temporary names are hidden from
    listings. With ``overwrite=false`` a taken name gets a ``name (1).ext`` style name.

Activity
    Changes made through the API are recorded by the API layer. Changes made upstream are found
    when a folder is listed, by comparing with the previous listing of that folder (the
    snapshots of the WebDAV connector), as ``add``/``update``/``delete`` events; the first
    listing of a folder records only the baseline.

Deletes are permanent: rclone offers no common trash API.
"""

from __future__ import annotations

import io
import mimetypes
import posixpath
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from kloudless.server.connectors.base import (
    READ_WRITE_CAPABILITIES,
    FileContents,
    StorageBackend,
    StorageObject,
    UpstreamLink,
    no_upstream_links,
    validate_name,
)
from kloudless.server.connectors.rclone_errors import upstream_error
from kloudless.server.connectors.rclone_ids import ROOT, IdMap
from kloudless.server.connectors.rclone_rc import RcClient, RcError
from kloudless.server.connectors.rclone_streams import LimitedReader, rclone_file
from kloudless.server.connectors.webdav_snapshots import Snapshots
from kloudless.server.errors import (
    ApiError,
    invalid_parameters,
    naming_conflict,
    not_found,
    too_large,
)

if TYPE_CHECKING:
    from kloudless.server.activity import ActivityRecorder

#: Bounds of the walks behind ``recursive`` listings, search and recent.
MAX_WALK_ENTRIES = 20000
MAX_WALK_DEPTH = 64
MAX_RENAME_ATTEMPTS = 1000
UPLOAD_PREFIX = ".kloudless-upload-"
#: Seconds an aborted upload's temporary file is looked for (it may land after the abort).
TEMP_GRACE_SECONDS = 3.0
#: Temporary files older than this (crashed uploads) are removed when their folder is listed.
STALE_TEMP_SECONDS = 24 * 3600
_CHUNK = 64 * 1024
#: Hash types, best first, used as ETag when the backend has them.
_HASH_PREFERENCE = ("md5", "sha1", "sha256", "crc32", "dropbox", "quickxor", "whirlpool")


def _parent(path: str) -> str:
    return posixpath.dirname(path)


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _iso(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        text = value.replace("Z", "+00:00")
        head, dot, rest = text.partition(".")
        if dot:  # Go prints nanoseconds; Python parses at most microseconds
            digits = "".join(c for c in rest if c.isdigit())
            text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment.year < 1971:  # backends without times report the zero time
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _candidates(name: str) -> list[str]:
    stem, ext = posixpath.splitext(name)
    if not stem:
        stem, ext = name, ""
    return [name] + [f"{stem} ({n}){ext}" for n in range(1, MAX_RENAME_ATTEMPTS)]


def _presigned_expiry(url: str) -> datetime | None:
    """:returns: when an S3 presigned URL (``X-Amz-Date`` + ``X-Amz-Expires``) stops working,
    or None for other URLs. S3 caps them at 7 days, whatever was asked."""
    query = parse_qs(urlsplit(url).query)
    try:
        signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
        seconds = int(query["X-Amz-Expires"][0])
    except (KeyError, IndexError, ValueError):
        return None
    return signed.replace(tzinfo=timezone.utc) + timedelta(seconds=seconds)


class RcloneStorage(StorageBackend):
    """:class:`StorageBackend` of one rclone account.

    :param rc: the rcd client.
    :param remote: the rcd remote name of the account (its root is the account's root).
    :param ids: the account's ids.
    :param info: the remote's ``operations/fsinfo`` answer (features, hashes).
    :param snapshots: change-detection snapshots (None: no detection).
    :param activity: records the upstream changes found by listings (None: not recorded).
    """

    def __init__(
        self,
        rc: RcClient,
        remote: str,
        ids: IdMap,
        info: dict[str, Any],
        snapshots: Snapshots | None = None,
        activity: ActivityRecorder | None = None,
    ) -> None:
        self.rc = rc
        self.remote = remote
        self.ids = ids
        self.info = info
        self.snapshots = snapshots
        self.activity = activity
        features = info.get("Features") or {}
        hashes = [h for h in _HASH_PREFERENCE if h in (info.get("Hashes") or [])]
        self.hash_type = hashes[0] if hashes else None
        #: Object stores keep no empty folders: folders made through the API are kept in the
        #: id table until something is stored in them (or they are deleted).
        self.virtual_folders = not features.get("CanHaveEmptyDirectories", True)
        self.capabilities = dict.fromkeys(READ_WRITE_CAPABILITIES, True)
        self.capabilities.update(
            can_create_empty_folders=bool(features.get("CanHaveEmptyDirectories")),
            can_create_public_links=bool(features.get("PublicLink")),
            server_side_copy=bool(features.get("Copy")),
            server_side_move=bool(features.get("Move")),
            reports_quota=bool(features.get("About")),
            case_insensitive=bool(features.get("CaseInsensitive")),
            has_hashes=self.hash_type is not None,
        )

    # -- rc helpers ------------------------------------------------------------------------------

    def _call(self, command: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        try:
            return self.rc.call(command, params, **kw)
        except RcError as exc:
            raise upstream_error(exc) from None

    def _fs(self, path: str = "") -> str:
        return f"{self.remote}:{path}"

    def _list_opt(self) -> dict[str, Any]:
        opt: dict[str, Any] = {}
        if self.hash_type:
            opt.update(showHash=True, hashTypes=[self.hash_type])
        return opt

    def _stat_path(self, path: str) -> dict[str, Any] | None:
        if path == "":
            return {"Path": "", "Name": "", "IsDir": True}
        answer = self._call(
            "operations/stat", {"fs": self._fs(), "remote": path, "opt": self._list_opt()}
        )
        item = answer.get("item")
        return item if isinstance(item, dict) else None

    def _lookup(self, path: str) -> dict[str, Any] | None:
        """:returns: the stat item at ``path``, with the folders only the id table knows."""
        item = self._stat_path(path)
        if item is None and self.virtual_folders and self.ids.kind_at(path) == "folder":
            return self._virtual(path)
        return item

    def _members(self, path: str) -> list[dict[str, Any]]:
        try:
            answer = self.rc.call(
                "operations/list", {"fs": self._fs(), "remote": path, "opt": self._list_opt()}
            )
        except RcError as exc:
            if exc.status == 404:
                raise not_found("Folder not found.") from None
            raise upstream_error(exc) from None
        items = [i for i in answer.get("list") or [] if isinstance(i, dict)]
        temps = [i for i in items if str(i.get("Name", "")).startswith(UPLOAD_PREFIX)]
        items = [i for i in items if i not in temps]
        self._remove_stale(temps)
        if self.virtual_folders:
            listed = {str(i.get("Path", "")).strip("/") for i in items}
            items.extend(
                self._virtual(child)
                for child in self.ids.child_folders(path)
                if child not in listed
            )
        return items

    def _remove_stale(self, temps: list[dict[str, Any]]) -> None:
        """Delete the temporary files of uploads that crashed a day ago or more."""
        limit = datetime.now(timezone.utc) - timedelta(seconds=STALE_TEMP_SECONDS)
        for item in temps[:100]:
            modified = _iso(item.get("ModTime"))
            if modified and modified < limit.strftime("%Y-%m-%dT%H:%M:%SZ"):
                try:
                    self.rc.call(
                        "operations/deletefile", {"fs": self._fs(), "remote": str(item["Path"])}
                    )
                except RcError:
                    pass

    @staticmethod
    def _virtual(path: str) -> dict[str, Any]:
        return {"Path": path, "Name": posixpath.basename(path), "IsDir": True}

    # -- objects ---------------------------------------------------------------------------------

    def _object(self, item: dict[str, Any]) -> StorageObject:
        path = str(item.get("Path", "")).strip("/")
        kind = "folder" if item.get("IsDir") else "file"
        ancestors: list[tuple[str, str]] = []
        if path:
            ancestors.append((ROOT, ""))
            parts = path.split("/")[:-1]
            for i in range(len(parts)):
                ancestors.append((self.ids.id_for("/".join(parts[: i + 1]), "folder"), parts[i]))
        name = str(item.get("Name") or posixpath.basename(path))
        hashes = item.get("Hashes") or {}
        digest = hashes.get(self.hash_type) if self.hash_type else None
        mime = None
        if kind == "file":
            mime = str(item.get("MimeType") or "") or (
                mimetypes.guess_type(name)[0] or "application/octet-stream"
            )
        modified = _iso(item.get("ModTime"))
        size = item.get("Size")
        etag = digest or (f"{modified}-{size}" if kind == "file" else None)
        return StorageObject(
            id=self.ids.id_for(path, kind),
            name=name,
            type=kind,
            parent_id=None if not path else self.ids.id_for(_parent(path), "folder"),
            size=int(size) if kind == "file" and isinstance(size, int) and size >= 0 else None,
            mime_type=mime,
            created=None,
            modified=modified,
            ancestors=ancestors,
            etag=etag,
            raw={k: item[k] for k in ("Path", "ID", "OrigID", "Hashes", "Tier") if k in item},
        )

    def _resolve(self, object_id: str, kind: str | None) -> tuple[str, dict[str, Any]]:
        """:returns: ``(path, stat item)`` of an id. :raises ApiError: 404."""
        what = (kind or "object").capitalize()
        found = self.ids.path_of(object_id)
        if found is None or (kind is not None and found[1] != kind):
            raise not_found(f"{what} not found: {object_id[:100]}")
        path = found[0]
        item = self._lookup(path)
        if item is None or bool(item.get("IsDir")) != (found[1] == "folder"):
            raise not_found(f"{what} not found: {object_id[:100]}")
        return path, item

    def _folder(self, folder_id: Any) -> str:
        """:returns: the path of a target folder. :raises ApiError: 400 for a bad parent."""
        if not isinstance(folder_id, str):
            raise ApiError(400, "invalid_parent_folder", "'parent_id' must be a folder id.")
        try:
            return self._resolve(folder_id, "folder")[0]
        except ApiError as exc:
            if exc.status != 404:
                raise
            raise ApiError(
                400, "invalid_parent_folder", f"Invalid parent folder: {folder_id[:100]}"
            ) from None

    @staticmethod
    def _sorted(objects: list[StorageObject]) -> list[StorageObject]:
        return sorted(objects, key=lambda o: (o.type != "folder", o.name.lower(), o.name))

    # -- reads -----------------------------------------------------------------------------------

    def get(self, object_id: str, kind: str) -> StorageObject:
        path, item = self._resolve(object_id, kind)
        if path == "":
            return StorageObject(id=ROOT, name="", type="folder", parent_id=None)
        return self._object(item)

    def list_folder(self, folder_id: str, recursive: bool = False) -> list[StorageObject]:
        path, _ = self._resolve(folder_id, "folder")
        if recursive:
            return [self._object(i) for i in self._walk(path, detect=True)]
        members = self._members(path)
        self._detect_changes(path, members)
        return self._sorted([self._object(m) for m in members])

    def _walk(self, path: str, detect: bool = False) -> list[dict[str, Any]]:
        """Breadth-first listing below ``path``, bounded in entries and depth."""
        found: list[dict[str, Any]] = []
        queue: list[tuple[str, int]] = [(path, 0)]
        while queue:
            folder, depth = queue.pop(0)
            members = self._members(folder)
            if detect:
                self._detect_changes(folder, members)
            members.sort(key=lambda m: (not m.get("IsDir"), str(m.get("Name", "")).lower()))
            for member in members:
                found.append(member)
                if len(found) >= MAX_WALK_ENTRIES:
                    return found
                if member.get("IsDir") and depth + 1 < MAX_WALK_DEPTH:
                    queue.append((str(member["Path"]), depth + 1))
        return found

    def open_contents(self, file_id: str) -> FileContents:
        path, item = self._resolve(file_id, "file")
        obj = self._object(item)
        size = obj.size or 0
        return FileContents(
            stream=io.BufferedReader(rclone_file(self.rc, self.remote, path, size), _CHUNK),
            size=size,
            mime_type=obj.mime_type or "application/octet-stream",
            etag=obj.etag,
            modified=obj.modified,
        )

    def search(self, query: str, parents: list[str] | None) -> list[StorageObject]:
        needle = query.lower()
        roots = [self._resolve(p, "folder")[0] for p in parents] if parents else [""]
        results: dict[str, StorageObject] = {}
        for root in roots:
            for item in self._walk(root):
                if needle in str(item.get("Name", "")).lower():
                    obj = self._object(item)
                    results[obj.id] = obj
        return list(results.values())

    def recent(self, after: str | None) -> list[StorageObject]:
        files = [self._object(i) for i in self._walk("") if not i.get("IsDir")]
        if after:
            files = [f for f in files if f.modified and f.modified > after]
        return sorted(files, key=lambda f: f.modified or "", reverse=True)

    def quota(self) -> dict[str, int | None]:
        if not self.capabilities.get("reports_quota"):
            return {"used": None, "total": None}
        about = self._call("operations/about", {"fs": self._fs()})
        used, total = about.get("used"), about.get("total")
        return {
            "used": int(used) if isinstance(used, (int, float)) else None,
            "total": int(total) if isinstance(total, (int, float)) else None,
        }

    def public_link(self, object_id: str, kind: str, expires_in: int | None = None) -> UpstreamLink:
        """:returns: the backend's own public link to an object (``operations/publiclink``;
        S3: a presigned URL, at most 7 days).

        :raises ApiError: 501 when the backend has no public links.
        """
        path = self._link_path(object_id, kind)
        params: dict[str, Any] = {"fs": self._fs(), "remote": path}
        if expires_in is not None:
            params["expire"] = f"{max(1, int(expires_in))}s"
        url = self._call("operations/publiclink", params).get("url")
        if not isinstance(url, str) or not url:
            raise ApiError(502, "bad_gateway", "The service made no public link.")
        expires = _presigned_expiry(url)
        if expires is None and expires_in is not None:
            expires = datetime.now(timezone.utc) + timedelta(seconds=expires_in)
        return UpstreamLink(url, expires.strftime("%Y-%m-%dT%H:%M:%SZ") if expires else None)

    def remove_public_link(self, object_id: str, kind: str) -> None:
        """Ask the backend to remove its public link (``operations/publiclink`` with
        ``unlink``); backends whose links cannot be revoked (S3's presigned URLs) do nothing."""
        path = self._link_path(object_id, kind)
        self._call("operations/publiclink", {"fs": self._fs(), "remote": path, "unlink": True})

    def _link_path(self, object_id: str, kind: str) -> str:
        if not self.capabilities.get("can_create_public_links"):
            raise no_upstream_links()
        return self._resolve(object_id, kind)[0]

    # -- writes ----------------------------------------------------------------------------------

    def create_folder(
        self, parent_id: str, name: str, conflict_if_exists: bool
    ) -> tuple[StorageObject, bool]:
        validate_name(name)
        path = _join(self._folder(parent_id), name)
        existing = self._lookup(path)
        if existing is not None:
            kind = "folder" if existing.get("IsDir") else "file"
            if kind == "folder" and not conflict_if_exists:
                return self._object(existing), False
            raise naming_conflict(
                f"'{name}' already exists in the folder.", self.ids.id_for(path, kind)
            )
        self._call("operations/mkdir", {"fs": self._fs(), "remote": path})
        item = self._stat_path(path) or self._virtual(path)
        return self._note(item), True

    def _free_name(self, folder: str, name: str) -> str:
        taken = {str(m.get("Name")) for m in self._members(folder)}
        for candidate in _candidates(name):
            if candidate not in taken:
                return candidate
        raise naming_conflict(f"No free name for '{name}'.", None)

    def _put(self, folder: str, name: str, stream: IO[bytes], max_bytes: int) -> dict[str, Any]:
        """Stream to a temporary name in ``folder``, then rename it to ``name``."""
        temp = f"{UPLOAD_PREFIX}{secrets.token_hex(12)}"
        reader = LimitedReader(stream, max_bytes)
        target = _join(folder, name)
        try:
            try:
                self.rc.upload_file(self.remote, folder, temp, reader)  # type: ignore[arg-type]
            except RcError as exc:
                if reader.exceeded:
                    raise too_large(f"The upload exceeds {max_bytes} bytes.") from None
                raise upstream_error(exc) from None
            except OSError:
                if reader.exceeded:
                    raise too_large(f"The upload exceeds {max_bytes} bytes.") from None
                raise
            self._call(
                "operations/movefile",
                {
                    "srcFs": self._fs(),
                    "srcRemote": _join(folder, temp),
                    "dstFs": self._fs(),
                    "dstRemote": target,
                    # rclone skips a move onto a file of the same size and time (keeping the
                    # old bytes): always replace.
                    "_config": {"IgnoreTimes": True},
                },
            )
        except BaseException:
            # A body cut short by the gateway (size limit, client gone) may still be landing
            # upstream (FTP keeps partial files): look for the temporary file a little longer.
            self._remove_temp(_join(folder, temp), patient=reader.exceeded or reader.failed)
            raise
        item = self._stat_path(target)
        if item is None:
            raise ApiError(502, "bad_gateway", "The uploaded file is not visible upstream.")
        return item

    def _remove_temp(self, path: str, patient: bool) -> None:
        """Delete an upload's temporary file (best effort: it is hidden from listings, and
        listings remove stale ones)."""
        deadline = time.monotonic() + (TEMP_GRACE_SECONDS if patient else 0)
        for _ in range(20):  # bounded in count and in time
            try:
                self.rc.call("operations/deletefile", {"fs": self._fs(), "remote": path})
            except RcError:
                pass  # not (yet) there, or rclone is gone
            if time.monotonic() >= deadline:
                return
            time.sleep(0.3)

    def upload(
        self, parent_id: str, name: str, stream: IO[bytes], overwrite: bool, max_bytes: int
    ) -> StorageObject:
        validate_name(name)
        folder = self._folder(parent_id)
        if not overwrite:
            name = self._free_name(folder, name)
        else:
            existing = self._lookup(_join(folder, name))
            if existing is not None and existing.get("IsDir"):
                raise naming_conflict(
                    f"A folder named '{name}' exists.",
                    self.ids.id_for(_join(folder, name), "folder"),
                )
        return self._note(self._put(folder, name, stream, max_bytes))

    def replace_contents(self, file_id: str, stream: IO[bytes], max_bytes: int) -> StorageObject:
        path, _ = self._resolve(file_id, "file")
        return self._note(self._put(_parent(path), posixpath.basename(path), stream, max_bytes))

    def update(
        self, object_id: str, kind: str, name: str | None = None, parent_id: str | None = None
    ) -> StorageObject:
        path, item = self._resolve(object_id, kind)
        if path == "":
            raise invalid_parameters("The root folder cannot be renamed or moved.")
        new_name = validate_name(name) if name is not None else posixpath.basename(path)
        folder = self._folder(parent_id) if parent_id is not None else _parent(path)
        target = _join(folder, new_name)
        if target == path:
            return self._object(item)
        if kind == "folder" and (target + "/").startswith(path + "/"):
            raise ApiError(400, "invalid_parent_folder", "A folder cannot move into itself.")
        existing = self._lookup(target)
        if existing is not None and not (
            self.capabilities.get("case_insensitive") and target.lower() == path.lower()
        ):
            other = "folder" if existing.get("IsDir") else "file"
            raise naming_conflict(
                f"'{new_name}' already exists in the destination folder.",
                self.ids.id_for(target, other),
            )
        if kind == "file":
            self._call(
                "operations/movefile",
                {"srcFs": self._fs(), "srcRemote": path, "dstFs": self._fs(), "dstRemote": target},
            )
        elif self.virtual_folders and self._stat_path(path) is None:
            pass  # nothing stored in it yet: only the id table knows the folder
        else:
            self._call(
                "sync/move",
                {
                    "srcFs": self._fs(path),
                    "dstFs": self._fs(target),
                    "createEmptySrcDirs": True,
                    "deleteEmptySrcDirs": True,
                },
            )
            self._remove_empty(path)
        self.ids.moved(path, target)
        self._forget(path)
        moved = self._stat_path(target) or self._virtual(target)
        return self._note(moved)

    def _remove_empty(self, path: str) -> None:
        """Remove a folder left empty by a fallback (copy + delete) folder move."""
        try:
            if self._stat_path(path) is not None:
                self.rc.call("operations/rmdirs", {"fs": self._fs(), "remote": path})
        except RcError:
            pass

    def copy(self, object_id: str, kind: str, parent_id: str, name: str | None) -> StorageObject:
        path, item = self._resolve(object_id, kind)
        if path == "":
            raise invalid_parameters("The root folder cannot be copied.")
        new_name = validate_name(name) if name is not None else posixpath.basename(path)
        folder = self._folder(parent_id)
        if kind == "folder" and (folder + "/").startswith(path + "/"):
            raise ApiError(400, "invalid_parent_folder", "A folder cannot be copied into itself.")
        target = _join(folder, self._free_name(folder, new_name))
        if kind == "file":
            self._call(
                "operations/copyfile",
                {"srcFs": self._fs(), "srcRemote": path, "dstFs": self._fs(), "dstRemote": target},
            )
        else:
            self._call("operations/mkdir", {"fs": self._fs(), "remote": target})
            if not (self.virtual_folders and self._stat_path(path) is None):
                self._call(
                    "sync/copy",
                    {
                        "srcFs": self._fs(path),
                        "dstFs": self._fs(target),
                        "createEmptySrcDirs": True,
                    },
                )
        copied = self._stat_path(target) or self._virtual(target)
        return self._note(copied)

    def delete(self, object_id: str, kind: str, recursive: bool, permanent: bool) -> StorageObject:
        path, item = self._resolve(object_id, kind)
        if path == "":
            raise ApiError(403, "forbidden", "The root folder cannot be deleted.")
        obj = self._object(item)
        if kind == "file":
            self._call("operations/deletefile", {"fs": self._fs(), "remote": path})
        else:
            if not recursive and self._members(path):
                raise ApiError(
                    403,
                    "folder_not_empty",
                    "The folder is not empty; delete it with recursive=true.",
                )
            try:
                self.rc.call(
                    "operations/purge" if recursive else "operations/rmdir",
                    {"fs": self._fs(), "remote": path},
                )
            except RcError as exc:
                if not (self.virtual_folders and exc.status == 404):
                    raise upstream_error(exc) from None
        self._forget(path)
        self.ids.forget(path)
        return obj

    # -- change detection ------------------------------------------------------------------------

    @staticmethod
    def _signature(item: dict[str, Any]) -> str:
        hashes = item.get("Hashes") or {}
        digest = next(iter(hashes.values()), "") if hashes else ""
        return digest or f"{item.get('ModTime')}|{item.get('Size')}"

    def _detect_changes(self, folder: str, members: list[dict[str, Any]]) -> None:
        """Record upstream changes in ``folder`` since its last listing; save the snapshot."""
        if self.snapshots is None:
            return
        key = "/" + folder
        current = {
            str(m.get("Name")): ["folder" if m.get("IsDir") else "file", self._signature(m)]
            for m in members
        }
        with self.snapshots.store.transaction():  # serialises snapshot updates
            previous = self.snapshots.load(key)
            self.snapshots.save(key, current)
        if previous is None or self.activity is None:
            return
        by_name = {str(m.get("Name")): m for m in members}
        for name, (kind, sig) in sorted(current.items()):
            old = previous.get(name)
            if old is None or old[0] != kind:
                self.activity.record("add", self._object(by_name[name]))
            elif kind == "file" and old[1] != sig:
                self.activity.record("update", self._object(by_name[name]))
        for name, (kind, _sig) in sorted(previous.items()):
            if name not in current or current[name][0] != kind:
                path = _join(folder, name)
                gone = self._object({"Path": path, "Name": name, "IsDir": kind == "folder"})
                self.activity.record("delete", gone)
                self.ids.forget(path)
                if kind == "folder":
                    self.snapshots.forget("/" + path, subtree=True)

    def _note(self, item: dict[str, Any]) -> StorageObject:
        """Note an API-made change in its folder's snapshot (not reported again).

        :returns: the object of ``item``."""
        if self.snapshots is not None:
            kind = "folder" if item.get("IsDir") else "file"
            self.snapshots.note("/" + str(item.get("Path", "")), kind, self._signature(item))
        return self._object(item)

    def _forget(self, path: str) -> None:
        if self.snapshots is not None:
            self.snapshots.forget("/" + path, subtree=True)
