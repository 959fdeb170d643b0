"""``kloudless developer-key create|rotate``: the operator's developer key, on a data dir.

The developer key (``Authorization: DeveloperKey <key>``) reaches the management API: every
application of the server, their API keys and webhooks (see the server guide, "Managing
applications"). ``kloudless serve`` creates one on first start; these commands make another
(``create``: the existing keys keep working) or replace every existing one (``rotate``). The key
is printed once, as an ``export`` line; it is stored hashed.
"""

from __future__ import annotations

import argparse
import json
import shlex
from contextlib import closing
from typing import Any

from .server_commands import _command, _store

__all__ = ["register"]


def cmd_developer_key(args: argparse.Namespace) -> int:
    from kloudless.server import developers

    with closing(_store(args)) as store:
        key = developers.create_key(store, replace=args.developer_key_command == "rotate")
    if args.json:
        print(json.dumps({"developer_key": key}))
    else:
        what = "A new developer key"
        if args.developer_key_command == "rotate":
            what += "; every older one is revoked"
        print(f"{what} (shown once, store it safely):")
        print(f"  export KLOUDLESS_DEVELOPER_KEY={shlex.quote(key)}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``developer-key`` to the ``kloudless`` parser."""
    group = subparsers.add_parser(
        "developer-key",
        help="create or rotate the operator's developer key (the management API)",
        description="The developer key manages every application of the server through the "
        "management API (meta/applications, applications/...). It is printed once and stored "
        "hashed.",
    )
    sub = group.add_subparsers(dest="developer_key_command", metavar="ACTION", required=True)
    for name, text in (
        ("create", "create another developer key (existing ones keep working)"),
        ("rotate", "create a developer key and revoke every existing one"),
    ):
        parser = _command(sub, name, cmd_developer_key, help=text)
        parser.add_argument(
            "--json", action="store_true", help='print {"developer_key": ...} (default: text)'
        )
