"""Turn the file and folder arguments of client commands into storage objects.

An argument is read as:

* ``/``, empty or ``root``: the root folder;
* anything containing ``/`` (``/docs/a.txt``, ``docs/a.txt``): a path from the root, resolved by
  walking folder contents one level at a time (an error if a level has several items of that name);
* anything else: an id first, then, if no object has that id, a name in the root folder.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kloudless import exceptions

from .errors import EXIT_CONFLICT, EXIT_NOT_FOUND, CommandError

#: Largest page the API accepts; fewer round trips when walking big folders.
PAGE_SIZE = 1000
ROOT_ALIASES = ("", "/", "root")


def is_path(spec: str) -> bool:
    """Tell whether an argument is a path (as opposed to an id or a bare name).

    :param spec: the command-line argument.
    :returns: True for ``/``, ``root`` and anything containing ``/``.
    """
    return spec in ROOT_ALIASES or "/" in spec


def split_path(spec: str) -> list[str]:
    """Split a path argument into its names, refusing ``.`` and ``..``.

    :param spec: a path such as ``/docs/a.txt`` or ``docs/a.txt``.
    :returns: the names from the root down (empty for the root).
    :raises CommandError: for ``.`` or ``..`` segments.
    """
    if spec == "root":
        return []
    parts = [part for part in spec.split("/") if part]
    for part in parts:
        if part in (".", ".."):
            raise CommandError(f"'.' and '..' are not supported in paths: {spec}")
    return parts


def _quote(object_id: str) -> str:
    return quote(str(object_id), safe="")


class Resolver:
    """Look up files and folders of one account by id or path, caching folder listings.

    :param account: the :class:`kloudless.Account` to query.
    """

    def __init__(self, account: Any) -> None:
        self.account = account
        self._listings: dict[str, list[dict[str, Any]]] = {}

    # -- raw lookups -------------------------------------------------------------------------

    def get_object(self, kind: str, object_id: str) -> dict[str, Any]:
        """Fetch a file's or folder's metadata by id.

        :param kind: ``file`` or ``folder``.
        :param object_id: the object id (``root`` for the root folder).
        :returns: the object's JSON data.
        :raises kloudless.exceptions.APIException: e.g. NotFoundException for unknown ids.
        """
        return dict(self.account.get(f"storage/{kind}s/{_quote(object_id)}").data)

    def children(self, folder_id: str) -> list[dict[str, Any]]:
        """List every item of a folder (all pages), cached for the life of the resolver.

        :param folder_id: the folder id.
        :returns: the items' JSON data.
        """
        cached = self._listings.get(folder_id)
        if cached is None:
            listing = self.account.get(
                f"storage/folders/{_quote(folder_id)}/contents", params={"page_size": PAGE_SIZE}
            )
            cached = [dict(item.data) for item in listing.get_paging_iterator()]
            self._listings[folder_id] = cached
        return cached

    def forget(self, folder_id: str) -> None:
        """Drop a cached listing after the folder changed.

        :param folder_id: the folder id.
        """
        self._listings.pop(folder_id, None)

    def child(self, folder_id: str, name: str, kind: str | None = None) -> dict[str, Any] | None:
        """Find the item called ``name`` in a folder.

        :param folder_id: the folder to look in.
        :param name: the exact item name.
        :param kind: ``file`` or ``folder`` to accept only that type, None for both.
        :returns: the item's JSON data, or None if there is none.
        :raises CommandError: if several items match (the name is ambiguous).
        """
        matches = [
            item
            for item in self.children(folder_id)
            if item.get("name") == name and (kind is None or item.get("type") == kind)
        ]
        if len(matches) > 1:
            ids = ", ".join(str(item.get("id")) for item in matches)
            raise CommandError(f"'{name}' is ambiguous (several items: {ids}); use an id")
        return matches[0] if matches else None

    # -- creating folders --------------------------------------------------------------------

    def make_folder(self, parent_id: str, name: str, exist_ok: bool) -> dict[str, Any]:
        """Create a folder.

        :param parent_id: the folder to create it in.
        :param name: its name.
        :param exist_ok: True to get the existing folder of that name instead of a 409.
        :returns: the folder's JSON data.
        """
        response = self.account.post(
            "storage/folders",
            json={"name": name, "parent_id": parent_id},
            params={"conflict_if_exists": "false" if exist_ok else "true"},
        )
        self.forget(parent_id)
        return dict(response.data)

    def ensure_folders(
        self, names: list[str], start: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Follow ``names`` from ``start`` (the root folder), creating what is missing, as
        ``mkdir -p`` does; existing folders are fine.

        :param names: the folder names, outermost first.
        :param start: the folder to start from (its JSON data); None for the root folder.
        :returns: the last folder's JSON data.
        :raises CommandError: when a file stands where a folder is needed.
        """
        current = start if start is not None else self.get_object("folder", "root")
        for depth, name in enumerate(names):
            found = self.child(str(current["id"]), name)
            if found is not None and found.get("type") != "folder":
                where = "/".join(names[: depth + 1])
                raise CommandError(f"not a folder: {where} is a file", EXIT_CONFLICT)
            current = found or self.make_folder(str(current["id"]), name, exist_ok=True)
        return current

    # -- argument resolution -----------------------------------------------------------------

    def walk(self, names: list[str], spec: str) -> dict[str, Any]:
        """Follow a list of names from the root folder.

        :param names: the path's names (see :func:`split_path`).
        :param spec: the original argument, for error messages.
        :returns: the last item's JSON data (the root folder for an empty list).
        :raises CommandError: when a level is missing or is not a folder.
        """
        current = self.get_object("folder", "root")
        for depth, name in enumerate(names):
            if current.get("type") != "folder":
                so_far = "/" + "/".join(names[:depth])
                raise CommandError(f"not a folder: {so_far}")
            found = self.child(str(current["id"]), name)
            if found is None:
                raise CommandError(f"no such file or folder: {spec}", EXIT_NOT_FOUND)
            current = found
        return current

    def resolve(self, spec: str, kind: str | None = None) -> dict[str, Any]:
        """Resolve an argument to a storage object.

        :param spec: an id, a path or a bare name (see the module docstring).
        :param kind: ``file`` or ``folder`` to require that type, None for either.
        :returns: the object's JSON data.
        :raises CommandError: if nothing matches, several items match, or the type is wrong.
        """
        found: dict[str, Any] | None
        if is_path(spec):
            found = self.walk(split_path(spec), spec)
        else:
            found = self._by_id(spec, kind)
            if found is None:
                found = self.child(str(self.get_object("folder", "root")["id"]), spec)
            if found is None:
                what = {"file": "file", "folder": "folder"}.get(kind or "", "file or folder")
                raise CommandError(f"no such {what}: {spec}", EXIT_NOT_FOUND)
        if kind is not None and found.get("type") != kind:
            raise CommandError(f"not a {kind}: {spec}")
        return found

    def _by_id(self, object_id: str, kind: str | None) -> dict[str, Any] | None:
        for candidate in (kind,) if kind else ("file", "folder"):
            try:
                return self.get_object(str(candidate), object_id)
            except exceptions.APIException as exc:
                # 404 (unknown id) or 400 (not an id at all): try the next reading.
                if getattr(exc, "status", None) not in (400, 404):
                    raise
        return None

    def resolve_parent(self, spec: str) -> tuple[dict[str, Any], str]:
        """Split a destination path into its existing parent folder and the last name.

        :param spec: a path such as ``/docs/new.txt``.
        :returns: ``(parent folder data, last name)``.
        :raises CommandError: if the path is the root or the parent does not exist.
        """
        names = split_path(spec)
        if not names:
            raise CommandError("the root folder cannot be used here")
        parent = self.walk(names[:-1], "/" + "/".join(names[:-1]))
        if parent.get("type") != "folder":
            raise CommandError(f"not a folder: /{'/'.join(names[:-1])}")
        return parent, names[-1]
