"""The ``raw`` command: a pass-through request to the account's upstream service."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from . import output
from .command import add_command
from .context import Context
from .errors import CommandError


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


def register(subparsers: Any) -> None:
    """Add the ``raw`` command to the main parser's subcommands.

    :param subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    p = add_command(
        subparsers,
        "raw",
        cmd_raw,
        "pass-through request to the upstream service",
        "Send METHOD URI to the account's upstream service API (pass-through).",
    )
    p.add_argument("method", metavar="METHOD", help="HTTP method, e.g. GET")
    p.add_argument("uri", metavar="URI", help="upstream path or URL, e.g. /drive/v2/about")
    p.add_argument("-H", "--header", action="append", default=[], help="extra header 'Name: value'")
    p.add_argument("-d", "--data", help="request body; @FILE reads a file, @- stdin")
