"""Per-account storage quotas of ``local`` accounts.

An account's quota is its row in ``account_quotas`` (``kloudless accounts quota``), else the
server's default (``Settings.account_quota_bytes``, ``kloudless serve --account-quota``); no
quota at all means unlimited. ``GET .../storage/quota`` reports it as ``total``. A write that
would take the account's files past it answers ``507 insufficient_storage``: checked on the
headers when the size is known (before the body is read), and again inside the write's
transaction.
"""

from __future__ import annotations

from .errors import ApiError
from .settings import Settings
from .store import Store, register_migration

#: The quota table (hostile/quota migrations: 1000-1099). ``bytes`` NULL: unlimited, whatever
#: the server default.
register_migration(
    1000,
    """
    CREATE TABLE account_quotas (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        bytes INTEGER)
    """,
)


def limit_for(store: Store, settings: Settings, account_id: int) -> int | None:
    """:returns: the account's quota in bytes, or None when unlimited."""
    row = store.one("SELECT bytes FROM account_quotas WHERE account_id = ?", (int(account_id),))
    if row is not None:
        return None if row["bytes"] is None else int(row["bytes"])
    return settings.account_quota_bytes


def set_limit(store: Store, account_id: int, limit: int | None, *, default: bool = False) -> None:
    """Set an account's quota: ``limit`` bytes, or unlimited (None); ``default=True`` drops the
    account's own quota so that the server default applies again."""
    if default:
        store.execute("DELETE FROM account_quotas WHERE account_id = ?", (int(account_id),))
        return
    store.execute(
        "INSERT INTO account_quotas (account_id, bytes) VALUES (?, ?)"
        " ON CONFLICT(account_id) DO UPDATE SET bytes = excluded.bytes",
        (int(account_id), None if limit is None else int(limit)),
    )


def used_bytes(store: Store, account_id: int) -> int:
    """:returns: the bytes the account's files take."""
    row = store.one(
        "SELECT COALESCE(SUM(size), 0) AS used FROM objects"
        " WHERE account_id = ? AND kind = 'file' AND trashed = 0",
        (int(account_id),),
    )
    return int(row["used"]) if row else 0


def check(store: Store, limit: int | None, account_id: int, adding: int) -> None:
    """Refuse a write that adds ``adding`` bytes to an account whose quota is ``limit``.

    :raises ApiError: 507 ``insufficient_storage``.
    """
    if limit is None or adding <= 0:
        return
    used = used_bytes(store, account_id)
    if used + adding > limit:
        raise ApiError(
            507,
            "insufficient_storage",
            f"Not enough free space in the account: {adding} bytes do not fit"
            f" ({used} of {limit} used).",
        )
