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
from typing import Any

from werkzeug.wrappers import Response

from .. import team
from ..context import RequestContext
from ..errors import forbidden
from ..responses import json_response, no_content
from ..routing import Route

T = "/accounts/<account_id>/team"


def serialize_user(ctx: RequestContext, row: sqlite3.Row) -> dict[str, Any]:
    """:returns: the team user JSON (``id`` is what ``X-Kloudless-As-User`` takes)."""
    admin = int(row["admin_account_id"])
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "email": row["email"],
        "role": row["role"],
        "account": int(row["account_id"]),
        "created": row["created"],
        "modified": row["modified"],
        "api": "team",
        "type": "user",
        "href": ctx.href(f"accounts/{admin}/team/users/{int(row['id'])}"),
    }


def serialize_group(ctx: RequestContext, row: sqlite3.Row) -> dict[str, Any]:
    """:returns: the team group JSON."""
    admin = int(row["admin_account_id"])
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "role": row["role"],
        "created": row["created"],
        "modified": row["modified"],
        "api": "team",
        "type": "group",
        "href": ctx.href(f"accounts/{admin}/team/groups/{int(row['id'])}"),
    }


def _admin(ctx: RequestContext, account_id: str) -> sqlite3.Row:
    return ctx.account(account_id, impersonate=False)


def _manager(ctx: RequestContext, account_id: str) -> sqlite3.Row:
    """The admin account, for a request that changes its team (API key only)."""
    account = _admin(ctx, account_id)
    if ctx.require_auth().kind != "apikey":
        raise forbidden("Changing a team needs the application's API key.")
    return account


def list_users(ctx: RequestContext, account_id: str) -> Response:
    admin = _admin(ctx, account_id)
    rows = team.list_users(ctx.store, int(admin["id"]))
    return json_response(ctx.object_list([serialize_user(ctx, r) for r in rows], "team"))


def get_user(ctx: RequestContext, account_id: str, user_id: str) -> Response:
    admin = _admin(ctx, account_id)
    return json_response(serialize_user(ctx, team.get_user(ctx.store, int(admin["id"]), user_id)))


def user_memberships(ctx: RequestContext, account_id: str, user_id: str) -> Response:
    admin = _admin(ctx, account_id)
    rows = team.user_groups(ctx.store, int(admin["id"]), user_id)
    return json_response(ctx.object_list([serialize_group(ctx, r) for r in rows], "team"))


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


def list_groups(ctx: RequestContext, account_id: str) -> Response:
    admin = _admin(ctx, account_id)
    rows = team.list_groups(ctx.store, int(admin["id"]))
    return json_response(ctx.object_list([serialize_group(ctx, r) for r in rows], "team"))


def get_group(ctx: RequestContext, account_id: str, group_id: str) -> Response:
    admin = _admin(ctx, account_id)
    row = team.get_group(ctx.store, int(admin["id"]), group_id)
    return json_response(serialize_group(ctx, row))


def group_members(ctx: RequestContext, account_id: str, group_id: str) -> Response:
    admin = _admin(ctx, account_id)
    rows = team.group_members(ctx.store, int(admin["id"]), group_id)
    return json_response(ctx.object_list([serialize_user(ctx, r) for r in rows], "team"))


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
    Route(T + "/users", ("GET",), list_users),
    Route(T + "/users", ("POST",), create_user),
    Route(T + "/users/<user_id>", ("GET",), get_user),
    Route(T + "/users/<user_id>", ("DELETE",), delete_user),
    Route(T + "/users/<user_id>/memberships", ("GET",), user_memberships),
    Route(T + "/groups", ("GET",), list_groups),
    Route(T + "/groups", ("POST",), create_group),
    Route(T + "/groups/<group_id>", ("GET",), get_group),
    Route(T + "/groups/<group_id>", ("DELETE",), delete_group),
    Route(T + "/groups/<group_id>/members", ("GET",), group_members),
    Route(T + "/groups/<group_id>/members/<user_id>", ("PUT",), put_member),
    Route(T + "/groups/<group_id>/members/<user_id>", ("DELETE",), delete_member),
]
