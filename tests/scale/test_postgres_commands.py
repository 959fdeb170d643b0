"""The management commands on a PostgreSQL database: ``--database-url`` (or
``$KLOUDLESS_DATABASE_URL``) instead of the data dir's SQLite file."""

from __future__ import annotations

from typing import Any

import pytest

from kloudless.cli import main
from kloudless.server import Settings, create_app
from kloudless.server.bootstrap import bootstrap
from tests.pgserver import PostgresServer


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_accounts_and_tokens_on_postgres(
    tmp_path: Any,
    postgres: PostgresServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = postgres.new_database()
    data = str(tmp_path / "data")
    # An empty database holds no server: the command says so and creates nothing.
    code, out = _run(capsys, "accounts", "list", "--data-dir", data, "--database-url", url)
    assert code == 1 and "no server data in that PostgreSQL database" in out
    app = create_app(Settings(data_dir=data, database_url=url))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
    finally:
        app.close()
    code, out = _run(capsys, "accounts", "list", "--data-dir", data, "--database-url", url)
    assert code == 0 and "local" in out
    monkeypatch.setenv("KLOUDLESS_DATABASE_URL", url)  # the same, from the environment
    code, out = _run(capsys, "tokens", "create", str(creds.account_id), "--data-dir", data)
    assert code == 0 and "tok_" in out
    code, out = _run(capsys, "apps", "show", "--data-dir", data)
    assert code == 0 and creds.app_id in out


def test_a_password_on_the_command_line_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["accounts", "list", "--database-url", "postgresql://u:hunter2@db/k"])
    err = capsys.readouterr().err
    assert "visible to every user" in err and "hunter2" not in err
