"""Admin accounts and their teams (the Kloudless Team API and ``X-Kloudless-As-User``).

An application may have **admin accounts** (``admin`` is true on the account, set when it is
created). An admin account's **team** is a set of users and groups the server keeps:

* a team user is backed by one account of the same application (the account the admin acts on
  when it impersonates the user), with a ``name``, an ``email`` and a ``role``;
* a group has a ``name`` and a ``role`` and holds some of the team's users.

Team users and groups are managed with ``kloudless team ...`` and with the API key
(``POST .../team/users`` and so on, see :mod:`kloudless.server.api.team`). A request of the
admin account that carries ``X-Kloudless-As-User: <user id>`` acts on that user's account;
its activity events record the user and the admin account (the ``actor`` column).

Tables (migrations 602-603): ``team_users``, ``team_groups``, ``team_members``; the rows go
with the admin account or the backing account (``ON DELETE CASCADE``). Migration 604 (in
``store.py``) adds ``activity.actor``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .errors import ApiError, forbidden, invalid_parameters, not_found
from .store import Store, now_iso, register_migration

register_migration(
    602,
    """
    CREATE TABLE team_users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        admin_account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL, email TEXT NOT NULL DEFAULT '', role TEXT NOT NULL DEFAULT 'user',
        created TEXT NOT NULL, modified TEXT NOT NULL,
        UNIQUE (admin_account_id, account_id));
    CREATE INDEX team_users_admin ON team_users(admin_account_id, id)
    """,
)
register_migration(
    603,
    """
    CREATE TABLE team_groups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        admin_account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL, role TEXT NOT NULL DEFAULT 'member',
        created TEXT NOT NULL, modified TEXT NOT NULL);
    CREATE INDEX team_groups_admin ON team_groups(admin_account_id, id);
    CREATE TABLE team_members (
        group_id INTEGER NOT NULL REFERENCES team_groups(id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES team_users(id) ON DELETE CASCADE,
        PRIMARY KEY (group_id, user_id));
    CREATE INDEX team_members_user ON team_members(user_id)
    """,
)

#: Longest name, email or role (characters).
MAX_FIELD = 255


def _text(value: Any, name: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_FIELD:
        raise invalid_parameters(f"'{name}' must be a non-empty string of at most {MAX_FIELD}.")
    return value.strip()


def _ref(value: Any) -> int | None:
    """:returns: a user or group id as an integer, or None when it cannot be one (unknown)."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def user_fields(row: sqlite3.Row) -> dict[str, Any]:
    """:returns: a team user's fields as the API and the command line show them."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "email": row["email"],
        "role": row["role"],
        "account": int(row["account_id"]),
    }


def group_fields(row: sqlite3.Row) -> dict[str, Any]:
    """:returns: a team group's fields as the API and the command line show them."""
    return {"id": str(row["id"]), "name": row["name"], "role": row["role"]}


def _one(store: Store, table: str, what: str, admin_id: int, ref: Any) -> sqlite3.Row:
    number = _ref(ref)
    sql = f"SELECT * FROM {table} WHERE admin_account_id = ? AND id = ?"
    row = store.one(sql, (admin_id, number)) if number is not None else None
    if row is None:
        raise not_found(f"{what.capitalize()} not found: {str(ref)[:100]}")
    return row


def is_admin(account: sqlite3.Row) -> bool:
    """:returns: whether the account is an admin account."""
    return bool(account["admin"])


# -- users ---------------------------------------------------------------------------------------
def add_user(
    store: Store,
    admin: sqlite3.Row,
    account_id: Any,
    name: Any = None,
    email: Any = None,
    role: Any = None,
) -> sqlite3.Row:
    """Add a user backed by ``account_id`` to the team of the admin account ``admin``.

    :returns: the new ``team_users`` row.
    :raises ApiError: 400 when ``admin`` is not an admin account, the backing account is not
        one of the application's (or is the admin itself), a field is malformed; 409 when
        the account already backs a user of this team.
    """
    if not is_admin(admin):
        raise invalid_parameters(f"Account {int(admin['id'])} is not an admin account.")
    if isinstance(account_id, bool) or not isinstance(account_id, (int, str)):
        raise invalid_parameters("'account_id' must be the id of one of the app's accounts.")
    ref = _ref(account_id)
    backing = store.get_account(ref) if ref is not None else None
    if backing is None or backing["app_id"] != admin["app_id"]:
        raise invalid_parameters(f"No account {str(account_id)[:40]!r} in this application.")
    if int(backing["id"]) == int(admin["id"]):
        raise invalid_parameters("An admin account cannot be a user of its own team.")
    label = _text(name, "name", str(backing["account"]))
    mail = "" if email is None else _text(email, "email")
    kind = _text(role, "role", "user")
    now = now_iso()
    try:
        cur = store.execute(
            "INSERT INTO team_users (admin_account_id, account_id, name, email, role, created,"
            " modified) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (int(admin["id"]), int(backing["id"]), label, mail, kind, now, now),
        )
    except sqlite3.IntegrityError:
        raise ApiError(
            409, "conflict", f"Account {int(backing['id'])} already backs a user of this team."
        ) from None
    row = store.one("SELECT * FROM team_users WHERE id = ?", (cur.lastrowid,))
    assert row is not None
    return row


def list_users(store: Store, admin_id: int) -> list[sqlite3.Row]:
    """:returns: the team's users, by id (none for a non-admin account)."""
    return store.all("SELECT * FROM team_users WHERE admin_account_id = ? ORDER BY id", (admin_id,))


def get_user(store: Store, admin_id: int, user_id: Any) -> sqlite3.Row:
    """:returns: one user of the team. :raises ApiError: 404 when it is not the team's."""
    return _one(store, "team_users", "user", admin_id, user_id)


def remove_user(store: Store, admin_id: int, user_id: Any) -> None:
    """Remove a user from the team (and its groups). :raises ApiError: 404 if not the team's."""
    row = get_user(store, admin_id, user_id)
    store.execute("DELETE FROM team_users WHERE id = ?", (row["id"],))


def user_groups(store: Store, admin_id: int, user_id: Any) -> list[sqlite3.Row]:
    """:returns: the groups a team user belongs to. :raises ApiError: 404 if not the team's."""
    user = get_user(store, admin_id, user_id)
    return store.all(
        "SELECT g.* FROM team_groups g JOIN team_members m ON m.group_id = g.id"
        " WHERE m.user_id = ? ORDER BY g.id",
        (user["id"],),
    )


# -- groups --------------------------------------------------------------------------------------
def add_group(store: Store, admin: sqlite3.Row, name: Any, role: Any = None) -> sqlite3.Row:
    """:returns: a new group of the admin account's team. :raises ApiError: 400."""
    if not is_admin(admin):
        raise invalid_parameters(f"Account {int(admin['id'])} is not an admin account.")
    now = now_iso()
    cur = store.execute(
        "INSERT INTO team_groups (admin_account_id, name, role, created, modified)"
        " VALUES (?, ?, ?, ?, ?)",
        (int(admin["id"]), _text(name, "name"), _text(role, "role", "member"), now, now),
    )
    row = store.one("SELECT * FROM team_groups WHERE id = ?", (cur.lastrowid,))
    assert row is not None
    return row


def list_groups(store: Store, admin_id: int) -> list[sqlite3.Row]:
    """:returns: the team's groups, by id."""
    return store.all(
        "SELECT * FROM team_groups WHERE admin_account_id = ? ORDER BY id", (admin_id,)
    )


def get_group(store: Store, admin_id: int, group_id: Any) -> sqlite3.Row:
    """:returns: one group of the team. :raises ApiError: 404 when it is not the team's."""
    return _one(store, "team_groups", "group", admin_id, group_id)


def remove_group(store: Store, admin_id: int, group_id: Any) -> None:
    """Delete a group of the team. :raises ApiError: 404 when it is not the team's."""
    row = get_group(store, admin_id, group_id)
    store.execute("DELETE FROM team_groups WHERE id = ?", (row["id"],))


def group_members(store: Store, admin_id: int, group_id: Any) -> list[sqlite3.Row]:
    """:returns: the users of a group. :raises ApiError: 404 when it is not the team's."""
    group = get_group(store, admin_id, group_id)
    return store.all(
        "SELECT u.* FROM team_users u JOIN team_members m ON m.user_id = u.id"
        " WHERE m.group_id = ? ORDER BY u.id",
        (group["id"],),
    )


def set_member(store: Store, admin_id: int, group_id: Any, user_id: Any, member: bool) -> None:
    """Add (``member``) or remove a team user to or from a group of the same team.

    :raises ApiError: 404 when the group or the user is not the team's.
    """
    group = get_group(store, admin_id, group_id)
    user = get_user(store, admin_id, user_id)
    if member:
        store.execute("INSERT OR IGNORE INTO team_members VALUES (?, ?)", (group["id"], user["id"]))
    else:
        store.execute(
            "DELETE FROM team_members WHERE group_id = ? AND user_id = ?",
            (group["id"], user["id"]),
        )


# -- impersonation -------------------------------------------------------------------------------
def impersonate(
    store: Store, admin: sqlite3.Row, user_ref: str
) -> tuple[sqlite3.Row, dict[str, Any]]:
    """Resolve ``X-Kloudless-As-User: <user_ref>`` sent on a request of ``admin``.

    :returns: ``(the user's backing account row, actor)``; ``actor`` is what the activity
        events of the request record (``{"user_id", "admin_account"}``).
    :raises ApiError: 403 ``forbidden`` when ``admin`` is not an admin account or the user is
        not one of its team's.
    """
    if not is_admin(admin):
        raise forbidden(
            f"X-Kloudless-As-User needs an admin account; account {int(admin['id'])} is not one."
        )
    try:
        user = get_user(store, int(admin["id"]), user_ref)
    except ApiError:
        raise forbidden(
            f"User {user_ref[:100]!r} is not a member of admin account {int(admin['id'])}'s team."
        ) from None
    account = store.get_account(int(user["account_id"]))
    if account is None or account["app_id"] != admin["app_id"]:  # pragma: no cover - cascade
        raise forbidden("The user's account is gone.")
    return account, {"user_id": str(user["id"]), "admin_account": int(admin["id"])}
