"""Transfer commands: ``get`` (download), ``put`` (upload) and ``sync``, for files and folders.

Single files go through the SDK's helpers (:meth:`kloudless.Account.upload`, ``download()``);
folders (``-r`` and ``sync``) through :mod:`kloudless.cli.tree`, which plans the transfer and
runs the files in parallel under one progress bar.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any, Callable

from kloudless.filenames import safe_join
from kloudless.transfer import UploadInterrupted, partial_path

from . import output, tree
from .argtypes import byte_count, positive_int
from .command import add_command, describe_failure, response_data
from .context import Context
from .errors import (
    EXIT_CONFLICT,
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    CommandError,
    Interrupted,
)
from .listing import print_storage_table, quote_id
from .progress import transfer_bar
from .resolve import is_path, split_path

#: Files sent at once by ``-r`` and ``sync`` unless ``--transfers`` says otherwise.
DEFAULT_TRANSFERS = 4


# -- one file each way ----------------------------------------------------------------------------


def download_file(
    ctx: Context, item: dict[str, Any], path: str, progress: Any, resume: bool
) -> str:
    """Download one file to ``path``, keeping the bytes of an interrupted download beside it.

    :param item: the file's JSON.
    :param resume: continue from such kept bytes if the file has not changed upstream.
    :returns: the path written. The local file gets the remote modification time.
    """
    resource = ctx.account.get(f"storage/files/{quote_id(item['id'])}")
    saved = str(
        resource.download(
            path,
            chunk_size=ctx.args.chunk_size,
            progress=progress,
            keep_partial=True,
            continue_partial=resume,
        )
    )
    when = output.parse_time(item.get("modified"))
    if when is not None:
        os.utime(saved, (when.timestamp(), when.timestamp()))
    return saved


def upload_file(
    ctx: Context, path: str, parent_id: str, name: str, progress: Any, overwrite: bool
) -> dict[str, Any]:
    """Upload one file; :returns: the new file's JSON (its name may differ from ``name``)."""
    options: dict[str, Any] = {}
    if ctx.args.multipart_threshold is not None:
        options["multipart_threshold"] = ctx.args.multipart_threshold
    if getattr(ctx.args, "session_id", None):
        options["session_id"] = ctx.args.session_id
    result = ctx.account.upload(
        path, parent_id=parent_id, name=name, overwrite=overwrite, progress=progress, **options
    )
    return response_data(result)


def stored_as_note(wanted: str, stored: dict[str, Any], where: str) -> str | None:
    """:returns: ``a.txt exists in /docs; stored as a (1).txt`` when the server renamed it."""
    got = stored.get("name")
    if got is None or got == wanted:
        return None
    return (
        f"{wanted} exists in {where}; stored as {got} (--overwrite replaces, --skip-existing skips)"
    )


# -- get ------------------------------------------------------------------------------------------


def _local_destination(dest: str | None, name: Any) -> str:
    """:returns: the local path for ``get FILE [DEST]``.
    :raises CommandError: when the folder it goes into does not exist."""
    if dest is None or os.path.isdir(dest) or dest.endswith(("/", os.sep)):
        folder = dest or "."
        if not os.path.isdir(folder):
            raise CommandError(f"no such local folder: {folder}", EXIT_NOT_FOUND)
        return safe_join(folder, name)
    path = os.path.abspath(dest)
    if not os.path.isdir(os.path.dirname(path)):  # the download would name its temp file
        shown = os.path.dirname(dest) or os.path.dirname(path)
        raise CommandError(f"no such local folder: {shown}", EXIT_NOT_FOUND)
    return path


def cmd_get(ctx: Context) -> int:
    """Download a file, or a folder's tree with ``-r``."""
    if ctx.args.recursive:
        return _get_tree(ctx)
    item = ctx.resolver.resolve(ctx.args.file, kind="file")
    if ctx.args.dest == "-":
        resource = ctx.account.get(f"storage/files/{quote_id(item['id'])}")
        sys.stdout.flush()
        resource.download(sys.stdout.buffer, chunk_size=ctx.args.chunk_size)
        sys.stdout.buffer.flush()
        return 0
    path = _local_destination(ctx.args.dest, item.get("name"))
    if os.path.exists(path) and not ctx.args.force:
        raise CommandError(f"{path} exists; use --force to replace it", EXIT_CONFLICT)
    if ctx.args.resume and not os.path.exists(partial_path(path)):
        output.info(f"{output.PROG}: nothing to resume for {path}; downloading it whole")
    with transfer_bar(str(item.get("name") or "download"), not ctx.args.no_progress) as bar:
        try:
            # Written to a partial file and renamed into place: a failed download leaves
            # nothing under the final name, and its bytes for --resume beside it.
            path = download_file(ctx, item, path, bar.update, ctx.args.resume)
        except (KeyboardInterrupt, Exception) as exc:
            if not os.path.exists(partial_path(path)):
                raise
            _raise_with_hint(exc, _resume_command(ctx, path))
    size = os.path.getsize(path)
    if ctx.json:
        output.print_json({"id": item["id"], "name": item.get("name"), "path": path, "size": size})
    else:
        output.echo(f"{path}  ({output.format_size(size)})")
    return 0


def _resume_command(ctx: Context, path: str) -> str:
    words = ["kloudless", "get", ctx.args.file, path, "--resume"]
    return " ".join(shlex.quote(w) for w in words)


def _raise_with_hint(exc: BaseException, command: str) -> None:
    """Report a stopped download once, with the command that continues it."""
    if isinstance(exc, KeyboardInterrupt):
        raise Interrupted(f"interrupted; resume with: {command}") from None
    message, code = describe_failure(exc, None)
    raise CommandError(f"{message}; resume with: {command}", code) from exc


def _get_tree(ctx: Context) -> int:
    folder = ctx.resolver.resolve(ctx.args.file, kind="folder")
    root = ctx.args.dest or (
        "." if str(folder["id"]) == "root" else safe_join(".", folder.get("name"))
    )
    if os.path.exists(root) and not os.path.isdir(root):
        raise CommandError(f"{root} exists and is not a folder", EXIT_CONFLICT)
    local = tree.local_tree(root) if os.path.isdir(root) else tree.Tree()
    existing = "replace" if ctx.args.force else "skip" if ctx.args.skip_existing else "refuse"
    result = tree.plan(tree.remote_tree(ctx, folder), local, upload=False, existing=existing)
    return _download_plan(ctx, result, root, "--force or --skip-existing")


def _download_plan(ctx: Context, result: tree.Plan, root: str, flags: str) -> int:
    tree.refuse_conflicts(result, flags)
    if ctx.args.dry_run:
        tree.print_plan(result, root)
        return 0
    for rel in result.folders:
        os.makedirs(os.path.join(root, *rel.split("/")), exist_ok=True)
    os.makedirs(root, exist_ok=True)

    def job(entry: tree.Entry, progress: Callable[..., None]) -> Any:
        assert entry.item is not None
        path = os.path.join(os.path.abspath(root), *entry.rel.split("/"))
        return download_file(ctx, entry.item, path, progress, ctx.args.resume)

    outcomes = _run(ctx, result, job, root)
    if getattr(ctx.args, "delete", False):
        tree.delete_local(root, result)
    return _report(ctx, result, outcomes)


# -- put ------------------------------------------------------------------------------------------


def _parent_folder(ctx: Context, spec: str, make: bool) -> dict[str, Any]:
    """:returns: the destination folder; with ``make`` (``--mkdir``) missing ones are created."""
    if make and is_path(spec):
        return ctx.resolver.ensure_folders(split_path(spec))
    try:
        return ctx.resolver.resolve(spec, kind="folder")
    except CommandError as exc:
        if exc.exit_code != EXIT_NOT_FOUND or not is_path(spec):
            raise
        raise CommandError(
            f"no such folder: {spec} (add --mkdir to create it)", EXIT_NOT_FOUND
        ) from None


def cmd_put(ctx: Context) -> int:
    """Upload local files, or a folder's tree with ``-r``."""
    if ctx.args.recursive:
        return _put_tree(ctx)
    paths: list[str] = ctx.args.paths
    if (ctx.args.name or ctx.args.session_id) and len(paths) > 1:
        raise CommandError("--name and --session-id need exactly one file")
    for path in paths:
        if os.path.isdir(path):
            raise CommandError(f"{path} is a folder; use put -r to upload it and its contents")
        if not os.path.isfile(path):
            raise CommandError(f"no such local file: {path}", EXIT_NOT_FOUND)
    spec = ctx.args.parent or "/"
    parent = _parent_folder(ctx, spec, ctx.args.mkdir)
    uploaded = []
    for path in paths:
        name = ctx.args.name or os.path.basename(path)
        if ctx.args.skip_existing and ctx.resolver.child(str(parent["id"]), name, kind="file"):
            output.info(f"{output.PROG}: skipped {name}: it exists in {spec}")
            continue
        with transfer_bar(name, not ctx.args.no_progress) as bar:
            try:
                stored = upload_file(
                    ctx, path, str(parent["id"]), name, bar.update, ctx.args.overwrite
                )
            except UploadInterrupted as exc:
                raise CommandError(
                    f"upload of {path} interrupted after {exc.done} of {exc.total} bytes; "
                    f"resume with: kloudless put {shlex.quote(path)} --session-id "
                    f"{exc.session_id}",
                    EXIT_FAILURE,
                ) from exc
            except KeyboardInterrupt as exc:
                # The SDK attaches the multipart session id to Ctrl-C (None for small files).
                sid = getattr(exc, "kloudless_session_id", None)
                if sid is None:
                    raise
                raise Interrupted(
                    f"interrupted; resume with: kloudless put {shlex.quote(path)} "
                    f"--session-id {sid}"
                ) from None
        note = stored_as_note(name, stored, spec)
        if note:
            output.info(f"{output.PROG}: {note}")
        uploaded.append(stored)
    if ctx.json:
        output.print_json(uploaded if len(uploaded) != 1 else uploaded[0])
    elif uploaded:
        print_storage_table(uploaded)
    return 0


def _put_tree(ctx: Context) -> int:
    paths: list[str] = ctx.args.paths
    if len(paths) > 2 or ctx.args.name or ctx.args.session_id:
        raise CommandError("put -r takes LOCAL_FOLDER [REMOTE_FOLDER] (no --name, --session-id)")
    source = paths[0]
    if not os.path.isdir(source):
        raise CommandError(f"no such local folder: {source}", EXIT_NOT_FOUND)
    if len(paths) == 2:
        spec = paths[1]
    else:
        base = os.path.basename(os.path.abspath(source))
        parent = ctx.args.parent or "/"
        if not is_path(parent):  # a folder id: name the destination by its path
            parent = str(ctx.resolver.resolve(parent, kind="folder").get("path") or "/")
        spec = parent.rstrip("/") + "/" + base
    folder = _remote_destination(ctx, spec)
    existing = "replace" if ctx.args.overwrite else "skip" if ctx.args.skip_existing else "rename"
    remote = tree.remote_tree(ctx, folder) if folder is not None else tree.Tree()
    result = tree.plan(tree.local_tree(source), remote, upload=True, existing=existing)
    return _upload_plan(ctx, result, source, folder, remote, spec)


def _remote_destination(ctx: Context, spec: str) -> dict[str, Any] | None:
    """:returns: the remote folder to upload into, created with its parents if missing; with
    ``--dry-run`` nothing is created and a missing folder is None (an empty tree)."""
    if not is_path(spec):
        return ctx.resolver.resolve(spec, kind="folder")
    if not ctx.args.dry_run:
        return ctx.resolver.ensure_folders(split_path(spec))
    try:
        return ctx.resolver.resolve(spec, kind="folder")
    except CommandError as exc:
        if exc.exit_code != EXIT_NOT_FOUND:
            raise
        return None


def _upload_plan(
    ctx: Context,
    result: tree.Plan,
    source: str,
    folder: dict[str, Any] | None,
    remote: tree.Tree,
    spec: str,
) -> int:
    if ctx.args.dry_run or folder is None:
        tree.print_plan(result, spec)
        return 0
    folders = tree.remote_folders(ctx, folder, remote, result.folders)

    def job(entry: tree.Entry, progress: Callable[..., None]) -> Any:
        parent_rel, _, name = entry.rel.rpartition("/")
        local = os.path.join(source, *entry.rel.split("/"))
        parent = folders[parent_rel]
        stored = upload_file(
            ctx, local, str(parent["id"]), name, progress, entry.rel in result.replace
        )
        return stored, stored_as_note(name, stored, spec.rstrip("/") + "/" + parent_rel)

    outcomes = _run(ctx, result, job, spec)
    if getattr(ctx.args, "delete", False):
        tree.delete_remote(ctx, result, folders)
    return _report(ctx, result, outcomes)


# -- folder transfers: run and report -------------------------------------------------------------


def _run(
    ctx: Context, result: tree.Plan, job: Callable[..., Any], where: str
) -> list[tree.Outcome]:
    label = f"{len(result.copy)} files" if len(result.copy) != 1 else "1 file"
    with transfer_bar(label, not ctx.args.no_progress, total=result.bytes or None) as bar:
        runner = tree.Runner(bar, ctx.args.transfers, result.bytes)
        try:
            outcomes = runner.run(result.copy, job)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted; run the same command again to finish the rest ({where})"
            ) from None
        for outcome in outcomes:
            note = outcome.result[1] if isinstance(outcome.result, tuple) else None
            if note:
                bar.write(f"{output.PROG}: {note}")
    return outcomes


def _report(ctx: Context, result: tree.Plan, outcomes: list[tree.Outcome]) -> int:
    failed = [o for o in outcomes if o.error is not None]
    copied = len(outcomes) - len(failed)
    if ctx.json:
        output.print_json(
            {
                "copied": [o.entry.rel for o in outcomes if o.error is None],
                "skipped": result.skip,
                "deleted": [*result.delete_folders, *(e.rel for e in result.delete_files)],
                "failed": {o.entry.rel: describe_failure(o.error)[0] for o in failed if o.error},
            }
        )
    else:
        output.echo(tree.summary(result, copied))
    codes = []
    for outcome in failed:
        assert outcome.error is not None
        message, code = describe_failure(outcome.error)
        output.error(f"{outcome.entry.rel}: {message}")
        codes.append(code)
    return codes[0] if codes else 0


# -- sync -----------------------------------------------------------------------------------------


def cmd_sync(ctx: Context) -> int:
    """Make a destination folder match a source folder (local to remote, or remote to local)."""
    source, dest = ctx.args.source, ctx.args.dest
    if os.path.isdir(source):
        if os.path.isdir(dest):
            raise CommandError(
                f"{source} and {dest} are both local folders: one side must be a remote folder"
            )
        folder = _remote_destination(ctx, dest)
        remote = tree.remote_tree(ctx, folder) if folder is not None else tree.Tree()
        result = tree.plan(
            tree.local_tree(source), remote, upload=True, existing="sync", delete=ctx.args.delete
        )
        return _upload_plan(ctx, result, source, folder, remote, dest)
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise CommandError(f"{dest} exists and is not a folder", EXIT_CONFLICT)
    folder = ctx.resolver.resolve(source, kind="folder")
    local = tree.local_tree(dest) if os.path.isdir(dest) else tree.Tree()
    remote = tree.remote_tree(ctx, folder)
    result = tree.plan(remote, local, upload=False, existing="sync", delete=ctx.args.delete)
    return _download_plan(ctx, result, dest, "")


# -- parser ---------------------------------------------------------------------------------------


def _transfer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--transfers",
        type=positive_int,
        default=DEFAULT_TRANSFERS,
        metavar="N",
        help=f"with -r and sync: files sent at once (default {DEFAULT_TRANSFERS})",
    )
    p.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help="with -r and sync: print what would change, change nothing",
    )
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")


def _chunk_size_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--chunk-size",
        type=byte_count,
        default=1024 * 1024,
        metavar="SIZE",
        help="bytes read from the network at a time (default 1M)",
    )


def register(subparsers: Any) -> None:
    """Add the transfer commands to the main parser's subcommands.

    :param subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    p = add_command(
        subparsers,
        "get",
        cmd_get,
        "download a file, or a folder with -r",
        "Download a file, or with -r a folder and everything in it (into DEST, created if "
        "missing; default: a folder of the same name here). An interrupted download keeps its "
        "bytes beside the destination (NAME.kloudless-part); --resume continues them when the "
        "file has not changed upstream.",
    )
    p.add_argument("file", metavar="FILE", help="file id or path (with -r: a folder)")
    p.add_argument(
        "dest",
        nargs="?",
        metavar="DEST",
        help="local file or folder (default: the current folder; '-' for stdout)",
    )
    p.add_argument("-r", "--recursive", action="store_true", help="download a folder's tree")
    exists = p.add_mutually_exclusive_group()
    exists.add_argument("-f", "--force", action="store_true", help="replace existing local files")
    exists.add_argument(
        "--skip-existing", action="store_true", help="with -r: keep existing local files"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted download from its kept bytes",
    )
    _chunk_size_option(p)
    _transfer_options(p)

    p = add_command(
        subparsers,
        "put",
        cmd_put,
        "upload files, or a folder with -r",
        "Upload files; large files go up in parts (multipart upload). With -r, upload a "
        "folder's tree into REMOTE_FOLDER (created if missing; default: a folder of the same "
        "name in --parent). A name that exists already gets a new name from the server, which "
        "is reported; --overwrite replaces it, --skip-existing keeps it.",
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="local file(s); with -r: LOCAL_FOLDER [REMOTE_FOLDER]",
    )
    p.add_argument("-r", "--recursive", action="store_true", help="upload a folder's tree")
    p.add_argument("--parent", metavar="FOLDER", help="destination folder id or path (default /)")
    p.add_argument("--mkdir", action="store_true", help="create --parent and its missing parents")
    p.add_argument("--name", help="name on the server (one file only)")
    exists = p.add_mutually_exclusive_group()
    exists.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a file of the same name (default: the server picks a new name)",
    )
    exists.add_argument(
        "--skip-existing", action="store_true", help="leave a file of the same name alone"
    )
    p.add_argument(
        "--multipart-threshold",
        type=byte_count,
        metavar="SIZE",
        help="upload in parts above this size (default 8M)",
    )
    p.add_argument(
        "--session-id", metavar="ID", help="resume an interrupted multipart upload of this file"
    )
    _transfer_options(p)

    p = add_command(
        subparsers,
        "sync",
        cmd_sync,
        "make a folder match another (local to remote or back)",
        "Make DEST match SOURCE: copy what is missing or differs (by size and modification "
        "time), skip what is the same. SOURCE is a local folder and DEST a remote one, or the "
        "reverse; a missing DEST is created. With --delete, also remove what DEST has and "
        "SOURCE does not.",
    )
    p.add_argument("source", metavar="SOURCE", help="the local or remote folder to copy from")
    p.add_argument("dest", metavar="DEST", help="the remote or local folder to make match it")
    p.add_argument(
        "--delete", action="store_true", help="remove files and folders SOURCE does not have"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue interrupted downloads' kept bytes"
    )
    _chunk_size_option(p)
    _transfer_options(p)
    p.set_defaults(multipart_threshold=None, session_id=None, force=False, skip_existing=False)


__all__ = ["cmd_get", "cmd_put", "cmd_sync", "register"]
