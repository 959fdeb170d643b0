"""PostgreSQL behind the :class:`~kloudless.server.store.Store` API (psycopg 3).

Every module of the server talks to the store in SQLite's SQL through ``store.execute()``,
``store.one()``, ``store.all()`` and ``store.transaction()``; this module lets the same calls
run on PostgreSQL, so that there is one SQL code path for both databases. A
:class:`PgConnection` looks like the part of :class:`sqlite3.Connection` the server uses
(``execute``, ``executemany``, ``cursor``, ``in_transaction``, rows readable by index and by
column name) and translates each statement once (cached):

* ``?`` placeholders become ``%s`` (``%`` is escaped), outside quoted text;
* ``BEGIN IMMEDIATE`` (a write transaction) becomes ``BEGIN`` plus one transaction-scoped
  advisory lock, so writers are serialised exactly as SQLite serialises them: the server's
  check-then-write transactions keep their meaning, and a schema migration runs once even when
  several processes start at once; a plain ``BEGIN`` (a read snapshot) is ``REPEATABLE READ``;
* ``x IS ?`` and ``x IS NOT ?`` are ``IS [NOT] DISTINCT FROM``;
* ``INSERT OR IGNORE`` is ``ON CONFLICT DO NOTHING``; ``INSERT OR REPLACE`` is an upsert on the
  table's primary key (read from the catalogue);
* an ``INSERT`` into a table with a generated id gets ``RETURNING`` it, for ``lastrowid``;
* table definitions: ``INTEGER`` is ``BIGINT`` (sizes exceed 32 bits), ``INTEGER PRIMARY KEY``
  a ``BIGSERIAL``, ``REAL`` is ``DOUBLE PRECISION``, ``BLOB`` is ``BYTEA``; ``instr()`` exists
  as in SQLite (:data:`SQLITE_COMPAT`); ``x COLLATE NOCASE`` (in comparisons, ``ORDER BY`` and
  indexes) compares ``lower(x)``. Column types are recognised in capitals (``blob BLOB``).

Parameters are sent untyped, as SQLite takes them: numbers and booleans as text of unknown type,
which PostgreSQL casts to the column's type. Errors keep SQLite's exception types
(:class:`sqlite3.IntegrityError` for constraint violations, :class:`sqlite3.OperationalError`
otherwise), and a failing write inside a transaction rolls back only itself (a savepoint), as in
SQLite, so code that catches a unique violation and goes on keeps working.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, Callable

__all__ = [
    "SQLITE_COMPAT",
    "PgConnection",
    "Row",
    "Schema",
    "is_postgres_url",
    "redact_url",
    "translate",
]

#: The advisory lock key of write transactions ("kloudless" in ASCII, as a bigint).
WRITE_LOCK = 0x6B6C6F75646C6573
#: Statements run on a new database before the migrations: what SQLite has built in.
SQLITE_COMPAT = (
    "CREATE OR REPLACE FUNCTION instr(text, text) RETURNS integer"
    " LANGUAGE sql IMMUTABLE AS 'SELECT strpos($1, $2)'",
)
_NOCASE_EQUALS = re.compile(r"([\w.]+)\s*=\s*\?\s+COLLATE\s+NOCASE\b", re.I)
_NOCASE = re.compile(r"([\w.]+)\s+COLLATE\s+NOCASE\b", re.I)

_QUOTED_OR_MARK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")
_INSERT = re.compile(
    r"^\s*INSERT\s+(?:OR\s+(?P<or>IGNORE|REPLACE)\s+)?INTO\s+(?P<table>\w+)\s*"
    r"(?:\((?P<cols>[^)]*)\))?",
    re.I | re.S,
)
_DDL = re.compile(r"^\s*(CREATE\s+TABLE|ALTER\s+TABLE)", re.I)
# Type names are matched in capitals only, as every migration writes them: a column may be
# called ``blob``.
_TYPES = [
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b"), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
]


def is_postgres_url(url: str | None) -> bool:
    """:returns: True for a ``postgresql://`` (or ``postgres://``) URL."""
    return bool(url) and str(url).split(":", 1)[0].lower() in ("postgresql", "postgres")


_IS_NOT_MARK = re.compile(r"\bIS\s+NOT\s+\?", re.I)
_IS_MARK = re.compile(r"\bIS\s+\?", re.I)


def _placeholders(sql: str) -> str:
    if " IS " in sql.upper():  # SQLite's IS compares anything; PostgreSQL's only NULL/booleans
        sql = _IS_MARK.sub("IS NOT DISTINCT FROM ?", _IS_NOT_MARK.sub("IS DISTINCT FROM ?", sql))
    if "COLLATE" in sql.upper():
        sql = _NOCASE.sub(r"lower(\1)", _NOCASE_EQUALS.sub(r"lower(\1) = lower(?)", sql))

    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        # psycopg reads ``%`` everywhere, quoted text included; ``?`` is a mark outside only.
        return {"?": "%s", "%": "%%"}.get(token) or token.replace("%", "%%")

    return _QUOTED_OR_MARK.sub(swap, sql)


def translate_ddl(sql: str) -> str:
    """:returns: a SQLite ``CREATE TABLE``/``ALTER TABLE`` with PostgreSQL's column types."""
    for pattern, replacement in _TYPES:
        sql = pattern.sub(replacement, sql)
    return sql


#: Primary key columns, the generated id column and all columns (in order), per table.
TableInfo = tuple[dict[str, list[str]], dict[str, str], dict[str, list[str]]]


class Schema:
    """What statement translation needs to know about the tables, read from the catalogue
    once (again after every table change).

    :param url: the database.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._cached: TableInfo | None = None

    def reset(self) -> None:
        """Forget what was read (after a migration)."""
        self._cached = None
        translate.cache_clear()

    @property
    def info(self) -> TableInfo:
        """:returns: the table information (read on first use, on a connection of its own)."""
        cached = self._cached
        if cached is None:
            import psycopg

            with psycopg.connect(self.url, autocommit=True, connect_timeout=30) as conn:
                cached = self.load(conn)
        return cached

    def load(self, conn: Any) -> TableInfo:
        """:returns: the table information, read through ``conn`` (a psycopg connection) if not
        known yet. A connection inside a transaction reads what that transaction sees: during a
        migration, the tables it has created or altered so far; another connection would not
        see those and would wait forever for the locks the migration holds on the tables it
        alters (an upgrade adding a column to a table that has rows)."""
        cached = self._cached
        if cached is None:
            cached = self._cached = _read_tables(conn)
        return cached


def _read_tables(conn: Any) -> TableInfo:
    pks: dict[str, list[str]] = {}
    serials: dict[str, str] = {}
    columns: dict[str, list[str]] = {}
    for table, column in conn.execute(
        "SELECT tc.table_name, k.column_name FROM information_schema.table_constraints tc"
        " JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name"
        " AND k.table_schema = tc.table_schema WHERE tc.constraint_type = 'PRIMARY KEY'"
        " AND tc.table_schema = current_schema() ORDER BY tc.table_name, k.ordinal_position"
    ):
        pks.setdefault(table, []).append(column)
    for table, column, default in conn.execute(
        "SELECT table_name, column_name, column_default FROM information_schema.columns"
        " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    ):
        columns.setdefault(table, []).append(column)
        if default and str(default).startswith("nextval("):
            serials[table] = column
    return pks, serials, columns


@functools.lru_cache(maxsize=4096)
def translate(sql: str, schema: Schema | None = None) -> tuple[str, str | None]:
    """Translate one SQLite statement.

    :returns: ``(PostgreSQL statement, name of the generated column it returns or None)``.
    """
    if _DDL.match(sql):
        return _placeholders(translate_ddl(sql)), None
    match = _INSERT.match(sql)
    if match is None:
        return _placeholders(sql), None
    pks, serials, columns = schema.info if schema is not None else ({}, {}, {})
    table = match.group("table").lower()
    body = sql
    conflict = ""
    if match.group("or"):
        body = re.sub(r"^\s*INSERT\s+OR\s+\w+\s+INTO", "INSERT INTO", sql, count=1, flags=re.I)
        if match.group("or").upper() == "IGNORE":
            conflict = " ON CONFLICT DO NOTHING"
        else:
            cols = (
                [c.strip().lower() for c in match.group("cols").split(",")]
                if match.group("cols")
                else columns.get(table, [])
            )
            keys = pks.get(table, [])
            rest = [c for c in cols if c not in keys]
            action = (
                "DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
                if rest
                else "DO NOTHING"
            )
            conflict = f" ON CONFLICT ({', '.join(keys)}) {action}"
    returning = None
    if "RETURNING" not in sql.upper() and table in serials:
        returning = serials[table]
    text = body.rstrip().rstrip(";") + conflict + (f" RETURNING {returning}" if returning else "")
    return _placeholders(text), returning


class Row(tuple):
    """A result row readable by index and by column name, like :class:`sqlite3.Row`."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._names[key.lower()])
            except KeyError:
                raise IndexError(f"No item with that key: {key}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        """:returns: the column names."""
        return list(self._names)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    description = cursor.description or []
    names = {str(c.name).lower(): i for i, c in enumerate(description)}
    return lambda values: Row(values, names)


def _sqlite_error(exc: Exception) -> sqlite3.Error:
    import psycopg

    message = str(exc).strip()
    if isinstance(exc, psycopg.errors.IntegrityError):
        return sqlite3.IntegrityError(message)
    if isinstance(exc, psycopg.errors.DiskFull):
        return sqlite3.OperationalError(f"database or disk is full ({message})")
    return sqlite3.OperationalError(message)


class PgCursor:
    """The result of one statement (``fetchone``, ``fetchall``, iteration, ``rowcount``,
    ``lastrowid``)."""

    def __init__(self, conn: PgConnection) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self.rowcount = -1
        self.lastrowid: int | None = None
        #: Accepted for :class:`sqlite3.Cursor` compatibility (rows are tuples either way).
        self.row_factory: Any = None

    def execute(self, sql: str, params: Any = ()) -> PgCursor:
        self._conn._run(self, sql, params)
        return self

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """One psycopg connection in autocommit mode (transactions are begun explicitly, as the
    store does with SQLite), speaking SQLite's SQL (see the module docstring).

    :param url: ``postgresql://user@host:port/dbname`` (a password is best left to
        ``PGPASSWORD`` or a ``.pgpass`` file, see the deployment guide).
    :param schema: the shared table information (see :class:`Schema`).
    """

    def __init__(self, url: str, schema: Schema | None) -> None:
        import psycopg
        from psycopg.adapt import Dumper

        class Untyped(Dumper):
            """Numbers and booleans as text of unknown type: the server casts them to the
            column's type, as SQLite's dynamic typing does."""

            oid = 0

            def dump(self, obj: Any) -> bytes:
                return str(int(obj) if isinstance(obj, bool) else obj).encode()

        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=30)
        except psycopg.Error as exc:
            raise sqlite3.OperationalError(f"cannot connect to PostgreSQL: {exc}") from None
        for kind in (int, float, bool):
            self._conn.adapters.register_dumper(kind, Untyped)
        self._conn.adapters.register_loader("numeric", _numeric_loader())
        self._schema = schema
        self.row_factory: Any = None

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def cursor(self) -> PgCursor:
        return PgCursor(self)

    def execute(self, sql: str, params: Any = ()) -> PgCursor:
        return PgCursor(self).execute(sql, params)

    def executemany(self, sql: str, seq: Any) -> PgCursor:
        cursor = PgCursor(self)
        total = 0
        for params in seq:
            self._run(cursor, sql, params)
            total += max(cursor.rowcount, 0)
        cursor.rowcount = total
        return cursor

    def _run(self, cursor: PgCursor, sql: str, params: Any) -> None:
        import psycopg

        verb = sql.lstrip()[:16].upper()
        try:
            if verb.startswith("BEGIN"):
                if "IMMEDIATE" in verb or "EXCLUSIVE" in verb:
                    self._conn.execute("BEGIN")
                    self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                else:
                    self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                cursor.rowcount = -1
                cursor._rows = []
                return
            schema = self._schema
            if schema is not None and schema._cached is None and _INSERT.match(sql):
                schema.load(self._conn)  # on this connection: see Schema.load
            text, returning = translate(sql, schema)
            ddl = _DDL.match(sql) is not None
            guarded = self.in_transaction and verb.startswith(("INSERT", "UPDATE", "DELETE"))
            if guarded:
                self._conn.execute("SAVEPOINT kl_stmt")
            try:
                cur = self._conn.cursor(row_factory=_row_factory)
                cur.execute(text, tuple(params) if params is not None else None)
            except psycopg.Error:
                if guarded:
                    self._conn.execute("ROLLBACK TO SAVEPOINT kl_stmt")
                    self._conn.execute("RELEASE SAVEPOINT kl_stmt")
                raise
            if guarded:
                self._conn.execute("RELEASE SAVEPOINT kl_stmt")
            if ddl and self._schema is not None:
                self._schema.reset()
            cursor.rowcount = cur.rowcount
            rows = cur.fetchall() if cur.description is not None else []
            if returning is not None:
                cursor.lastrowid = int(rows[0][0]) if rows and rows[0][0] is not None else None
                rows = []
            cursor._rows = rows
        except psycopg.Error as exc:
            raise _sqlite_error(exc) from exc

    def close(self) -> None:
        self._conn.close()


@functools.lru_cache(maxsize=1)
def _numeric_loader() -> Any:
    from psycopg.types.numeric import NumericLoader

    class WholeNumbers(NumericLoader):
        """``SUM()`` of integers is ``numeric`` in PostgreSQL: whole numbers load as ``int``
        (as SQLite returns them), others as ``float``."""

        def load(self, data: Any) -> Any:
            value = super().load(data)
            return int(value) if value == value.to_integral_value() else float(value)

    return WholeNumbers


def redact_url(url: str) -> str:
    """:returns: ``url`` without its password (for logs and messages)."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:[REDACTED]@", url)
