"""The Bearer-token cache (:mod:`kloudless.server.credential_cache`): a remembered lookup counts
only until the credentials change, whoever changes them (this thread, another thread, another
process), and never on PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from typing import Any

import pytest
from werkzeug.test import Client

from kloudless.server import credential_cache
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials
from kloudless.server.credential_cache import ChangeSignal, TokenCache
from kloudless.server.store import Store, hash_secret

SQLITE_ONLY = pytest.mark.only_config("sqlite-files", reason="the cache is SQLite's only")


def _me(client: Client, auth: dict[str, str]) -> int:
    return client.get("/v1/accounts/me", headers=auth).status_code


def _triggers(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}


def _cached(store: Store, token: str) -> bool:
    assert store.token_cache is not None
    return store.token_cache.get(hash_secret(token)) is not None


@SQLITE_ONLY
def test_a_lookup_is_remembered_and_gives_the_same_row(app: ServerApp, creds: Credentials) -> None:
    store = app.store
    first = store.lookup_token_account(creds.token)
    assert first is not None and _cached(store, creds.token)
    again = store.lookup_token_account(creds.token)
    assert again is first  # from the cache
    assert store.lookup_token_account("tok_" + "x" * 40) is None
    assert not _cached(store, "tok_" + "x" * 40)  # unknown tokens are never remembered


@SQLITE_ONLY
def test_a_token_revoked_by_another_thread_is_refused_at_once(
    app: ServerApp, client: Client, creds: Credentials, auth: dict[str, str]
) -> None:
    assert _me(client, auth) == 200 and _cached(app.store, creds.token)
    revoked: list[bool] = []
    thread = threading.Thread(target=lambda: revoked.append(app.store.revoke_token(creds.token)))
    thread.start()
    thread.join(30)
    assert revoked == [True]
    assert _me(client, auth) == 401


@SQLITE_ONLY
def test_a_token_revoked_by_another_process_is_refused_at_once(
    app: ServerApp, client: Client, creds: Credentials, auth: dict[str, str]
) -> None:
    assert _me(client, auth) == 200 and _cached(app.store, creds.token)
    script = (
        "import sys; from kloudless.server.store import Store; "
        "print(Store(sys.argv[1]).revoke_token(sys.stdin.readline().strip()))"
    )
    # The token on stdin: secrets never go into process arguments.
    done = subprocess.run(
        [sys.executable, "-c", script, app.settings.db_path],
        input=creds.token + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "True"
    assert _me(client, auth) == 401


@SQLITE_ONLY
def test_deleting_the_account_or_the_app_refuses_the_cached_token(
    app: ServerApp, client: Client, creds: Credentials, auth: dict[str, str]
) -> None:
    other = app.store.create_token(creds.app_id, None)  # an application-level token
    other_auth = {"Authorization": f"Bearer {other}"}
    assert client.get("/v1/accounts", headers=other_auth).status_code == 200
    assert _me(client, auth) == 200
    deleted = client.delete(f"/v1/accounts/{creds.account_id}", headers=auth)
    assert deleted.status_code in (200, 204), deleted.get_data(as_text=True)
    assert _me(client, auth) == 401  # its token went with it (a cascade: the trigger fired)
    # Any change makes every remembered row not count: the other token is looked up again.
    assert not _cached(app.store, other)
    assert client.get("/v1/accounts", headers=other_auth).status_code == 200
    assert _cached(app.store, other)
    app.store.execute("DELETE FROM apps WHERE id = ?", (creds.app_id,))
    assert client.get("/v1/accounts", headers=other_auth).status_code == 401


@SQLITE_ONLY
def test_an_account_change_is_seen_by_the_next_lookup(app: ServerApp, creds: Credentials) -> None:
    store = app.store
    assert store.lookup_token_account(creds.token)["account"] != "renamed"  # type: ignore[index]
    store.execute("UPDATE accounts SET account = 'renamed' WHERE id = ?", (creds.account_id,))
    row = store.lookup_token_account(creds.token)
    assert row is not None and row["account"] == "renamed"


@SQLITE_ONLY
def test_the_signal_changes_before_the_commit_and_after_it(
    app: ServerApp, creds: Credentials
) -> None:
    store = app.store
    cache = store.token_cache
    assert cache is not None
    key = hash_secret(creds.token)
    row = store.lookup_token_account(creds.token)
    with store.transaction():
        store.execute("UPDATE tokens SET scope = scope WHERE token_hash = ?", (key,))
        # The trigger has fired: what was remembered before no longer counts...
        assert cache.get(key) is None
        # ...and a row read now (another connection still sees the old data) is remembered
        # under the changed signal, until the commit changes it again.
        cache.put(key, cache.signal.read(), row)
        assert cache.get(key) is row
    assert cache.get(key) is None


@SQLITE_ONLY
def test_a_lookup_inside_a_transaction_is_not_remembered(
    app: ServerApp, creds: Credentials
) -> None:
    with app.store.transaction():
        assert app.store.lookup_token_account(creds.token) is not None
        assert not _cached(app.store, creds.token)


@SQLITE_ONLY
def test_a_connection_without_the_function_cannot_change_credentials(
    app: ServerApp, creds: Credentials
) -> None:
    conn = sqlite3.connect(app.settings.db_path, timeout=30)
    try:
        assert {"credentials_tokens_delete", "credentials_accounts_update"} <= _triggers(conn)
        with pytest.raises(sqlite3.OperationalError, match=credential_cache.CHANGED_FUNCTION):
            conn.execute("DELETE FROM tokens")
        conn.rollback()
    finally:
        conn.close()
    assert app.store.lookup_token_account(creds.token) is not None  # still there


def test_a_remembered_row_counts_for_max_age_at_most(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr(credential_cache.time, "monotonic", lambda: clock[0])
    signal = ChangeSignal(str(tmp_path / "signal"))
    cache = TokenCache(signal, max_age=10.0)
    cache.put("k", signal.read(), "row")
    clock[0] += 10.0
    assert cache.get("k") == "row"
    clock[0] += 0.5
    assert cache.get("k") is None


def test_the_cache_is_bounded(tmp_path: Any) -> None:
    signal = ChangeSignal(str(tmp_path / "signal"))
    cache = TokenCache(signal, max_entries=4)
    for number in range(5):
        cache.put(f"k{number}", signal.read(), number)
    assert [cache.get(f"k{n}") for n in range(5)] == [None, None, 2, 3, 4]


def test_two_mappings_of_one_signal_see_each_other(tmp_path: Any) -> None:
    path = str(tmp_path / "signal")
    one, two = ChangeSignal(path), ChangeSignal(path)
    seen = two.read()
    one.change()
    assert two.read() != seen and two.read() == one.read()
    seen = two.read()
    one.settle()  # the second change of a write
    assert two.read() != seen
    seen = two.read()
    one.settle()  # nothing pending: no change
    assert two.read() == seen


def test_postgresql_has_no_cache(app: ServerApp, creds: Credentials, server_config: Any) -> None:
    store = app.store
    if server_config.database == "postgresql":
        assert store.token_cache is None
    else:
        assert store.token_cache is not None
    assert store.lookup_token_account(creds.token) is not None


@SQLITE_ONLY
def test_without_a_signal_nothing_is_remembered_and_credentials_cannot_change(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(self: ChangeSignal, path: str, mode: int = 0o600) -> None:
        raise PermissionError("permission denied")

    settings = make_settings()
    store = Store(settings.db_path)  # migrated, with the triggers
    token = store.create_token(store.create_app()[0], None)
    store.close()
    monkeypatch.setattr(ChangeSignal, "__init__", refuse)
    plain = Store(settings.db_path)
    try:
        assert plain.token_cache is None
        assert "credentials cannot change in this process" in caplog.text
        assert plain.lookup_token_account(token) is not None
        # Other processes could not be told: the change fails instead of hiding from them.
        with pytest.raises(sqlite3.OperationalError):
            plain.revoke_token(token)
        assert plain.lookup_token_account(token) is not None
        assert plain.create_app()[0]  # other tables are written as ever
    finally:
        plain.close()


@SQLITE_ONLY
def test_dropped_triggers_come_back_when_the_store_is_opened(
    app: ServerApp, creds: Credentials
) -> None:
    conn = sqlite3.connect(app.settings.db_path, timeout=30)
    try:
        for name in _triggers(conn):
            if name.startswith("credentials_"):
                conn.execute(f"DROP TRIGGER {name}")
        conn.commit()
    finally:
        conn.close()
    again = Store(app.settings.db_path)
    try:
        names = {
            row[0] for row in again.all("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
        assert {f"credentials_{t}_{o}" for t in ("tokens", "accounts")
                for o in ("insert", "update", "delete")} <= names  # fmt: skip
    finally:
        again.close()


@SQLITE_ONLY
def test_a_replaced_token_row_is_a_change(app: ServerApp, creds: Credentials) -> None:
    store = app.store
    key = hash_secret(creds.token)
    assert store.lookup_token_account(creds.token)["auth_scope"] == "all"  # type: ignore[index]
    # REPLACE deletes the old row without a delete trigger: the insert trigger tells.
    store.execute(
        "INSERT OR REPLACE INTO tokens (token_hash, app_id, account_id, scope, created)"
        " VALUES (?, ?, ?, 'storage', 'now')",
        (key, creds.app_id, creds.account_id),
    )
    assert store.lookup_token_account(creds.token)["auth_scope"] == "storage"  # type: ignore[index]


@SQLITE_ONLY
def test_a_database_opened_through_a_symlink_shares_the_signal(
    app: ServerApp, client: Client, creds: Credentials, auth: dict[str, str], tmp_path: Any
) -> None:
    link = tmp_path / "linked.sqlite3"
    link.symlink_to(app.settings.db_path)
    assert _me(client, auth) == 200 and _cached(app.store, creds.token)
    other = Store(str(link))
    try:
        assert other.revoke_token(creds.token)
    finally:
        other.close()
    assert _me(client, auth) == 401
    assert not (tmp_path / "linked.sqlite3-credentials").exists()


@SQLITE_ONLY
def test_a_commit_past_the_store_is_settled_by_the_end_of_the_request(
    app: ServerApp, client: Client, creds: Credentials, auth: dict[str, str]
) -> None:
    store = app.store
    cache = store.token_cache
    assert cache is not None
    key = hash_secret(creds.token)
    conn = store.conn
    conn.execute("BEGIN")
    conn.execute("UPDATE tokens SET scope = scope WHERE token_hash = ?", (key,))
    row = store.lookup_token_account(creds.token)  # inside the transaction: not kept
    conn.execute("COMMIT")  # on the connection directly: the store did not see it
    cache.put(key, cache.signal.read(), row)  # as if read by another thread meanwhile
    assert cache.get(key) is row
    assert _me(client, auth) == 200  # this thread's request settles before it answers
    assert cache.get(key) is not row
