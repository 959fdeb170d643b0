"""The ``kloudless`` command line.

Sub-commands come from modules listed in :data:`COMMAND_MODULES`; each module defines
``register(subparsers)`` which adds its sub-parsers and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit status) with ``set_defaults(func=...)``.
Modules that are not installed yet are skipped.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

#: Modules contributing sub-commands (server management, then client commands).
COMMAND_MODULES = [
    "kloudless.cli.server_commands",
    "kloudless.cli.team_commands",
    "kloudless.cli.developer_commands",
    "kloudless.cli.storage",
    "kloudless.cli.transfers",
    "kloudless.cli.calendars",
    "kloudless.cli.contacts",
    "kloudless.cli.events",
    "kloudless.cli.passthrough",
]


def build_parser() -> argparse.ArgumentParser:
    """:returns: the argument parser with every available sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="kloudless", description="Kloudless-compatible API server and client."
    )
    from kloudless.version import VERSION

    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Any:
    """:returns: the parser of the (sub-)sub-command that ``args`` selected, or ``parser``."""
    current = parser
    for _ in range(8):  # command groups nest two or three levels deep
        subcommands = [
            action
            for action in current._actions
            if isinstance(action, argparse._SubParsersAction) and action.dest != argparse.SUPPRESS
        ]
        name = getattr(args, subcommands[0].dest, None) if subcommands else None
        if name is None or name not in subcommands[0].choices:
            break
        current = subcommands[0].choices[name]
    return current


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    :param argv: arguments without the program name (default ``sys.argv[1:]``).
    :returns: the exit status.
    """
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
        if extra:
            # Report it with the usage of the command it was meant for, not the top-level one.
            chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        return int(func(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C anywhere, even before a command runs: no traceback
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
