"""Descriptions of the team routes (an admin account's users and groups)."""

from __future__ import annotations

from dataclasses import replace

from .model import Op, Reply, Schema, json, listing, obj

__all__ = ["OPERATIONS"]

T = "/accounts/<account_id>/team"
STRING: Schema = {"type": "string"}
DELETED = Reply("Removed.")
ADMIN = {"account_id": "$ADMIN_ID"}

OPERATIONS: dict[str, Op] = {
    f"GET {T}/users": Op(
        "List the team's users",
        {200: Reply.of("The users.", listing("TeamUser"))},
        paged=True,
        example=ADMIN,
    ),
    f"POST {T}/users": Op(
        "Add a user to the team (API key)",
        {201: Reply.of("The user.", "TeamUser")},
        body=json(
            obj(account_id={"type": ["integer", "string"]}, name=STRING, email=STRING, role=STRING),
            "The user: an account of the application, or a name and e-mail address.",
            example={"account_id": "$MEMBER_ID", "name": "Ann", "email": "ann@example.com"},
        ),
        errors=(409,),
        example=ADMIN,
    ),
    f"GET {T}/users/<user_id>": Op(
        "Get a team user",
        {200: Reply.of("The user.", "TeamUser")},
        example={**ADMIN, "user_id": "$USER_ID"},
    ),
    f"DELETE {T}/users/<user_id>": Op(
        "Remove a user from the team (API key)",
        {204: DELETED},
        example={**ADMIN, "user_id": "$USER_ID"},
    ),
    f"GET {T}/users/<user_id>/memberships": Op(
        "The groups a user belongs to",
        {200: Reply.of("The groups.", listing("TeamGroup"))},
        paged=True,
        example={**ADMIN, "user_id": "$USER_ID"},
    ),
    f"GET {T}/groups": Op(
        "List the team's groups",
        {200: Reply.of("The groups.", listing("TeamGroup"))},
        paged=True,
        example=ADMIN,
    ),
    f"POST {T}/groups": Op(
        "Create a group (API key)",
        {201: Reply.of("The group.", "TeamGroup")},
        body=json(obj(("name",), name=STRING, role=STRING), example={"name": "Sales"}),
        errors=(409,),
        example=ADMIN,
    ),
    f"GET {T}/groups/<group_id>": Op(
        "Get a group",
        {200: Reply.of("The group.", "TeamGroup")},
        example={**ADMIN, "group_id": "$GROUP_ID"},
    ),
    f"DELETE {T}/groups/<group_id>": Op(
        "Delete a group (API key)", {204: DELETED}, example={**ADMIN, "group_id": "$GROUP_ID"}
    ),
    f"GET {T}/groups/<group_id>/members": Op(
        "A group's members",
        {200: Reply.of("The users.", listing("TeamUser"))},
        paged=True,
        example={**ADMIN, "group_id": "$GROUP_ID"},
    ),
    f"PUT {T}/groups/<group_id>/members/<user_id>": Op(
        "Add a user to a group (API key)",
        {204: Reply("Added.")},
        example={**ADMIN, "group_id": "$GROUP_ID", "user_id": "$USER_ID"},
    ),
    f"DELETE {T}/groups/<group_id>/members/<user_id>": Op(
        "Remove a user from a group (API key)",
        {204: DELETED},
        example={**ADMIN, "group_id": "$GROUP_ID", "user_id": "$USER_ID"},
    ),
}

#: The examples send the API key: changing a team needs it, and reading works with it too.
OPERATIONS = {key: replace(op, credential="APIKey") for key, op in OPERATIONS.items()}
