"""Storage commands: ``ls``, ``tree``, ``mkdir``, ``mv``, ``cp``, ``rm``, ``link``, ``search``.

File transfers (``get``, ``put``) are in :mod:`kloudless.cli.transfers`.
"""

from __future__ import annotations

from typing import Any

from kloudless import exceptions

from . import output
from .argtypes import parse_user_time, positive_int
from .command import add_command, response_data
from .context import Context
from .errors import EXIT_NOT_FOUND, CommandError
from .listing import (
    display_name,
    format_item_size,
    item_kind,
    print_storage_table,
    quote_id,
    sorted_for_humans,
)
from .resolve import PAGE_SIZE, is_path, split_path


def cmd_ls(ctx: Context) -> int:
    """List a folder (or show one file)."""
    target = ctx.resolver.resolve(ctx.args.folder or "/")
    items = ctx.resolver.children(str(target["id"])) if target.get("type") == "folder" else [target]
    if ctx.json:
        output.print_json(items)
    else:
        print_storage_table(sorted_for_humans(items))
    return 0


def _tree(
    ctx: Context, folder: dict[str, Any], depth: int | None, seen: set[str]
) -> dict[str, Any]:
    node = dict(folder)
    seen.add(str(folder["id"]))
    children: list[dict[str, Any]] = []
    if depth is None or depth > 0:
        for item in sorted_for_humans(ctx.resolver.children(str(folder["id"]))):
            if item.get("type") == "folder" and str(item.get("id")) not in seen:
                next_depth = None if depth is None else depth - 1
                children.append(_tree(ctx, item, next_depth, seen))
            else:
                children.append(dict(item))
    node["children"] = children
    return node


def _print_tree(node: dict[str, Any], prefix: str = "") -> None:
    children = node.get("children") or []
    for index, child in enumerate(children):
        last = index == len(children) - 1
        size = "" if child.get("type") == "folder" else f"  ({format_item_size(child)})"
        output.echo(f"{prefix}{'└── ' if last else '├── '}{display_name(child)}{size}")
        if child.get("type") == "folder":
            _print_tree(child, prefix + ("    " if last else "│   "))


def cmd_tree(ctx: Context) -> int:
    """Show a folder and everything under it."""
    spec = ctx.args.folder or "/"
    folder = ctx.resolver.resolve(spec, kind="folder")
    if ctx.args.depth is not None and ctx.args.depth < 1:
        raise CommandError("--depth must be 1 or more")
    tree = _tree(ctx, folder, ctx.args.depth, set())
    if ctx.json:
        output.print_json(tree)
        return 0
    output.echo("/" if spec in ("", "/", "root") else spec)
    _print_tree(tree)
    return 0


def cmd_mkdir(ctx: Context) -> int:
    """Create folders; with ``-p`` also their missing parents, and existing ones are fine."""
    created = []
    for spec in ctx.args.paths:
        if ctx.args.parent:
            if "/" in spec:
                raise CommandError("with --parent, give a folder name without '/'")
            parent = ctx.resolver.resolve(ctx.args.parent, kind="folder")
            if ctx.args.parents:
                created.append(ctx.resolver.ensure_folders([spec], parent))
            else:
                created.append(ctx.resolver.make_folder(str(parent["id"]), spec, exist_ok=False))
            continue
        names = split_path(spec)
        if not names:
            raise CommandError("the root folder already exists")
        if ctx.args.parents:
            created.append(ctx.resolver.ensure_folders(names))
            continue
        try:
            parent, name = ctx.resolver.resolve_parent(spec)
        except CommandError as exc:
            if exc.exit_code != EXIT_NOT_FOUND:
                raise
            above = "/" + "/".join(names[:-1])
            raise CommandError(
                f"no such folder: {above} (use -p to create missing parents)", EXIT_NOT_FOUND
            ) from None
        created.append(ctx.resolver.make_folder(str(parent["id"]), name, exist_ok=False))
    if ctx.json:
        output.print_json(created if len(created) > 1 else created[0])
    else:
        print_storage_table(created)
    return 0


def _destination(ctx: Context, source: dict[str, Any], dest: str) -> tuple[str, str]:
    """Work out ``(parent_id, name)`` for mv/cp.

    ``dest`` is an existing folder (id or path) to put the source into, a path giving the new
    parent and name, or a bare name to rename in place.
    """
    name = str(source.get("name") or "")
    if is_path(dest):
        names = split_path(dest)
        existing: dict[str, Any] | None
        try:
            existing = ctx.resolver.walk(names, dest)
        except CommandError:
            existing = None
        if existing is not None:
            if existing.get("type") == "folder":
                return str(existing["id"]), name
            raise CommandError(f"{dest} already exists")
        if dest.endswith("/"):
            raise CommandError(f"no such folder: {dest}")
        parent, new_name = ctx.resolver.resolve_parent(dest)
        return str(parent["id"]), new_name
    try:
        folder = ctx.resolver.get_object("folder", dest)
        return str(folder["id"]), name
    except exceptions.APIException as exc:
        if getattr(exc, "status", None) not in (400, 404):
            raise
    parent_info = source.get("parent") or {}
    parent_id = parent_info.get("id") if isinstance(parent_info, dict) else None
    return str(parent_id or "root"), dest


def _move_or_copy(ctx: Context, copy: bool) -> int:
    source = ctx.resolver.resolve(ctx.args.source)
    kind = item_kind(source)
    if kind == "folder" and str(source.get("id")) == "root":
        raise CommandError("the root folder cannot be moved or copied")
    parent_id, name = _destination(ctx, source, ctx.args.dest)
    body = {"parent_id": parent_id, "name": name}
    path = f"storage/{kind}s/{quote_id(source['id'])}"
    if copy:
        result = response_data(ctx.account.post(path + "/copy", json=body))
    else:
        result = response_data(ctx.account.patch(path, json=body))
    if ctx.json:
        output.print_json(result)
    else:
        print_storage_table([result])
    return 0


def cmd_mv(ctx: Context) -> int:
    """Move or rename a file or folder."""
    return _move_or_copy(ctx, copy=False)


def cmd_cp(ctx: Context) -> int:
    """Copy a file or folder."""
    return _move_or_copy(ctx, copy=True)


def cmd_rm(ctx: Context) -> int:
    """Delete files and folders."""
    targets = [ctx.resolver.resolve(spec) for spec in ctx.args.targets]
    for spec, item in zip(ctx.args.targets, targets):
        if item.get("type") == "folder":
            if str(item.get("id")) == "root" or (is_path(spec) and not split_path(spec)):
                raise CommandError("refusing to delete the root folder")
            if not ctx.args.recursive:
                raise CommandError(f"{spec} is a folder; use -r to delete it and its contents")
    deleted = []
    for item in targets:
        kind = item_kind(item)
        params: dict[str, str] = {}
        if ctx.args.permanent:
            params["permanent"] = "true"
        if kind == "folder":
            params["recursive"] = "true"
        ctx.account.delete(f"storage/{kind}s/{quote_id(item['id'])}", params=params)
        deleted.append({"id": item["id"], "name": item.get("name"), "type": kind})
    if ctx.json:
        output.print_json(deleted)
    else:
        for entry in deleted:
            output.echo(f"deleted {display_name(entry)}")
    return 0


def cmd_link(ctx: Context) -> int:
    """Create a shared link to a file."""
    item = ctx.resolver.resolve(ctx.args.file, kind="file")
    body: dict[str, Any] = {"file_id": item["id"], "direct": bool(ctx.args.direct)}
    if ctx.args.expiration:
        body["expiration"] = parse_user_time(ctx.args.expiration, "--expiration")
    link = response_data(ctx.account.post("storage/links", json=body))
    if ctx.json:
        output.print_json(link)
    else:
        output.echo(str(link.get("url") or link.get("id")))
    return 0


def cmd_search(ctx: Context) -> int:
    """Search files and folders by name."""
    if not ctx.args.query.strip():
        raise CommandError("the search query must not be empty")
    params: dict[str, Any] = {"q": ctx.args.query, "page_size": min(ctx.args.limit, PAGE_SIZE)}
    if ctx.args.parent:
        params["parents"] = ctx.resolver.resolve(ctx.args.parent, kind="folder")["id"]
    results = ctx.account.get("storage/search", params=params)
    items = [response_data(r) for r in results.get_paging_iterator(max_resources=ctx.args.limit)]
    if ctx.json:
        output.print_json(items)
    else:
        print_storage_table(items, with_path=any(i.get("path") for i in items))
    return 0


def register(subparsers: Any) -> None:
    """Add the storage commands to the main parser's subcommands.

    :param subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    p = add_command(subparsers, "ls", cmd_ls, "list a folder")
    p.add_argument("folder", nargs="?", metavar="FOLDER", help="folder id or path (default /)")

    p = add_command(subparsers, "tree", cmd_tree, "show a folder tree")
    p.add_argument("folder", nargs="?", metavar="FOLDER", help="folder id or path (default /)")
    p.add_argument("--depth", type=int, default=None, help="levels to show (1: the folder's items)")

    p = add_command(subparsers, "mkdir", cmd_mkdir, "create folders")
    p.add_argument("paths", nargs="+", metavar="FOLDER", help="path of the new folder")
    p.add_argument("--parent", metavar="FOLDER", help="create NAME inside this folder id or path")
    p.add_argument(
        "-p", "--parents", action="store_true", help="create missing parents; no error if it exists"
    )

    dest_help = (
        "an existing folder (id or path) to put it in, a path with the new name, "
        "or a bare new name to rename in place"
    )
    p = add_command(subparsers, "mv", cmd_mv, "move or rename a file or folder")
    p.add_argument("source", metavar="SOURCE", help="file or folder id or path")
    p.add_argument("dest", metavar="DEST", help=dest_help)

    p = add_command(subparsers, "cp", cmd_cp, "copy a file or folder")
    p.add_argument("source", metavar="SOURCE", help="file or folder id or path")
    p.add_argument("dest", metavar="DEST", help=dest_help)

    p = add_command(subparsers, "rm", cmd_rm, "delete files and folders")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="file or folder id or path")
    p.add_argument(
        "-r", "--recursive", action="store_true", help="delete folders and their contents"
    )
    p.add_argument("--permanent", action="store_true", help="skip the trash where there is one")

    p = add_command(subparsers, "link", cmd_link, "create a shared link to a file")
    p.add_argument("file", metavar="FILE", help="file id or path")
    p.add_argument("--direct", action="store_true", help="link to the raw contents")
    p.add_argument("--expiration", metavar="TIME", help="when the link stops working")

    p = add_command(subparsers, "search", cmd_search, "search files and folders")
    p.add_argument("query", metavar="QUERY", help="text to look for in names")
    p.add_argument("--parent", metavar="FOLDER", help="search only inside this folder")
    p.add_argument("--limit", type=positive_int, default=100, help="most results (default 100)")
