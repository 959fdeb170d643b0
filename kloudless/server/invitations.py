"""Invitation codes: how a visitor of the consent page proves they may connect an existing
account.

By default (``Settings.oauth_existing_accounts = "invited"``) the consent page never lists the
application's accounts: whoever can open it could otherwise pick one and receive a token for
it. The operator instead issues a one-time code for one account
(``kloudless accounts invite ACCOUNT``) and hands it to the account's owner, who enters it on
the consent page. A code:

* is random (``inv_`` + 128 bits), stored only as its hash, shown once;
* belongs to one account of one application and works for that application's consent page
  only;
* expires (24 hours unless the operator says otherwise) and is spent by the grant it allowed:
  a second use, or a use after the account was deleted, fails like an unknown code.

The table is ``consent_invitations`` (migration 850).
"""

from __future__ import annotations

import secrets
import sqlite3
import time

from .store import Store, hash_secret, now_iso, register_migration

#: Lifetime of an invitation code unless the operator gives another, seconds.
DEFAULT_TTL = 24 * 60 * 60
PREFIX = "inv_"

register_migration(
    850,
    """
    CREATE TABLE consent_invitations (
        code_hash TEXT PRIMARY KEY,
        app_id TEXT NOT NULL,
        account_id INTEGER NOT NULL,
        created TEXT NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX consent_invitations_account ON consent_invitations (account_id);
    """,
)


def create(store: Store, account_id: int, ttl: int = DEFAULT_TTL) -> str:
    """Issue a one-time invitation code for an existing account.

    :raises LookupError: no such account.
    :returns: the code (shown once; only its hash is stored).
    """
    row = store.get_account(account_id)
    if row is None:
        raise LookupError(f"no account {account_id}")
    code = PREFIX + secrets.token_urlsafe(16)
    with store.transaction():
        store.execute("DELETE FROM consent_invitations WHERE expires < ?", (time.time(),))
        store.execute(
            "INSERT INTO consent_invitations VALUES (?, ?, ?, ?, ?)",
            (hash_secret(code), row["app_id"], account_id, now_iso(), time.time() + ttl),
        )
    return code


def lookup(store: Store, app_id: str, code: str) -> sqlite3.Row | None:
    """:returns: the active account a valid, unspent code of ``app_id`` invites to, or None."""
    code = code.strip()
    if not code.startswith(PREFIX) or len(code) > 100:
        return None
    row = store.one(
        "SELECT account_id FROM consent_invitations"
        " WHERE code_hash = ? AND app_id = ? AND expires >= ?",
        (hash_secret(code), app_id, time.time()),
    )
    if row is None:
        return None
    account = store.get_account(int(row["account_id"]))
    if account is None or account["app_id"] != app_id or not account["active"]:
        return None
    return account


def spend(store: Store, code: str) -> bool:
    """Spend a code (inside the transaction of the grant it allows).

    :returns: True when this call spent it; False when it was gone already (used by a
        parallel request or expired meanwhile).
    """
    cursor = store.execute(
        "DELETE FROM consent_invitations WHERE code_hash = ? AND expires >= ?",
        (hash_secret(code.strip()), time.time()),
    )
    return cursor.rowcount == 1
