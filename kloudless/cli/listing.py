"""How storage items (files and folders) are shown: names, kinds, sizes, tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from . import output
from .errors import CommandError


def quote_id(value: Any) -> str:
    """:returns: ``value`` quoted as one URL path segment (ids may hold ``/``)."""
    return quote(str(value), safe="")


def kind_label(item: dict[str, Any]) -> str:
    """:returns: the TYPE column of an item (``dir`` for folders)."""
    return "dir" if item.get("type") == "folder" else str(item.get("type") or "-")


def display_name(item: dict[str, Any]) -> str:
    """:returns: the item's name, with a trailing ``/`` for folders."""
    name = str(item.get("name") or item.get("id") or "-")
    return name + "/" if item.get("type") == "folder" else name


def storage_rows(items: Sequence[dict[str, Any]], with_path: bool = False) -> list[list[Any]]:
    """:returns: the table rows of ``items`` (with a PATH column when ``with_path``)."""
    rows = []
    for item in items:
        row = [
            kind_label(item),
            format_item_size(item),
            output.format_time(item.get("modified")),
            display_name(item),
            item.get("id"),
        ]
        if with_path:
            row.insert(4, item.get("path") or "-")
        rows.append(row)
    return rows


def format_item_size(item: dict[str, Any]) -> str:
    """Size column of a storage item: ``-`` for folders and unknown sizes.

    :param item: a file or folder object.
    :returns: the size text.
    """
    if item.get("type") == "folder":
        return "-"
    return output.format_size(item.get("size"))


def print_storage_table(items: Sequence[dict[str, Any]], with_path: bool = False) -> None:
    """Print ``items`` as the storage table (TYPE, SIZE, MODIFIED, NAME[, PATH], ID)."""
    headers = ["TYPE", "SIZE", "MODIFIED", "NAME", "ID"]
    if with_path:
        headers.insert(4, "PATH")
    output.echo(output.render_table(storage_rows(items, with_path), headers, right_align=(1,)))


def sorted_for_humans(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """:returns: folders first, then files, each by case-insensitive name."""
    return sorted(items, key=lambda i: (i.get("type") != "folder", str(i.get("name", "")).lower()))


def item_kind(item: dict[str, Any]) -> str:
    """:returns: ``file`` or ``folder``. :raises CommandError: for anything else."""
    kind = item.get("type")
    if kind not in ("file", "folder"):
        raise CommandError(f"not a file or folder: {item.get('id')}")
    return str(kind)
