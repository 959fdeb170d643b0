"""Team API (spec §9): the users and groups of an admin account's team.

``GET accounts/{id}/team/users[/{user_id}[/memberships]]`` and
``GET accounts/{id}/team/groups[/{group_id}[/members]]`` list the team with paging. A
non-admin account has an empty team: its lists are empty (200) and any user or group id is a
404, since Kloudless client code lists the team before it checks ``admin``.

With the API key the team is managed too: ``POST team/users`` (``account_id``, ``name``,
``email``, ``role``), ``DELETE team/users/{id}``, ``POST team/groups`` (``name``, ``role``),
``DELETE team/groups/{id}``, ``PUT``/``DELETE team/groups/{id}/members/{user_id}``.
The team routes never impersonate: ``X-Kloudless-As-User`` is ignored here.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable

from werkzeug.wrappers import Response

from .. import team
from ..context import RequestContext
from ..errors import forbidden
from ..responses import json_response, no_content
from ..routing import Route

T = "/accounts/<account_id>/team"


def serialize_user(ctx: RequestContext, row: sqlite3.Row) -> dict[str, Any]:
    """:returns: the team user JSON (``id`` is what ``X-Kloudless-As-User`` takes)."""
    return _shaped(ctx, row, "user", team.user_fields(row))


def serialize_group(ctx: RequestContext, row: sqlite3.Row) -> dict[str, Any]:
    """:returns: the team group JSON."""
    return _shaped(ctx, row, "group", team.group_fields(row))


def _shaped(ctx: RequestContext, row: sqlite3.Row, kind: str, fields: dict[str, Any]) -> Any:
    admin = int(row["admin_account_id"])
    return {
        **fields,
        "created": row["created"],
        "modified": row["modified"],
        "api": "team",
        "type": kind,
        "href": ctx.href(f"accounts/{admin}/team/{kind}s/{int(row['id'])}"),
    }


def _admin(ctx: RequestContext, account_id: str) -> sqlite3.Row:
    return ctx.account(account_id, impersonate=False)


def _manager(ctx: RequestContext, account_id: str) -> sqlite3.Row:
    """The admin account, for a request that changes its team (API key only)."""
    account = _admin(ctx, account_id)
    if ctx.require_auth().kind != "apikey":
        raise forbidden("Changing a team needs the application's API key.")
    return account


Shape = Callable[[RequestContext, sqlite3.Row], dict[str, Any]]


def _read(fetch: Callable[..., Any], shape: Shape, many: bool) -> Callable[..., Response]:
    """A read handler: ``fetch(store, admin id, *url ids)`` shaped as one object or a list."""

    def handler(ctx: RequestContext, account_id: str, **ids: str) -> Response:
        admin_id = int(_admin(ctx, account_id)["id"])
        found = fetch(ctx.store, admin_id, *ids.values())
        if many:
            return json_response(ctx.object_list([shape(ctx, r) for r in found], "team"))
        return json_response(shape(ctx, found))

    return handler


def create_user(ctx: RequestContext, account_id: str) -> Response:
    admin = _manager(ctx, account_id)
    body = ctx.json_body()
    row = team.add_user(
        ctx.store,
        admin,
        body.get("account_id"),
        body.get("name"),
        body.get("email"),
        body.get("role"),
    )
    return json_response(serialize_user(ctx, row), 201)


def delete_user(ctx: RequestContext, account_id: str, user_id: str) -> Response:
    admin = _manager(ctx, account_id)
    team.remove_user(ctx.store, int(admin["id"]), user_id)
    return no_content()


def create_group(ctx: RequestContext, account_id: str) -> Response:
    admin = _manager(ctx, account_id)
    body = ctx.json_body()
    row = team.add_group(ctx.store, admin, body.get("name"), body.get("role"))
    return json_response(serialize_group(ctx, row), 201)


def delete_group(ctx: RequestContext, account_id: str, group_id: str) -> Response:
    admin = _manager(ctx, account_id)
    team.remove_group(ctx.store, int(admin["id"]), group_id)
    return no_content()


def put_member(ctx: RequestContext, account_id: str, group_id: str, user_id: str) -> Response:
    admin = _manager(ctx, account_id)
    team.set_member(ctx.store, int(admin["id"]), group_id, user_id, member=True)
    return no_content()


def delete_member(ctx: RequestContext, account_id: str, group_id: str, user_id: str) -> Response:
    admin = _manager(ctx, account_id)
    team.set_member(ctx.store, int(admin["id"]), group_id, user_id, member=False)
    return no_content()


ROUTES = [
    Route(T + "/users", ("GET",), _read(team.list_users, serialize_user, True)),
    Route(T + "/users", ("POST",), create_user),
    Route(T + "/users/<user_id>", ("GET",), _read(team.get_user, serialize_user, False)),
    Route(T + "/users/<user_id>", ("DELETE",), delete_user),
    Route(
        T + "/users/<user_id>/memberships",
        ("GET",),
        _read(team.user_groups, serialize_group, True),
    ),
    Route(T + "/groups", ("GET",), _read(team.list_groups, serialize_group, True)),
    Route(T + "/groups", ("POST",), create_group),
    Route(T + "/groups/<group_id>", ("GET",), _read(team.get_group, serialize_group, False)),
    Route(T + "/groups/<group_id>", ("DELETE",), delete_group),
    Route(
        T + "/groups/<group_id>/members",
        ("GET",),
        _read(team.group_members, serialize_user, True),
    ),
    Route(T + "/groups/<group_id>/members/<user_id>", ("PUT",), put_member),
    Route(T + "/groups/<group_id>/members/<user_id>", ("DELETE",), delete_member),
]
