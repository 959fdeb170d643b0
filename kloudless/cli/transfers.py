"""Transfer commands: ``get`` (download) and ``put`` (upload)."""

from __future__ import annotations

import os
import sys
from typing import Any

from . import output
from .argtypes import byte_count
from .command import add_command, response_data
from .context import Context
from .errors import (
    EXIT_CONFLICT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    CommandError,
)
from .listing import print_storage_table, quote_id
from .progress import progress_bar


def cmd_get(ctx: Context) -> int:
    """Download a file."""
    from kloudless.filenames import safe_join

    item = ctx.resolver.resolve(ctx.args.file, kind="file")
    resource = ctx.account.get(f"storage/files/{quote_id(item['id'])}")
    dest = ctx.args.dest
    if dest == "-":
        sys.stdout.flush()
        resource.download(sys.stdout.buffer, chunk_size=ctx.args.chunk_size)
        sys.stdout.buffer.flush()
        return 0
    if dest is None or os.path.isdir(dest) or dest.endswith(("/", os.sep)):
        folder = dest or "."
        if not os.path.isdir(folder):
            raise CommandError(f"no such local folder: {folder}", EXIT_NOT_FOUND)
        path = safe_join(folder, item.get("name"))
    else:
        path = os.path.abspath(dest)
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):  # checked here: the download would name its temp file
            raise CommandError(
                f"no such local folder: {os.path.dirname(dest) or folder}", EXIT_NOT_FOUND
            )
    if os.path.exists(path) and not ctx.args.force:
        raise CommandError(f"{path} exists; use --force to replace it", EXIT_CONFLICT)
    with progress_bar(str(item.get("name") or "download"), not ctx.args.no_progress) as callback:
        # Written to a temporary file and renamed into place: a failed download leaves nothing
        # under the final name; dropped connections are resumed with Range requests.
        path = str(resource.download(path, chunk_size=ctx.args.chunk_size, progress=callback))
    size = os.path.getsize(path)
    if ctx.json:
        output.print_json({"id": item["id"], "name": item.get("name"), "path": path, "size": size})
    else:
        output.echo(f"{path}  ({output.format_size(size)})")
    return 0


def cmd_put(ctx: Context) -> int:
    """Upload local files."""
    from kloudless.transfer import UploadInterrupted

    paths: list[str] = ctx.args.paths
    if (ctx.args.name or ctx.args.session_id) and len(paths) > 1:
        raise CommandError("--name and --session-id need exactly one file")
    for path in paths:
        if os.path.isdir(path):
            raise CommandError(f"{path} is a folder; upload files one by one")
        if not os.path.isfile(path):
            raise CommandError(f"no such local file: {path}", EXIT_NOT_FOUND)
    parent = ctx.resolver.resolve(ctx.args.parent or "/", kind="folder")
    options: dict[str, Any] = {}
    if ctx.args.multipart_threshold is not None:
        options["multipart_threshold"] = ctx.args.multipart_threshold
    if ctx.args.session_id:
        options["session_id"] = ctx.args.session_id
    uploaded = []
    for path in paths:
        name = ctx.args.name or os.path.basename(path)
        with progress_bar(name, not ctx.args.no_progress) as callback:
            try:
                result = ctx.account.upload(
                    path,
                    parent_id=str(parent["id"]),
                    name=name,
                    overwrite=ctx.args.overwrite,
                    progress=callback,
                    **options,
                )
            except UploadInterrupted as exc:
                raise CommandError(
                    f"upload of {path} interrupted after {exc.done} of {exc.total} bytes; "
                    f"resume with: kloudless put {path} --session-id {exc.session_id}",
                    EXIT_FAILURE,
                ) from exc
            except KeyboardInterrupt as exc:
                # The SDK attaches the multipart session id to Ctrl-C (None for small files).
                sid = getattr(exc, "kloudless_session_id", None)
                if sid is None:
                    raise
                output.info(f"interrupted; resume with: kloudless put {path} --session-id {sid}")
                return EXIT_INTERRUPTED
        uploaded.append(response_data(result))
    if ctx.json:
        output.print_json(uploaded if len(uploaded) > 1 else uploaded[0])
    else:
        print_storage_table(uploaded)
    return 0


def register(subparsers: Any) -> None:
    """Add the transfer commands to the main parser's subcommands.

    :param subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    p = add_command(subparsers, "get", cmd_get, "download a file")
    p.add_argument("file", metavar="FILE", help="file id or path")
    p.add_argument(
        "dest",
        nargs="?",
        metavar="DEST",
        help="local file or folder (default: the current folder; '-' for stdout)",
    )
    p.add_argument("-f", "--force", action="store_true", help="replace an existing local file")
    p.add_argument(
        "--chunk-size",
        type=byte_count,
        default=1024 * 1024,
        metavar="SIZE",
        help="bytes read from the network at a time (default 1M)",
    )
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")

    p = add_command(
        subparsers,
        "put",
        cmd_put,
        "upload files",
        "Upload files; large files go up in parts (multipart upload).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="local file(s)")
    p.add_argument("--parent", metavar="FOLDER", help="destination folder id or path (default /)")
    p.add_argument("--name", help="name on the server (one file only)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a file of the same name (default: the server picks a new name)",
    )
    p.add_argument(
        "--multipart-threshold",
        type=byte_count,
        metavar="SIZE",
        help="upload in parts above this size (e.g. 8M)",
    )
    p.add_argument(
        "--session-id", metavar="ID", help="resume an interrupted multipart upload of this file"
    )
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
