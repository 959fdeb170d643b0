"""``kloudless team ...``: the users and groups of an admin account's team, on a data dir.

An admin account (``kloudless accounts create --admin``) has a team: users, each backed by one
of the application's accounts, and groups of them (see the Teams guide). These commands change
the team directly in the server's store, like the other data-dir commands; ``--json`` prints
machine-readable output.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing
from typing import Any, Callable

from .server_commands import _command, _store

__all__ = ["register"]


def _show(args: argparse.Namespace, items: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    if args.json:
        print(json.dumps(items if args.many else items[0], indent=2))
        return
    for item in items:
        print("  ".join(str(item[c]) for c in columns))


def _team_command(work: Callable[[Any, Any, argparse.Namespace], Any]) -> Callable[..., int]:
    """Run ``work(store, admin_row, args)`` on the data dir; API errors are one line (1)."""

    def run(args: argparse.Namespace) -> int:
        from kloudless.server import account_fields  # noqa: F401  (its migration)
        from kloudless.server.errors import ApiError
        from kloudless.server.team import group_fields, user_fields

        with closing(_store(args)) as store:
            admin = store.get_account(args.admin)
            if admin is None:
                sys.stderr.write(f"kloudless: no account {args.admin}\n")
                return 1
            try:
                with store.transaction():
                    result = work(store, admin, args)
            except ApiError as exc:
                sys.stderr.write(f"kloudless: {exc.message} ({exc.error_code})\n")
                return 1
        if isinstance(result, str):
            print(json.dumps({"result": result}) if args.json else result)
        elif result is not None:
            kind, rows = result
            items = [(user_fields if kind == "user" else group_fields)(r) for r in rows]
            columns = (
                ("id", "name", "email", "role", "account")
                if kind == "user"
                else ("id", "name", "role")
            )
            _show(args, items, columns)
        return 0

    return run


def _users_list(store: Any, admin: Any, args: argparse.Namespace) -> Any:
    from kloudless.server import team

    return "user", team.list_users(store, int(admin["id"]))


def _users_add(store: Any, admin: Any, args: argparse.Namespace) -> Any:
    from kloudless.server import team

    return "user", [team.add_user(store, admin, args.account, args.name, args.email, args.role)]


def _users_remove(store: Any, admin: Any, args: argparse.Namespace) -> Any:
    from kloudless.server import team

    team.remove_user(store, int(admin["id"]), args.user)
    return f"Removed user {args.user} from the team of account {args.admin}."


def _groups_list(store: Any, admin: Any, args: argparse.Namespace) -> Any:
    from kloudless.server import team

    return "group", team.list_groups(store, int(admin["id"]))


def _groups_add(store: Any, admin: Any, args: argparse.Namespace) -> Any:
    from kloudless.server import team

    return "group", [team.add_group(store, admin, args.name, args.role)]


def _groups_remove(store: Any, admin: Any, args: argparse.Namespace) -> Any:
    from kloudless.server import team

    team.remove_group(store, int(admin["id"]), args.group)
    return f"Deleted group {args.group}."


def _members(store: Any, admin: Any, args: argparse.Namespace) -> Any:
    from kloudless.server import team

    return "user", team.group_members(store, int(admin["id"]), args.group)


def _member_set(member: bool) -> Callable[[Any, Any, argparse.Namespace], Any]:
    def work(store: Any, admin: Any, args: argparse.Namespace) -> Any:
        from kloudless.server import team

        team.set_member(store, int(admin["id"]), args.group, args.user, member)
        return f"{'Added' if member else 'Removed'} user {args.user} " + (
            f"{'to' if member else 'from'} group {args.group}."
        )

    return work


#: The help of the positional arguments of the team commands.
ARGUMENT_HELP = {
    "ACCOUNT": "the id of the account the new user stands for",
    "USER": "the team user's id",
    "GROUP": "the group's id",
    "NAME": "the new group's name",
}


def register(subparsers: Any) -> None:
    """Add ``team users ...`` and ``team groups ...``."""
    team = subparsers.add_parser("team", help="manage an admin account's team (users, groups)")
    kinds = team.add_subparsers(dest="team_command", metavar="WHAT", required=True)
    users = kinds.add_parser("users", help="the team's users").add_subparsers(
        dest="users_command", metavar="ACTION", required=True
    )
    groups = kinds.add_parser("groups", help="the team's groups").add_subparsers(
        dest="groups_command", metavar="ACTION", required=True
    )

    def add(sub: Any, name: str, work: Any, text: str, many: bool, *args: str) -> Any:
        parser = _command(sub, name, _team_command(work), help=text)
        parser.set_defaults(many=many)
        parser.add_argument("admin", type=int, metavar="ADMIN", help="the admin account id")
        for arg in args:
            parser.add_argument(arg.lower(), metavar=arg, help=ARGUMENT_HELP[arg])
        parser.add_argument("--json", action="store_true", help="print JSON")
        return parser

    add(users, "list", _users_list, "list the team's users", True)
    adder = add(users, "add", _users_add, "add a user backed by ACCOUNT", False, "ACCOUNT")
    adder.add_argument("--name", help="display name (default: the account's name)")
    adder.add_argument("--email", help="the user's e-mail address")
    adder.add_argument("--role", help="default: user")
    add(users, "remove", _users_remove, "remove a user from the team", False, "USER")
    add(groups, "list", _groups_list, "list the team's groups", True)
    gadd = add(groups, "add", _groups_add, "create a group", False, "NAME")
    gadd.add_argument("--role", help="default: member")
    add(groups, "remove", _groups_remove, "delete a group", False, "GROUP")
    add(groups, "members", _members, "list a group's users", True, "GROUP")
    add(groups, "member-add", _member_set(True), "add USER to GROUP", False, "GROUP", "USER")
    add(
        groups,
        "member-remove",
        _member_set(False),
        "remove USER from GROUP",
        False,
        "GROUP",
        "USER",
    )
