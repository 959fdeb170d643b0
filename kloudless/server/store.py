"""SQLite state of the server: applications, credentials, accounts, storage metadata, activity
log, multipart sessions, OAuth codes, tasks and links.

* One connection per thread (``threading.local``), WAL journal, ``busy_timeout`` so concurrent
  writers wait instead of failing. Use :meth:`Store.transaction` for multi-statement writes.
* :meth:`Store.unit_of_work` makes every transaction opened inside it one database transaction,
  begun at the first of them and committed when the block ends: a write request's change, its
  activity events and its stored idempotent answer commit together or not at all.
* Schema migrations are numbered; :data:`MIGRATIONS` only ever grows. Other modules add their own
  tables through :func:`register_migration` (their number must not collide; calendar tables use
  100+, DAV connectors 200+, idempotency 300+).
* Secrets (API keys, tokens, OAuth codes) are stored as SHA-256 hex digests only; the clear value
  is returned once by the function that creates it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any, Callable, Union, cast

from . import credential_cache, pgsql

log = logging.getLogger("kloudless.server")

Migration = Union[str, Callable[[sqlite3.Connection], None]]

#: (version, SQL script or callable). Core tables.
MIGRATIONS: list[tuple[int, Migration]] = [
    (
        1,
        """
        CREATE TABLE apps (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL, modified TEXT NOT NULL, webhook_url TEXT,
            redirect_uris TEXT NOT NULL DEFAULT '[]');
        CREATE TABLE api_keys (
            key_hash TEXT PRIMARY KEY, app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
            created TEXT NOT NULL);
        CREATE TABLE accounts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
            service TEXT NOT NULL, account TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1,
            created TEXT NOT NULL, modified TEXT NOT NULL,
            custom_properties TEXT NOT NULL DEFAULT '{}', config TEXT NOT NULL DEFAULT '{}');
        CREATE TABLE tokens (
            token_hash TEXT PRIMARY KEY, app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
            account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
            scope TEXT NOT NULL DEFAULT 'all', created TEXT NOT NULL);
        CREATE TABLE oauth_codes (
            code_hash TEXT PRIMARY KEY, app_id TEXT NOT NULL, account_id INTEGER NOT NULL,
            redirect_uri TEXT NOT NULL, scope TEXT NOT NULL, expires REAL NOT NULL,
            used INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE activity (
            id INTEGER PRIMARY KEY AUTOINCREMENT, account_id INTEGER NOT NULL,
            type TEXT NOT NULL, object_id TEXT, modified TEXT NOT NULL, ip TEXT,
            metadata TEXT NOT NULL);
        CREATE INDEX activity_account ON activity(account_id, id);
        CREATE TABLE objects (
            id TEXT PRIMARY KEY, account_id INTEGER NOT NULL, parent_id TEXT NOT NULL,
            name TEXT NOT NULL, kind TEXT NOT NULL, size INTEGER, mime_type TEXT,
            blob TEXT, etag TEXT, created TEXT NOT NULL, modified TEXT NOT NULL,
            trashed INTEGER NOT NULL DEFAULT 0);
        CREATE UNIQUE INDEX objects_name ON objects(account_id, parent_id, name)
            WHERE trashed = 0;
        CREATE INDEX objects_parent ON objects(account_id, parent_id);
        CREATE TABLE multipart (
            id TEXT PRIMARY KEY, account_id INTEGER NOT NULL, name TEXT NOT NULL,
            parent_id TEXT NOT NULL, size INTEGER NOT NULL, part_size INTEGER NOT NULL,
            overwrite INTEGER NOT NULL, created TEXT NOT NULL);
        CREATE TABLE multipart_parts (
            session_id TEXT NOT NULL REFERENCES multipart(id) ON DELETE CASCADE,
            part_number INTEGER NOT NULL, size INTEGER NOT NULL,
            PRIMARY KEY (session_id, part_number));
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY, account_id INTEGER NOT NULL, state TEXT NOT NULL,
            result TEXT, status_code INTEGER, created TEXT NOT NULL, modified TEXT NOT NULL);
        CREATE TABLE links (
            id TEXT PRIMARY KEY, account_id INTEGER NOT NULL, file_id TEXT NOT NULL,
            direct INTEGER NOT NULL, active INTEGER NOT NULL, expiration TEXT,
            password_hash TEXT, created TEXT NOT NULL, modified TEXT NOT NULL);
        CREATE INDEX links_account ON links(account_id);
        """,
    ),
    (
        # Multipart sessions: ``state`` ('open' | 'completing') lets exactly one ``complete``
        # claim a session; ``modified`` (last part received) lets the sweeper drop idle ones.
        2,
        """
        ALTER TABLE multipart ADD COLUMN state TEXT NOT NULL DEFAULT 'open';
        ALTER TABLE multipart ADD COLUMN modified TEXT
        """,
    ),
]


def register_migration(version: int, migration: Migration) -> None:
    """Add a schema migration (call at import time of the module that owns the tables).

    :param version: unique version number (see the module docstring for ranges).
    :param migration: SQL script, or a callable receiving the connection.
    :raises ValueError: if the version is already taken by another migration.
    """
    for existing, mig in MIGRATIONS:
        if existing == version:
            if mig is migration or mig == migration:
                return
            raise ValueError(f"migration version {version} already registered")
    MIGRATIONS.append((version, migration))
    MIGRATIONS.sort(key=lambda item: item[0])


# Who acted on an activity event when it was not the account itself (an admin account
# impersonating a team user; admin/team range 600-699).
register_migration(604, "ALTER TABLE activity ADD COLUMN actor TEXT")
#: The bytes of small ``local`` files, kept with their rows (migration 1401; see
#: :mod:`kloudless.server.connectors.local_storage`): ``blob`` is the file row's blob name.
register_migration(
    1401,
    """
    CREATE TABLE inline_blobs (
        account_id INTEGER NOT NULL, blob TEXT NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (account_id, blob))
    """,
)


#: The credential change signal's file, beside the SQLite database (its name + this).
SIGNAL_SUFFIX = "-credentials"
#: A Bearer token's row and its account's (see :meth:`Store.lookup_token_account`).
_TOKEN_ACCOUNT = (
    "SELECT a.*, t.app_id AS auth_app_id, t.account_id AS auth_account_id,"
    " t.scope AS auth_scope FROM tokens t LEFT JOIN accounts a ON a.id = t.account_id"
    " WHERE t.token_hash = ?"
)


#: The one format of stored timestamps (fixed width, so equal-format strings sort by time).
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now_iso() -> str:
    """:returns: the current UTC time as ISO-8601 in :data:`TIME_FORMAT`
    (``2024-01-02T03:04:05.000006Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime(TIME_FORMAT)


def hash_secret(value: str) -> str:
    """:returns: the SHA-256 hex digest under which a secret is stored."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_secret(nbytes: int = 32) -> str:
    """:returns: a fresh URL-safe random secret."""
    return secrets.token_urlsafe(nbytes)


def _create_private(path: str) -> None:
    """Create ``path``'s missing directories with mode ``0700`` and the file itself, if
    missing, with mode ``0600`` (modes set explicitly: the umask does not matter)."""
    directory = os.path.dirname(os.path.abspath(path))
    missing: list[str] = []
    parent = directory
    while parent and not os.path.exists(parent) and parent not in missing:
        missing.append(parent)
        parent = os.path.dirname(parent)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    for created in missing:
        os.chmod(created, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        if hasattr(os, "fchmod"):  # not on Windows
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def has_server_data(path: str, url: str | None = None) -> bool:
    """:returns: True if the database (the SQLite file ``path``, or the PostgreSQL database
    ``url``) holds a server's tables, without creating anything."""
    if not pgsql.is_postgres_url(url):
        return os.path.isfile(path)
    assert url is not None
    conn = pgsql.PgConnection(url, None)
    try:
        row = conn.execute("SELECT to_regclass('schema_versions') IS NOT NULL").fetchone()
        return bool(row and row[0])
    finally:
        conn.close()


def _apply_migrations(conn: sqlite3.Connection) -> None:
    """Apply, inside the caller's write transaction, every migration that ``schema_versions``
    does not record yet, recording each."""
    done = {int(r[0]) for r in conn.execute("SELECT version FROM schema_versions")}
    for version, migration in MIGRATIONS:
        if version in done:
            continue
        if callable(migration):
            migration(conn)
        else:
            for statement in migration.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("INSERT INTO schema_versions VALUES (?)", (version,))


class _Unit:
    """The state of one thread's :meth:`Store.unit_of_work`."""

    def __init__(self) -> None:
        self.begun = False  # its BEGIN IMMEDIATE was issued
        self.active = False  # inside one of its transaction() blocks
        self.on_rollback: list[Callable[[], None]] = []


class Store:
    """Thread-safe access to the server's database: SQLite (the default) or PostgreSQL.

    :param path: the SQLite database file. A missing directory is created private (``0700``)
        and a new database file ``0600`` whatever the umask: it holds hashed keys, sealed
        upstream passwords and webhook signing keys (SQLite gives its ``-wal``/``-shm`` files
        the same mode). With ``url`` it only names the store (its folder is the data dir).
    :param url: a ``postgresql://`` URL: use that database instead (see
        :mod:`kloudless.server.pgsql`; the ``postgres`` extra). Statements stay SQLite's.
    """

    def __init__(self, path: str, url: str | None = None) -> None:
        self.path = path
        #: ``"sqlite"`` or ``"postgresql"``.
        self.dialect = "postgresql" if pgsql.is_postgres_url(url) else "sqlite"
        self._url = url if self.dialect == "postgresql" else None
        self._schema = pgsql.Schema(url) if url and self._url else None
        if self._url is None:
            _create_private(path)
        self._local = threading.local()
        self._after_commit = threading.local()
        self._units = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        #: Bearer-token lookups remembered until the credentials change (SQLite only; see
        #: :mod:`~kloudless.server.credential_cache`).
        self._signal: credential_cache.ChangeSignal | None = None
        self.token_cache: credential_cache.TokenCache | None = None
        if self._url is None:
            try:
                # Beside the database file itself (a symlinked path shares the database, so
                # it must share the signal too), with its permissions.
                real = os.path.realpath(path)
                mode = os.stat(real).st_mode & 0o666
                self._signal = credential_cache.ChangeSignal(real + SIGNAL_SUFFIX, mode)
            except (OSError, ValueError) as exc:  # not permitted, or no shared mappings here
                log.warning(
                    "token lookups are not remembered, and credentials cannot change in this"
                    " process: %s",
                    exc,
                )
            else:
                self.token_cache = credential_cache.TokenCache(self._signal)
        self.migrate()

    @property
    def database_url(self) -> str | None:
        """:returns: the PostgreSQL URL of the database, or None for SQLite (:attr:`path`)."""
        return self._url

    @property
    def location(self) -> str:
        """:returns: what names the database (the PostgreSQL URL, or the SQLite file)."""
        return self._url or os.path.abspath(self.path)

    # -- connections -------------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        """:returns: this thread's connection (autocommit mode; see :meth:`transaction`). On
        PostgreSQL a :class:`~kloudless.server.pgsql.PgConnection`, which offers the same
        calls."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None and self._url is not None:
            conn = cast(sqlite3.Connection, pgsql.PgConnection(self._url, self._schema))
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            # FULL: in WAL mode NORMAL may lose the last commits on a power cut; every
            # acknowledged write must survive one (see the server guide, "Durability").
            conn.execute("PRAGMA synchronous=FULL")
            credential_cache.install(conn, self._signal)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(
        self, standalone: bool = False, savepoint: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """Run a block in one ``BEGIN IMMEDIATE`` transaction (commit on success, else rollback).

        Nested use joins the outer transaction. Inside a :meth:`unit_of_work` the block joins
        the unit's transaction (begun by the first block) as a savepoint: an exception rolls
        back this block only, and the commit waits for the end of the unit.

        :param standalone: commit at the end of this block even inside a unit of work, for a
            claim that others must see at once; the unit must not have begun yet.
        :param savepoint: False: inside a begun unit, no savepoint for this block, for a block
            whose failure fails the whole unit (its exception is not caught inside the unit,
            which then rolls back all of it): two statements fewer.
        :raises RuntimeError: for ``standalone`` inside a unit whose transaction has begun.
        """
        conn = self.conn
        unit: _Unit | None = getattr(self._units, "unit", None)
        if unit is not None and standalone:
            if unit.begun:
                raise RuntimeError("a standalone transaction inside a begun unit of work")
            unit = None
        if unit is None:
            if conn.in_transaction:
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            self._after_commit.calls = []
            try:
                yield conn
            except BaseException:
                self._after_commit.calls = None
                conn.execute("ROLLBACK")
                self.settle()
                raise
            conn.execute("COMMIT")
            self.settle()
            self._run_after_commit()
            return
        if unit.active or (conn.in_transaction and not unit.begun):
            yield conn  # nested, or inside a read snapshot opened by the caller
            return
        if not unit.begun:
            # The unit's first block: a rollback of the whole transaction is a rollback of
            # this block (no savepoint needed; the next block begins the unit again).
            conn.execute("BEGIN IMMEDIATE")
            unit.begun = True
            self._after_commit.calls = []
            unit.active = True
            try:
                yield conn
            except BaseException:
                unit.begun = False
                self._after_commit.calls = None
                conn.execute("ROLLBACK")
                self.settle()
                raise
            finally:
                unit.active = False
            return
        if not savepoint:
            unit.active = True
            try:
                yield conn
            finally:
                unit.active = False
            return
        calls: list[Callable[[], object]] = self._after_commit.calls
        mark = len(calls)
        unit.active = True
        conn.execute("SAVEPOINT unit_step")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK TO unit_step")
            conn.execute("RELEASE unit_step")
            del calls[mark:]
            raise
        finally:
            unit.active = False
        conn.execute("RELEASE unit_step")

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """Make the block one unit of work: every :meth:`transaction` inside it joins one
        database transaction, begun lazily by the first (so spooling a body or copying bytes
        before it holds no lock) and committed when the block ends; an exception rolls all of
        it back (then the :meth:`after_rollback` calls run). Nested use joins the outer unit.

        Keep upstream calls and long I/O before the first write of the unit: the write lock
        is held from the first write to the end of the block.
        """
        if getattr(self._units, "unit", None) is not None:
            yield
            return
        unit = self._units.unit = _Unit()
        try:
            yield
        except BaseException:
            self._units.unit = None
            if unit.begun:
                self._after_commit.calls = None
                self.conn.execute("ROLLBACK")
                self.settle()
            for call in unit.on_rollback:
                call()
            raise
        self._units.unit = None
        if unit.begun:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self._after_commit.calls = None
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                self.settle()
                for call in unit.on_rollback:
                    call()
                raise
            self.settle()
            self._run_after_commit()

    def settle(self) -> None:
        """The second credential signal, if a trigger fired on this thread since (see
        :mod:`~kloudless.server.credential_cache`). The store runs it after every commit and
        rollback and every statement outside a transaction; the app after every request, for
        a commit made on the connection directly."""
        if self._signal is not None:
            self._signal.settle()

    def _run_after_commit(self) -> None:
        calls, self._after_commit.calls = self._after_commit.calls, None
        for call in calls or ():
            call()

    def after_commit(self, call: Callable[[], object]) -> None:
        """Run ``call`` once this thread's :meth:`transaction` (or unit of work) commits
        (dropped on rollback), or right away outside a transaction. For side effects that must
        not happen before the change is durable (webhook notification, removing files)."""
        calls: list[Callable[[], object]] | None = getattr(self._after_commit, "calls", None)
        if calls is None or not self.conn.in_transaction:
            call()
        else:
            calls.append(call)

    def after_rollback(self, call: Callable[[], None]) -> None:
        """Run ``call`` (outside any transaction) if this thread's unit of work rolls back, to
        undo what a standalone claim of the unit did. Outside a unit it is never called."""
        unit: _Unit | None = getattr(self._units, "unit", None)
        if unit is not None:
            unit.on_rollback.append(call)

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """Run one statement on this thread's connection."""
        conn = self.conn
        cursor = conn.execute(sql, params)
        if self._signal is not None and not conn.in_transaction:
            self._signal.settle()  # committed by itself (autocommit)
        return cursor

    def one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        """:returns: the first row of a query, or None."""
        row: sqlite3.Row | None = self.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """:returns: all rows of a query."""
        return list(self.execute(sql, params).fetchall())

    def close(self) -> None:
        """Close every connection opened by any thread."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):  # sqlite3 or psycopg errors
                conn.close()
        self._local = threading.local()
        if self.token_cache is not None:
            self.token_cache.clear()

    # -- migrations --------------------------------------------------------------------------
    def migrate(self) -> None:
        """Apply every migration not recorded in ``schema_versions`` yet, in one write
        transaction (so of several processes starting at once, one migrates and the others
        then find every version recorded)."""
        if self._url is not None:
            self._migrate_postgres()
            return
        conn = self.conn
        with self.transaction():
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            applied = {
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_versions'"
                )
            }
            if not applied:
                conn.execute("CREATE TABLE schema_versions (version INTEGER PRIMARY KEY)")
                if current:
                    conn.executemany(
                        "INSERT INTO schema_versions VALUES (?)",
                        [(v,) for v, _ in MIGRATIONS if v <= current],
                    )
            _apply_migrations(conn)
            top = max((v for v, _ in MIGRATIONS), default=0)
            conn.execute(f"PRAGMA user_version = {int(top)}")
            # Not a numbered migration: created again whenever missing (dropped by hand).
            credential_cache.triggers(conn)

    def _migrate_postgres(self) -> None:
        conn = self.conn
        with self.transaction():  # the write lock: one process migrates at a time
            for statement in pgsql.SQLITE_COMPAT:
                conn.execute(statement)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_versions (version BIGINT PRIMARY KEY)")
            _apply_migrations(conn)
        if self._schema is not None:
            self._schema.reset()

    def schema_version(self) -> int:
        """:returns: the newest migration applied to the database (0 for none)."""
        row = self.one("SELECT MAX(version) AS v FROM schema_versions")
        return int(row["v"] or 0) if row is not None else 0

    # -- key/value ---------------------------------------------------------------------------
    def get_kv(self, key: str) -> str | None:
        """:returns: a stored server value (e.g. the CSRF secret)."""
        row = self.one("SELECT value FROM kv WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def server_secret(self) -> bytes:
        """:returns: the random per-data-dir secret used to sign CSRF tokens (created once)."""
        value = self.get_kv("server_secret")  # a read: it must not begin a unit of work
        if value is None:
            with self.transaction():
                value = self.get_kv("server_secret")
                if value is None:
                    value = new_secret()
                    self.execute("INSERT INTO kv VALUES ('server_secret', ?)", (value,))
        return value.encode()

    # -- applications and credentials --------------------------------------------------------
    def create_app(self, name: str = "Local application") -> tuple[str, str]:
        """Create an application with one API key.

        :returns: ``(app_id, api_key)``; the key is shown only here.
        """
        app_id = "app_" + secrets.token_urlsafe(12)
        now = now_iso()
        with self.transaction():
            self.execute(
                "INSERT INTO apps (id, name, created, modified) VALUES (?, ?, ?, ?)",
                (app_id, name, now, now),
            )
            api_key = self.create_api_key(app_id)
        return app_id, api_key

    def create_api_key(self, app_id: str) -> str:
        """:returns: a new API key for ``app_id`` (stored hashed)."""
        key = "key_" + new_secret()
        self.execute("INSERT INTO api_keys VALUES (?, ?, ?)", (hash_secret(key), app_id, now_iso()))
        return key

    def app_for_api_key(self, api_key: str) -> str | None:
        """:returns: the app id owning ``api_key``, or None."""
        row = self.one("SELECT app_id FROM api_keys WHERE key_hash = ?", (hash_secret(api_key),))
        return None if row is None else str(row["app_id"])

    def get_app(self, app_id: str) -> sqlite3.Row | None:
        """:returns: the application row, or None."""
        return self.one("SELECT * FROM apps WHERE id = ?", (app_id,))

    def list_apps(self) -> list[sqlite3.Row]:
        """:returns: every application row."""
        return self.all("SELECT * FROM apps ORDER BY created")

    def create_token(self, app_id: str, account_id: int | None, scope: str = "all") -> str:
        """Create a bearer token for an account (or an application-level token when
        ``account_id`` is None).

        :returns: the token; stored hashed, shown only here.
        """
        token = "tok_" + new_secret()
        self.execute(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, ?)",
            (hash_secret(token), app_id, account_id, scope, now_iso()),
        )
        return token

    def lookup_token(self, token: str) -> sqlite3.Row | None:
        """:returns: the token row (``app_id``, ``account_id``, ``scope``), or None."""
        return self.one("SELECT * FROM tokens WHERE token_hash = ?", (hash_secret(token),))

    def lookup_token_account(self, token: str) -> sqlite3.Row | None:
        """One indexed read for a Bearer token and its account (what every request with one
        needs first), remembered until the credentials change (SQLite: :attr:`token_cache`).

        :returns: None for an unknown token, else a row of the account's columns (all NULL
            for an application-level token, or an account that is gone) and the token's
            ``auth_app_id``, ``auth_account_id`` and ``auth_scope``.
        """
        key = hash_secret(token)
        cache = self.token_cache
        if cache is None:
            return self.one(_TOKEN_ACCOUNT, (key,))
        row = cache.get(key)
        if row is not None:
            return cast(sqlite3.Row, row)
        conn = self.conn
        # Read before the row: a change committed after it makes the row not count.
        seen = cache.signal.read()
        found: sqlite3.Row | None = conn.execute(_TOKEN_ACCOUNT, (key,)).fetchone()
        if found is not None and not conn.in_transaction:  # its snapshot may be older
            cache.put(key, seen, found)
        return found

    def revoke_token(self, token: str) -> bool:
        """:returns: True if the token existed and is now revoked."""
        cur = self.execute("DELETE FROM tokens WHERE token_hash = ?", (hash_secret(token),))
        return cur.rowcount > 0

    # -- accounts ----------------------------------------------------------------------------
    def create_account(
        self,
        app_id: str,
        service: str = "local",
        name: str = "local",
        config: dict[str, Any] | None = None,
    ) -> int:
        """:returns: the id of a new account of ``app_id``."""
        now = now_iso()
        cur = self.execute(
            "INSERT INTO accounts (app_id, service, account, created, modified, config)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (app_id, service, name, now, now, json.dumps(config or {})),
        )
        return int(cur.lastrowid or 0)

    def get_account(self, account_id: int) -> sqlite3.Row | None:
        """:returns: the account row, or None."""
        return self.one("SELECT * FROM accounts WHERE id = ?", (account_id,))

    def list_accounts(self, app_id: str | None = None) -> list[sqlite3.Row]:
        """:returns: the accounts of one application (or all), by id."""
        if app_id is None:
            return self.all("SELECT * FROM accounts ORDER BY id")
        return self.all("SELECT * FROM accounts WHERE app_id = ? ORDER BY id", (app_id,))

    def delete_account(self, account_id: int) -> bool:
        """Delete an account and everything stored for it in the database.

        :returns: True if it existed.
        """
        with self.transaction():
            for table in ("objects", "inline_blobs", "activity", "multipart", "tasks", "links"):
                self.execute(f"DELETE FROM {table} WHERE account_id = ?", (account_id,))
            self.execute("DELETE FROM oauth_codes WHERE account_id = ?", (account_id,))
            cur = self.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
        return cur.rowcount > 0

    # -- activity log ------------------------------------------------------------------------
    def append_activity(
        self,
        account_id: int,
        type_: str,
        object_id: str | None,
        metadata: dict[str, Any],
        ip: str | None = None,
        actor: dict[str, Any] | None = None,
    ) -> int:
        """Append one activity event. Use :func:`kloudless.server.activity.record` instead,
        which also notifies listeners (webhooks).

        :param actor: who acted when it was not the account itself (an admin account
            impersonating a team user: ``{"user_id", "admin_account"}``, see
            :mod:`kloudless.server.team`).
        :returns: the event's cursor (monotonic integer).
        """
        cur = self.execute(
            "INSERT INTO activity (account_id, type, object_id, modified, ip, metadata, actor)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                account_id,
                type_,
                object_id,
                now_iso(),
                ip,
                json.dumps(metadata),
                None if actor is None else json.dumps(actor),
            ),
        )
        return int(cur.lastrowid or 0)

    def latest_cursor(self, account_id: int) -> int:
        """:returns: the cursor of the account's newest event (0 when none)."""
        row = self.one("SELECT MAX(id) AS m FROM activity WHERE account_id = ?", (account_id,))
        return int(row["m"] or 0) if row else 0
