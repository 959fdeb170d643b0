"""Server sub-commands of the ``kloudless`` command line."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kloudless.cli import main
from kloudless.server.store import Store


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().out


def test_apps_show_bootstraps_once(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "d")
    status, out = _run(capsys, "apps", "show", "--data-dir", data)
    assert status == 0 and "KLOUDLESS_API_KEY=key_" in out and "KLOUDLESS_TOKEN=tok_" in out
    status, out = _run(capsys, "apps", "show", "--data-dir", data)
    assert status == 0 and "KLOUDLESS_API_KEY" not in out and "1 account(s): 1" in out
    status, out = _run(capsys, "apps", "show", "--data-dir", data, "--new-api-key", "--app-token")
    assert "New API key (shown once): key_" in out and "Application-level token" in out


def test_accounts_and_tokens(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "d")
    _run(capsys, "apps", "show", "--data-dir", data)
    status, out = _run(capsys, "accounts", "create", "--data-dir", data, "--name", "bob")
    assert status == 0 and "Created account 2" in out
    token = re.search(r"(tok_\S+)", out)
    assert token is not None
    store = Store(str(tmp_path / "d" / "kloudless.sqlite3"))
    try:
        row = store.lookup_token(token.group(1))
        assert row is not None and row["account_id"] == 2
    finally:
        store.close()
    status, out = _run(capsys, "accounts", "list", "--data-dir", data)
    assert "bob" in out and "local" in out
    status, out = _run(capsys, "tokens", "create", "--data-dir", data, "2")
    assert status == 0 and "tok_" in out
    assert _run(capsys, "tokens", "create", "--data-dir", data, "99")[0] == 1
    status, out = _run(capsys, "accounts", "delete", "--data-dir", data, "2")
    assert status == 0 and "Deleted account 2" in out
    assert _run(capsys, "accounts", "delete", "--data-dir", data, "2")[0] == 1
    status, out = _run(capsys, "accounts", "list", "--data-dir", data)
    assert "bob" not in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().out
