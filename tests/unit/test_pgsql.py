"""The SQLite-to-PostgreSQL statement translation (kloudless.server.pgsql), statement by
statement; the translated statements are run on a real PostgreSQL by the server suites."""

from __future__ import annotations

import argparse

import pytest

from kloudless.cli.server_commands import _database_url
from kloudless.server import pgsql


class FixedSchema(pgsql.Schema):
    def __init__(self) -> None:
        super().__init__("postgresql://unused")
        self._cached = (
            {"parts": ["session_id", "part_number"], "kv": ["key"]},
            {"multipart_ids": "id"},
            {"parts": ["session_id", "part_number", "size"], "kv": ["key", "value"]},
        )


SCHEMA = FixedSchema()


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        (
            "SELECT * FROM t WHERE a = ? AND b LIKE 'x%?'",
            "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%?'",
        ),
        (
            "SELECT 1 WHERE x IS NOT ? AND y IS ?",
            "SELECT 1 WHERE x IS DISTINCT FROM %s AND y IS NOT DISTINCT FROM %s",
        ),
        (
            "INSERT OR IGNORE INTO kv VALUES (?, ?)",
            "INSERT INTO kv VALUES (%s, %s) ON CONFLICT DO NOTHING",
        ),
        (
            "INSERT OR REPLACE INTO parts VALUES (?, ?, ?)",
            "INSERT INTO parts VALUES (%s, %s, %s) ON CONFLICT (session_id, part_number)"
            " DO UPDATE SET size = EXCLUDED.size",
        ),
        (
            "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
            "INSERT INTO kv (key, value) VALUES (%s, %s) ON CONFLICT (key)"
            " DO UPDATE SET value = EXCLUDED.value",
        ),
        (
            "INSERT INTO multipart_ids (created) VALUES (?)",
            "INSERT INTO multipart_ids (created) VALUES (%s) RETURNING id",
        ),
        (
            "SELECT id FROM g WHERE name = ? COLLATE NOCASE",
            "SELECT id FROM g WHERE lower(name) = lower(%s)",
        ),
        (
            "SELECT * FROM g ORDER BY g.name COLLATE NOCASE, id",
            "SELECT * FROM g ORDER BY lower(g.name), id",
        ),
        (
            "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, blob TEXT, n INTEGER,"
            " r REAL, b BLOB)",
            "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, blob TEXT, n BIGINT,"
            " r DOUBLE PRECISION, b BYTEA)",
        ),
    ],
)
def test_translate(sqlite: str, postgres: str) -> None:
    assert pgsql.translate(sqlite, SCHEMA)[0] == postgres


def test_generated_ids_are_returned() -> None:
    assert pgsql.translate("INSERT INTO multipart_ids (created) VALUES (?)", SCHEMA)[1] == "id"
    assert pgsql.translate("INSERT INTO kv VALUES (?, ?)", SCHEMA)[1] is None


def test_rows_read_by_index_and_name() -> None:
    row = pgsql.Row((1, "a"), {"id": 0, "name": 1})
    assert row[0] == 1 and row["name"] == "a" and row["NAME"] == "a"
    assert dict(zip(row.keys(), row)) == {"id": 1, "name": "a"}
    with pytest.raises(IndexError):
        row["missing"]


def test_passwords_are_redacted_and_refused_on_the_command_line() -> None:
    url = "postgresql://kl:s3cret@db:5432/kl"
    assert "s3cret" not in pgsql.redact_url(url)
    assert pgsql.redact_url(url) == "postgresql://kl:[REDACTED]@db:5432/kl"
    with pytest.raises(argparse.ArgumentTypeError, match="visible to every user"):
        _database_url(url)
    assert _database_url("postgresql://kl@db:5432/kl") == "postgresql://kl@db:5432/kl"
    assert _database_url("sqlite:///var/lib/k.sqlite3") == "sqlite:///var/lib/k.sqlite3"
    with pytest.raises(argparse.ArgumentTypeError):
        _database_url("mysql://x@y/z")
