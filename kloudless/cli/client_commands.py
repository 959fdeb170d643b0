"""Client commands of the ``kloudless`` command line: storage, calendar, events, pass-through.

Every command talks to a Kloudless-compatible API (the local server by default) through the SDK,
with credentials from flags or the environment:

* ``--token`` / ``KLOUDLESS_TOKEN``: a bearer token (the account is the token's own);
* ``--api-key`` / ``KLOUDLESS_API_KEY`` with ``--account`` / ``KLOUDLESS_ACCOUNT_ID``;
* ``--base-url`` / ``KLOUDLESS_BASE_URL``: the API server (default ``http://localhost:8002``).

:func:`register` adds the commands to the main parser of :mod:`kloudless.cli`; :func:`run` runs them
on their own. Each command returns an exit code and reports failures as one line on stderr.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, Callable
from urllib.parse import quote

import requests

from kloudless import exceptions

from . import output
from .errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, CommandError
from .progress import progress_bar
from .resolve import PAGE_SIZE, Resolver, is_path, split_path

ENV_TOKEN = "KLOUDLESS_TOKEN"
ENV_API_KEY = "KLOUDLESS_API_KEY"
ENV_ACCOUNT = "KLOUDLESS_ACCOUNT_ID"
ENV_BASE_URL = "KLOUDLESS_BASE_URL"

#: Limits of ``events --follow --interval`` so a typo can neither hammer the server nor stall.
MIN_INTERVAL = 0.1
MAX_INTERVAL = 300.0
#: Pages fetched per poll before yielding to the sleep (keeps one poll bounded).
MAX_PAGES_PER_POLL = 1000

Handler = Callable[["Context"], int]


# -- context: credentials, account, resolver ----------------------------------------------------


class Context:
    """What a command needs: its parsed arguments and a lazily built account.

    :param args: the parsed command-line arguments.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(getattr(args, "json", False))
        self._account: Any = None
        self._resolver: Resolver | None = None

    def option(self, name: str, env: str) -> str | None:
        """Read a setting from its flag, else from the environment.

        :param name: the argparse destination of the flag.
        :param env: the environment variable.
        :returns: the value, or None when neither is set (empty counts as unset).
        """
        value = getattr(self.args, name, None) or os.environ.get(env) or None
        return str(value) if value is not None else None

    @property
    def base_url(self) -> str:
        """The API base URL in use (flag, environment, then the SDK's configuration)."""
        explicit = self.option("base_url", ENV_BASE_URL)
        if explicit:
            return explicit
        from kloudless.config import configuration

        return str(configuration.get("base_url") or "")

    @property
    def account(self) -> Any:
        """The :class:`kloudless.Account` for the configured credentials (built on first use).

        :raises CommandError: when no usable credentials are configured.
        """
        if self._account is None:
            token = self.option("token", ENV_TOKEN)
            if getattr(self.args, "api_key", None) and not getattr(self.args, "token", None):
                token = None  # an explicit --api-key wins over $KLOUDLESS_TOKEN
            self._account = make_account(
                token=token,
                api_key=self.option("api_key", ENV_API_KEY),
                account_id=self.option("account", ENV_ACCOUNT),
                base_url=self.option("base_url", ENV_BASE_URL),
                timeout=getattr(self.args, "timeout", None),
                retries=getattr(self.args, "retries", None),
            )
        return self._account

    @property
    def resolver(self) -> Resolver:
        """The path/id resolver for this command's account."""
        if self._resolver is None:
            self._resolver = Resolver(self.account)
        return self._resolver

    def close(self) -> None:
        """Release the account's HTTP connections."""
        if self._account is not None:
            close = getattr(self._account, "close", None)
            if callable(close):
                close()


def make_account(
    token: str | None,
    api_key: str | None,
    account_id: str | None,
    base_url: str | None,
    timeout: float | None = None,
    retries: int | None = None,
) -> Any:
    """Build the SDK account for the command line's credentials.

    :param token: a bearer token (wins over the API key, as in the SDK).
    :param api_key: an application API key; needs ``account_id``.
    :param account_id: the account to act on with an API key.
    :param base_url: the API server, None for the SDK's configured default.
    :param timeout: seconds before a request is abandoned, None for the SDK's default.
    :param retries: retries per request, None for the SDK's default.
    :returns: a :class:`kloudless.Account`.
    :raises CommandError: when no credentials are given or an API key lacks an account id.
    """
    import warnings

    from kloudless.account import Account

    if not token and not api_key:
        raise CommandError(
            f"no credentials: pass --token or set {ENV_TOKEN} "
            f"(or --api-key/{ENV_API_KEY} with --account/{ENV_ACCOUNT})"
        )
    if not token and not account_id:
        raise CommandError(f"an API key needs an account id: pass --account or set {ENV_ACCOUNT}")
    options: dict[str, Any] = {}
    if base_url:
        options["base_url"] = base_url
    if timeout is not None:
        if timeout <= 0:
            raise CommandError("--timeout must be more than 0 seconds")
        options["timeout"] = timeout
    if retries is not None:
        if retries < 0:
            raise CommandError("--retries must be 0 or more")
        options["max_retries"] = retries
    # Show SDK warnings (e.g. plain http to a remote host) as one line, not a source excerpt.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if token:
            account = Account(token=token, account_id=account_id or None, **options)
        else:
            account = Account(api_key=api_key, account_id=account_id, **options)
    for warning in caught:
        output.info(f"{output.PROG}: warning: {warning.message}")
    return account


# -- error handling -----------------------------------------------------------------------------


def describe_api_error(exc: Any) -> str:
    """Summarise an API error in one line: status, error code, message and request id.

    :param exc: a :class:`kloudless.exceptions.APIException`.
    :returns: e.g. ``404 not_found: The file does not exist. (request id 5f2c...)``.
    """
    status = getattr(exc, "status", None)
    data = getattr(exc, "error_data", None)
    code = message = request_id = None
    if isinstance(data, dict):
        code = data.get("error_code")
        message = data.get("message")
        request_id = data.get("id")
    code = code or getattr(exc, "error_code", None)
    request_id = request_id or getattr(exc, "request_id", None)
    if not message:
        message = getattr(exc, "default_message", None) or type(exc).__name__
    text = f"{status or 'HTTP error'}"
    if code:
        text += f" {code}"
    text += f": {message}"
    if request_id:
        text += f" (request id {request_id})"
    if status == 401:
        text += f"; check --token/{ENV_TOKEN} or --api-key/{ENV_API_KEY}"
    return text


def guarded(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap a command so every expected failure becomes one stderr line and an exit code.

    API errors, network errors, local file errors, missing credentials and Ctrl-C never show a
    traceback; anything else is a bug and propagates.

    :param handler: the command, taking a :class:`Context` and returning an exit code.
    :returns: a function taking the parsed arguments and returning the exit code.
    """

    def run_command(args: argparse.Namespace) -> int:
        ctx = Context(args)
        log_handler = _start_logging(int(getattr(args, "verbose", 0) or 0))
        try:
            return int(handler(ctx) or 0)
        except CommandError as exc:
            output.error(exc.message)
            return exc.exit_code
        except exceptions.APIException as exc:
            output.error(describe_api_error(exc))
            return EXIT_FAILURE
        except requests.Timeout:
            output.error(f"the API server at {ctx.base_url} did not answer in time")
            return EXIT_FAILURE
        except requests.ConnectionError:
            output.error(f"cannot connect to the API server at {ctx.base_url}{_serve_hint(ctx)}")
            return EXIT_FAILURE
        except requests.RequestException as exc:
            output.error(f"request failed: {type(exc).__name__}")
            return EXIT_FAILURE
        except exceptions.KloudlessException as exc:
            # SDK-side errors such as InvalidParameter; network ones were handled above.
            output.error(str(exc) or type(exc).__name__)
            return EXIT_FAILURE
        except KeyboardInterrupt:
            output.info("interrupted")
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader went away (e.g. `kloudless ls | head`): stop quietly.
            _silence_stdout()
            return EXIT_FAILURE
        except OSError as exc:
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            output.error(f"{exc.strerror or exc}{where}")
            return EXIT_FAILURE
        finally:
            ctx.close()
            _stop_logging(log_handler)

    run_command.__doc__ = handler.__doc__
    return run_command


def _serve_hint(ctx: Context) -> str:
    """:returns: a hint to start the local server when the API address is on this machine."""
    from urllib.parse import urlsplit

    from kloudless.util import is_loopback_host

    try:
        host = urlsplit(ctx.base_url).hostname or ""
    except ValueError:
        return ""
    return "; is `kloudless serve` running?" if host and is_loopback_host(host) else ""


def _start_logging(verbosity: int) -> logging.Handler | None:
    """Show the SDK's log on stderr for ``-v`` (INFO: retries) or ``-vv`` (DEBUG: every request).

    The handler carries the SDK's redacting filter, so tokens and keys never reach the terminal.
    """
    if verbosity <= 0:
        return None
    from kloudless.util import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{output.PROG}: %(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    sdk_logger = logging.getLogger("kloudless")
    sdk_logger.addHandler(handler)
    sdk_logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    return handler


def _stop_logging(handler: logging.Handler | None) -> None:
    if handler is not None:
        sdk_logger = logging.getLogger("kloudless")
        sdk_logger.removeHandler(handler)
        sdk_logger.setLevel(logging.NOTSET)
        handler.close()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# -- small helpers --------------------------------------------------------------------------------


def _q(value: Any) -> str:
    return quote(str(value), safe="")


def _kind_label(item: dict[str, Any]) -> str:
    return "dir" if item.get("type") == "folder" else str(item.get("type") or "-")


def _display_name(item: dict[str, Any]) -> str:
    name = str(item.get("name") or item.get("id") or "-")
    return name + "/" if item.get("type") == "folder" else name


def _storage_rows(items: Sequence[dict[str, Any]], with_path: bool = False) -> list[list[Any]]:
    rows = []
    for item in items:
        row = [
            _kind_label(item),
            format_item_size(item),
            output.format_time(item.get("modified")),
            _display_name(item),
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


def _print_storage_table(items: Sequence[dict[str, Any]], with_path: bool = False) -> None:
    headers = ["TYPE", "SIZE", "MODIFIED", "NAME", "ID"]
    if with_path:
        headers.insert(4, "PATH")
    output.echo(output.render_table(_storage_rows(items, with_path), headers, right_align=(1,)))


def _sorted_for_humans(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda i: (i.get("type") != "folder", str(i.get("name", "")).lower()))


def _kind(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind not in ("file", "folder"):
        raise CommandError(f"not a file or folder: {item.get('id')}")
    return str(kind)


def _data(response: Any) -> dict[str, Any]:
    data = getattr(response, "data", None)
    return dict(data) if isinstance(data, dict) else {}


def parse_user_time(text: str, option: str) -> str:
    """Turn a date or time typed by the user into the API's ISO-8601 UTC form.

    Accepts ``2024-05-01``, ``2024-05-01 14:00``, ``2024-05-01T14:00:00+02:00`` or ``...Z``;
    times without a zone are local times.

    :param text: the user's input.
    :param option: the option name, for the error message.
    :returns: e.g. ``2024-05-01T12:00:00Z``.
    :raises CommandError: if the text is not a date or time.
    """
    raw = text.strip()
    parsed = output.parse_time(raw) if raw.endswith(("Z", "z")) else None
    if parsed is None:
        try:
            parsed = _dt.datetime.fromisoformat(raw)
        except ValueError:
            raise CommandError(
                f"{option}: not a date or time: {text!r} (use e.g. 2024-05-01 or 2024-05-01T14:00)"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()  # naive = local time
    return parsed.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str) -> _dt.timedelta:
    """Parse a short duration such as ``30m``, ``1h``, ``1h30m``, ``90s`` or ``2d``.

    :param text: the user's input.
    :returns: the duration.
    :raises CommandError: for anything else or a zero duration.
    """
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    total = 0
    number = ""
    for char in text.strip().lower():
        if char.isdigit():
            number += char
        elif char in units and number:
            total += int(number) * units[char]
            number = ""
        else:
            raise CommandError(f"--duration: not a duration: {text!r} (use e.g. 30m, 1h, 1h30m)")
    if number or total <= 0:
        raise CommandError(f"--duration: not a duration: {text!r} (use e.g. 30m, 1h, 1h30m)")
    return _dt.timedelta(seconds=total)


# -- storage commands ---------------------------------------------------------------------------


def cmd_ls(ctx: Context) -> int:
    """List a folder (or show one file)."""
    target = ctx.resolver.resolve(ctx.args.folder or "/")
    items = ctx.resolver.children(str(target["id"])) if target.get("type") == "folder" else [target]
    if ctx.json:
        output.print_json(items)
    else:
        _print_storage_table(_sorted_for_humans(items))
    return 0


def _tree(
    ctx: Context, folder: dict[str, Any], depth: int | None, seen: set[str]
) -> dict[str, Any]:
    node = dict(folder)
    seen.add(str(folder["id"]))
    children: list[dict[str, Any]] = []
    if depth is None or depth > 0:
        for item in _sorted_for_humans(ctx.resolver.children(str(folder["id"]))):
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
        output.echo(f"{prefix}{'└── ' if last else '├── '}{_display_name(child)}{size}")
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


def cmd_get(ctx: Context) -> int:
    """Download a file."""
    from kloudless.filenames import safe_join

    item = ctx.resolver.resolve(ctx.args.file, kind="file")
    resource = ctx.account.get(f"storage/files/{_q(item['id'])}")
    dest = ctx.args.dest
    if dest == "-":
        sys.stdout.flush()
        resource.download(sys.stdout.buffer, chunk_size=ctx.args.chunk_size)
        sys.stdout.buffer.flush()
        return 0
    if dest is None or os.path.isdir(dest) or dest.endswith(("/", os.sep)):
        folder = dest or "."
        if not os.path.isdir(folder):
            raise CommandError(f"no such local folder: {folder}")
        path = safe_join(folder, item.get("name"))
    else:
        path = os.path.abspath(dest)
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):  # checked here: the download would name its temp file
            raise CommandError(f"no such local folder: {os.path.dirname(dest) or folder}")
    if os.path.exists(path) and not ctx.args.force:
        raise CommandError(f"{path} exists; use --force to replace it")
    with progress_bar(str(item.get("name") or "download"), not ctx.args.no_progress) as callback:
        # Written to a temporary file and renamed into place: a failed download leaves nothing
        # under the final name; dropped connections are resumed with Range requests.
        resource.download(path, chunk_size=ctx.args.chunk_size, progress=callback)
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
            raise CommandError(f"no such local file: {path}")
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
        uploaded.append(_data(result))
    if ctx.json:
        output.print_json(uploaded if len(uploaded) > 1 else uploaded[0])
    else:
        _print_storage_table(uploaded)
    return 0


def _make_folder(ctx: Context, parent_id: str, name: str, exist_ok: bool) -> dict[str, Any]:
    response = ctx.account.post(
        "storage/folders",
        json={"name": name, "parent_id": parent_id},
        params={"conflict_if_exists": "false" if exist_ok else "true"},
    )
    ctx.resolver.forget(parent_id)
    return _data(response)


def cmd_mkdir(ctx: Context) -> int:
    """Create folders."""
    created = []
    for spec in ctx.args.paths:
        if ctx.args.parent:
            if "/" in spec:
                raise CommandError("with --parent, give a folder name without '/'")
            parent = ctx.resolver.resolve(ctx.args.parent, kind="folder")
            created.append(_make_folder(ctx, str(parent["id"]), spec, ctx.args.parents))
            continue
        names = split_path(spec)
        if not names:
            raise CommandError("the root folder already exists")
        if ctx.args.parents:
            current = ctx.resolver.resolve("/", kind="folder")
            for name in names:
                found = ctx.resolver.child(str(current["id"]), name, kind="folder")
                current = found or _make_folder(ctx, str(current["id"]), name, exist_ok=True)
            created.append(current)
        else:
            parent, name = ctx.resolver.resolve_parent(spec)
            created.append(_make_folder(ctx, str(parent["id"]), name, exist_ok=False))
    if ctx.json:
        output.print_json(created if len(created) > 1 else created[0])
    else:
        _print_storage_table(created)
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
    kind = _kind(source)
    if kind == "folder" and str(source.get("id")) == "root":
        raise CommandError("the root folder cannot be moved or copied")
    parent_id, name = _destination(ctx, source, ctx.args.dest)
    body = {"parent_id": parent_id, "name": name}
    path = f"storage/{kind}s/{_q(source['id'])}"
    if copy:
        result = _data(ctx.account.post(path + "/copy", json=body))
    else:
        result = _data(ctx.account.patch(path, json=body))
    if ctx.json:
        output.print_json(result)
    else:
        _print_storage_table([result])
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
        kind = _kind(item)
        params: dict[str, str] = {}
        if ctx.args.permanent:
            params["permanent"] = "true"
        if kind == "folder":
            params["recursive"] = "true"
        ctx.account.delete(f"storage/{kind}s/{_q(item['id'])}", params=params)
        deleted.append({"id": item["id"], "name": item.get("name"), "type": kind})
    if ctx.json:
        output.print_json(deleted)
    else:
        for entry in deleted:
            output.echo(f"deleted {_display_name(entry)}")
    return 0


def cmd_link(ctx: Context) -> int:
    """Create a shared link to a file."""
    item = ctx.resolver.resolve(ctx.args.file, kind="file")
    body: dict[str, Any] = {"file_id": item["id"], "direct": bool(ctx.args.direct)}
    if ctx.args.expiration:
        body["expiration"] = parse_user_time(ctx.args.expiration, "--expiration")
    link = _data(ctx.account.post("storage/links", json=body))
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
    items = [_data(r) for r in results.get_paging_iterator(max_resources=ctx.args.limit)]
    if ctx.json:
        output.print_json(items)
    else:
        _print_storage_table(items, with_path=any(i.get("path") for i in items))
    return 0


# -- calendar commands --------------------------------------------------------------------------


def _calendar_id(ctx: Context, spec: str | None) -> str:
    """Accept a calendar id, ``primary`` or a calendar name."""
    if not spec or spec == "primary":
        return "primary"
    try:
        return str(ctx.account.get(f"cal/calendars/{_q(spec)}").data["id"])
    except exceptions.APIException as exc:
        if getattr(exc, "status", None) not in (400, 404):
            raise
    matches = [c for c in _calendars(ctx) if c.get("name") == spec]
    if len(matches) == 1:
        return str(matches[0]["id"])
    if matches:
        raise CommandError(f"calendar name '{spec}' is ambiguous; use its id")
    raise CommandError(f"no such calendar: {spec}")


def _calendars(ctx: Context) -> list[dict[str, Any]]:
    listing = ctx.account.get("cal/calendars", params={"page_size": PAGE_SIZE})
    return [_data(c) for c in listing.get_paging_iterator()]


def cmd_cal_list(ctx: Context) -> int:
    """List calendars."""
    calendars = _calendars(ctx)
    if ctx.json:
        output.print_json(calendars)
        return 0
    rows = [
        [c.get("name"), "yes" if c.get("primary") else "", c.get("timezone"), c.get("id")]
        for c in calendars
    ]
    output.echo(output.render_table(rows, ["NAME", "PRIMARY", "TIMEZONE", "ID"]))
    return 0


def _event_rows(events: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            output.format_time(e.get("start")),
            output.format_time(e.get("end")),
            e.get("name"),
            e.get("id"),
        ]
        for e in events
    ]


def cmd_cal_events(ctx: Context) -> int:
    """List events of a calendar."""
    calendar_id = _calendar_id(ctx, ctx.args.calendar)
    params: dict[str, Any] = {"page_size": min(ctx.args.limit, PAGE_SIZE)}
    if ctx.args.start:
        params["start"] = parse_user_time(ctx.args.start, "--from")
    if ctx.args.end:
        params["end"] = parse_user_time(ctx.args.end, "--to")
    listing = ctx.account.get(f"cal/calendars/{_q(calendar_id)}/events", params=params)
    events = [_data(e) for e in listing.get_paging_iterator(max_resources=ctx.args.limit)]
    if ctx.json:
        output.print_json(events)
    else:
        output.echo(output.render_table(_event_rows(events), ["START", "END", "NAME", "ID"]))
    return 0


def cmd_cal_add(ctx: Context) -> int:
    """Create an event; a date-only ``--start`` makes an all-day event."""
    if ctx.args.end and ctx.args.duration:
        raise CommandError("give --end or --duration, not both")
    day = _plain_date(ctx.args.start)
    if day is not None:
        start, end = _all_day_range(day, ctx.args.end, ctx.args.duration)
    else:
        start, end = _timed_range(ctx)
    body: dict[str, Any] = {"name": ctx.args.name, "start": start, "end": end}
    if ctx.args.description:
        body["description"] = ctx.args.description
    if ctx.args.location:
        body["location"] = ctx.args.location
    calendar_id = _calendar_id(ctx, ctx.args.calendar)
    event = _data(ctx.account.post(f"cal/calendars/{_q(calendar_id)}/events", json=body))
    if ctx.json:
        output.print_json(event)
    else:
        output.echo(output.render_table(_event_rows([event]), ["START", "END", "NAME", "ID"]))
    return 0


def _plain_date(text: str | None) -> _dt.date | None:
    """:returns: the date when ``text`` is a date without a time (``2030-05-02``), else None."""
    raw = (text or "").strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        return None
    try:
        return _dt.date.fromisoformat(raw)
    except ValueError:
        return None


def _all_day_range(day: _dt.date, end_text: str | None, duration: str | None) -> tuple[str, str]:
    """:returns: ``(start, end)`` dates of an all-day event; the end (exclusive, as in
    iCalendar) defaults to the next day, or is ``--end DATE`` or ``--duration`` whole days.
    :raises CommandError: for a timed ``--end``, a partial-day duration or an empty range."""
    if end_text:
        end = _plain_date(end_text)
        if end is None:
            raise CommandError("--end: an all-day event (date-only --start) needs a date end")
    elif duration:
        length = parse_duration(duration)
        if length % _dt.timedelta(days=1):
            raise CommandError("--duration: an all-day event lasts whole days (e.g. 2d)")
        end = day + length
    else:
        end = day + _dt.timedelta(days=1)
    if end <= day:
        raise CommandError("the event must end after it starts")
    return day.isoformat(), end.isoformat()


def _timed_range(ctx: Context) -> tuple[str, str]:
    """:returns: ``(start, end)`` UTC times of a timed event from the command's options."""
    start = parse_user_time(ctx.args.start, "--start")
    if ctx.args.end:
        end = parse_user_time(ctx.args.end, "--end")
    else:
        begin = output.parse_time(start)
        assert begin is not None  # produced by parse_user_time
        end = (begin + parse_duration(ctx.args.duration or "1h")).strftime("%Y-%m-%dT%H:%M:%SZ")
    if end <= start:
        raise CommandError("the event must end after it starts")
    return start, end


# -- activity events ----------------------------------------------------------------------------


def fetch_events(
    account: Any, cursor: Any, page_size: int
) -> Iterator[tuple[list[dict[str, Any]], Any]]:
    """Fetch pages of activity events until the server has nothing more (bounded).

    :param account: the :class:`kloudless.Account`.
    :param cursor: where to start (None for the start of the retained log).
    :param page_size: events per request.
    :returns: an iterator of ``(events of one page, cursor after that page)``.
    """
    for _ in range(MAX_PAGES_PER_POLL):
        params: dict[str, Any] = {"page_size": page_size}
        if cursor not in (None, ""):
            params["cursor"] = cursor
        data = _data(account.get("events", params=params))
        objects = [dict(o) for o in data.get("objects") or [] if isinstance(o, dict)]
        new_cursor = data.get("cursor", cursor)
        if new_cursor in (None, -1, "-1"):
            new_cursor = cursor
        yield objects, new_cursor
        cursor = new_cursor
        if not objects or not data.get("remaining"):
            return


def _event_line(event: dict[str, Any]) -> str:
    raw_meta = event.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    when = output.format_time(event.get("modified"))
    kind = str(event.get("type") or event.get("action") or "-")
    what = _display_name(meta) if meta else "-"
    object_id = meta.get("id") or event.get("id")
    return f"{when}  {kind:<8}  {what}  ({object_id})"


def cmd_events(ctx: Context) -> int:
    """Show the account's activity events."""
    args = ctx.args
    if args.page_size < 1 or args.page_size > PAGE_SIZE:
        raise CommandError(f"--page-size must be between 1 and {PAGE_SIZE}")
    if args.max_polls is not None and args.max_polls < 1:
        raise CommandError("--max-polls must be 1 or more")
    interval = min(max(args.interval, MIN_INTERVAL), MAX_INTERVAL)
    cursor: Any = args.cursor
    if args.follow and cursor is None:
        # Following starts from now, like `tail -f`.
        cursor = _data(ctx.account.get("events/latest")).get("cursor")
    collected: list[dict[str, Any]] = []
    polls = 0
    try:
        while True:
            polls += 1
            for events, page_cursor in fetch_events(ctx.account, cursor, args.page_size):
                cursor = page_cursor
                for event in events:
                    if args.follow and ctx.json:
                        output.print_json(event, lines=True)
                    elif ctx.json:
                        collected.append(event)
                    else:
                        output.echo(_event_line(event))
            if not args.follow or (args.max_polls is not None and polls >= args.max_polls):
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        # Ctrl-C is how one stops --follow: not an error.
        output.info(f"cursor: {cursor}")
        return 0
    if ctx.json and not args.follow:
        output.print_json({"objects": collected, "cursor": cursor})
    else:
        output.info(f"cursor: {cursor}")
    return 0


# -- pass-through -------------------------------------------------------------------------------


def _parse_headers(values: Sequence[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise CommandError(f"-H: expected 'Name: value', got {value!r}")
        headers[name.strip()] = content.strip()
    return headers


def _read_data(value: str | None) -> bytes | None:
    if value is None:
        return None
    if value == "@-":
        return sys.stdin.buffer.read()
    if value.startswith("@"):
        with open(value[1:], "rb") as handle:
            return handle.read()
    return value.encode("utf-8")


def cmd_raw(ctx: Context) -> int:
    """Send a pass-through request to the account's upstream service."""
    kwargs: dict[str, Any] = {}
    headers = _parse_headers(ctx.args.header)
    if headers:
        kwargs["headers"] = headers
    data = _read_data(ctx.args.data)
    if data is not None:
        kwargs["data"] = data
    response = ctx.account.raw(ctx.args.method.upper(), ctx.args.uri, **kwargs)
    if ctx.json:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        output.print_json(
            {"status": response.status_code, "headers": dict(response.headers), "body": body}
        )
        return 0
    output.info(f"HTTP {response.status_code}")
    sys.stdout.flush()
    sys.stdout.buffer.write(response.content)
    if response.content and not response.content.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()
    return 0


# -- parser -------------------------------------------------------------------------------------

EPILOG = """\
credentials: --token or KLOUDLESS_TOKEN (a bearer token), or --api-key/KLOUDLESS_API_KEY
  with --account/KLOUDLESS_ACCOUNT_ID; server: --base-url or KLOUDLESS_BASE_URL
  (default http://localhost:8002). Files and folders are ids or paths such as /docs/a.txt."""


def common_options() -> argparse.ArgumentParser:
    """The options every client command accepts (credentials, server, ``--json``).

    Defaults are suppressed so options given before the command name on the main parser (if it
    defines them too) are not overwritten by the subcommand's defaults.

    :returns: a parent parser for ``add_parser(..., parents=[...])``.
    """
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--token", default=argparse.SUPPRESS, help=f"bearer token [{ENV_TOKEN}]")
    group.add_argument(
        "--api-key", default=argparse.SUPPRESS, help=f"application API key [{ENV_API_KEY}]"
    )
    group.add_argument(
        "--account",
        default=argparse.SUPPRESS,
        metavar="ID",
        help=f"account id, needed with an API key [{ENV_ACCOUNT}]",
    )
    group.add_argument(
        "--base-url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"API server [{ENV_BASE_URL}, default http://localhost:8002]",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="give up on a request after this long (default: the SDK's 10 s connect, 60 s read)",
    )
    group.add_argument(
        "--retries",
        type=int,
        default=argparse.SUPPRESS,
        metavar="N",
        help="retries after network errors and 429/5xx answers (default 3; 0 disables)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log retries (-v) or every request (-vv) on stderr; secrets are redacted",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print JSON for scripts instead of tables",
    )
    return parent


def _add(
    subparsers: Any,
    name: str,
    handler: Handler,
    help_text: str,
    parents: list[argparse.ArgumentParser],
    description: str | None = None,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        epilog=EPILOG,
        parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=guarded(handler))
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def _byte_count(text: str) -> int:
    """Parse ``1048576``, ``512K``, ``8M`` or ``1G`` (binary multiples)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = units.get(cleaned[-1:], 1)
    number = cleaned[:-1] if cleaned[-1:] in units else cleaned
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 8M)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add the client commands to the main parser's subcommands.

    Each command sets ``func`` to a callable taking the parsed arguments and returning the exit
    code; it never raises for API, network, credential or local file errors.

    :param subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    common = [common_options()]

    p = _add(subparsers, "ls", cmd_ls, "list a folder", common)
    p.add_argument("folder", nargs="?", metavar="FOLDER", help="folder id or path (default /)")

    p = _add(subparsers, "tree", cmd_tree, "show a folder tree", common)
    p.add_argument("folder", nargs="?", metavar="FOLDER", help="folder id or path (default /)")
    p.add_argument("--depth", type=int, default=None, help="levels to show (1: the folder's items)")

    p = _add(subparsers, "get", cmd_get, "download a file", common)
    p.add_argument("file", metavar="FILE", help="file id or path")
    p.add_argument(
        "dest",
        nargs="?",
        metavar="DEST",
        help="local file or folder (default: the current folder; '-' for stdout)",
    )
    p.add_argument("-f", "--force", action="store_true", help="replace an existing local file")
    p.add_argument("--chunk-size", type=_byte_count, default=1024 * 1024, metavar="SIZE")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")

    p = _add(
        subparsers,
        "put",
        cmd_put,
        "upload files",
        common,
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
        type=_byte_count,
        metavar="SIZE",
        help="upload in parts above this size (e.g. 8M)",
    )
    p.add_argument(
        "--session-id", metavar="ID", help="resume an interrupted multipart upload of this file"
    )
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")

    p = _add(subparsers, "mkdir", cmd_mkdir, "create folders", common)
    p.add_argument("paths", nargs="+", metavar="FOLDER", help="path of the new folder")
    p.add_argument("--parent", metavar="FOLDER", help="create NAME inside this folder id or path")
    p.add_argument(
        "-p", "--parents", action="store_true", help="create missing parents; no error if it exists"
    )

    dest_help = (
        "an existing folder (id or path) to put it in, a path with the new name, "
        "or a bare new name to rename in place"
    )
    p = _add(subparsers, "mv", cmd_mv, "move or rename a file or folder", common)
    p.add_argument("source", metavar="SOURCE", help="file or folder id or path")
    p.add_argument("dest", metavar="DEST", help=dest_help)

    p = _add(subparsers, "cp", cmd_cp, "copy a file or folder", common)
    p.add_argument("source", metavar="SOURCE", help="file or folder id or path")
    p.add_argument("dest", metavar="DEST", help=dest_help)

    p = _add(subparsers, "rm", cmd_rm, "delete files and folders", common)
    p.add_argument("targets", nargs="+", metavar="TARGET", help="file or folder id or path")
    p.add_argument(
        "-r", "--recursive", action="store_true", help="delete folders and their contents"
    )
    p.add_argument("--permanent", action="store_true", help="skip the trash where there is one")

    p = _add(subparsers, "link", cmd_link, "create a shared link to a file", common)
    p.add_argument("file", metavar="FILE", help="file id or path")
    p.add_argument("--direct", action="store_true", help="link to the raw contents")
    p.add_argument("--expiration", metavar="TIME", help="when the link stops working")

    p = _add(subparsers, "search", cmd_search, "search files and folders", common)
    p.add_argument("query", metavar="QUERY", help="text to look for in names")
    p.add_argument("--parent", metavar="FOLDER", help="search only inside this folder")
    p.add_argument("--limit", type=_positive_int, default=100, help="most results (default 100)")

    cal = subparsers.add_parser(
        "cal",
        help="calendars and events",
        description="Calendars and events.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cal_sub = cal.add_subparsers(dest="cal_command", metavar="COMMAND")
    cal_sub.required = True

    _add(cal_sub, "list", cmd_cal_list, "list calendars", common)

    p = _add(cal_sub, "events", cmd_cal_events, "list events of a calendar", common)
    p.add_argument(
        "calendar", nargs="?", metavar="CAL", help="calendar id or name (default primary)"
    )
    p.add_argument("--from", dest="start", metavar="TIME", help="only events ending after this")
    p.add_argument("--to", dest="end", metavar="TIME", help="only events starting before this")
    p.add_argument("--limit", type=_positive_int, default=100, help="most events (default 100)")

    p = _add(cal_sub, "add", cmd_cal_add, "create an event", common)
    p.add_argument("name", metavar="NAME", help="event title")
    p.add_argument(
        "--start",
        required=True,
        metavar="TIME",
        help="e.g. 2024-05-01T14:00 (local); a date alone (2024-05-01) makes an all-day event",
    )
    p.add_argument("--end", metavar="TIME", help="end time")
    p.add_argument("--duration", help="length instead of --end, e.g. 30m or 1h30m (default 1h)")
    p.add_argument("--calendar", metavar="CAL", help="calendar id or name (default primary)")
    p.add_argument("--description")
    p.add_argument("--location")

    p = _add(
        subparsers,
        "events",
        cmd_events,
        "show activity events",
        common,
        "Show the account's activity events after a cursor; with --follow keep polling "
        "(Ctrl-C stops). The last cursor is printed on stderr.",
    )
    p.add_argument(
        "--cursor",
        help="start after this cursor (default: the oldest kept event; with --follow: now)",
    )
    p.add_argument("--follow", "-F", action="store_true", help="keep polling for new events")
    p.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help=f"seconds between polls with --follow ({MIN_INTERVAL}-{MAX_INTERVAL:.0f}, default 2)",
    )
    p.add_argument(
        "--page-size", type=int, default=100, metavar="N", help="events per request (default 100)"
    )
    p.add_argument(
        "--max-polls", type=int, default=None, metavar="N", help="stop --follow after N polls"
    )

    p = _add(
        subparsers,
        "raw",
        cmd_raw,
        "pass-through request to the upstream service",
        common,
        "Send METHOD URI to the account's upstream service API (pass-through).",
    )
    p.add_argument("method", metavar="METHOD", help="HTTP method, e.g. GET")
    p.add_argument("uri", metavar="URI", help="upstream path or URL, e.g. /drive/v2/about")
    p.add_argument("-H", "--header", action="append", default=[], help="extra header 'Name: value'")
    p.add_argument("-d", "--data", help="request body; @FILE reads a file, @- stdin")


def build_parser() -> argparse.ArgumentParser:
    """A parser holding only the client commands (for :func:`run`).

    :returns: the parser.
    """
    parser = argparse.ArgumentParser(
        prog=output.PROG,
        description="Kloudless client commands.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    register(subparsers)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Run one client command.

    :param argv: the arguments (default ``sys.argv[1:]``).
    :returns: the exit code (argparse usage errors exit with 2 through ``SystemExit``).
    """
    args = build_parser().parse_args(argv)
    return int(args.func(args))


__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "build_parser", "register", "run"]
