"""Server sub-commands of the ``kloudless`` command line."""

from __future__ import annotations

import os
import re
import stat
import sys
from typing import Any, Callable

import pytest

from kloudless.cli import main
from kloudless.server import Settings, create_app
from kloudless.server.store import Store
from tests.server.conftest import cli_options, stored_bytes


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().out


@pytest.fixture
def server(make_settings: Callable[..., Settings], tmp_path: Any) -> tuple[Settings, list[str]]:
    """A new, empty server store (as the first ``kloudless serve`` makes) in the test's
    configuration, and the options that name it on the command line."""
    settings = make_settings(tmp_path / "d")
    create_app(settings).close()
    return settings, cli_options(settings)


def _open(settings: Settings) -> Store:
    return Store(settings.db_path, settings.database_url)


def test_apps_show_bootstraps_once(
    server: tuple[Settings, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    settings, where = server
    status, out = _run(capsys, "apps", "show", *where)
    assert status == 0 and "KLOUDLESS_API_KEY=key_" in out and "KLOUDLESS_TOKEN=tok_" in out
    status, out = _run(capsys, "apps", "show", *where)
    assert status == 0 and "KLOUDLESS_API_KEY" not in out and "1 account(s): 1" in out
    status, out = _run(capsys, "apps", "show", *where, "--new-api-key", "--app-token")
    assert "New API key (shown once): key_" in out and "Application-level token" in out


def test_accounts_and_tokens(
    server: tuple[Settings, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    settings, where = server
    _run(capsys, "apps", "show", *where)
    status, out = _run(capsys, "accounts", "create", *where, "--name", "bob")
    assert status == 0 and "Created account 2" in out
    # Like `serve` at first start: export lines to paste into a shell.
    assert "  export KLOUDLESS_ACCOUNT_ID=2\n" in out
    token = re.search(r"^  export KLOUDLESS_TOKEN=(tok_\S+)$", out, re.M)
    assert token is not None
    store = _open(settings)
    try:
        row = store.lookup_token(token.group(1))
        assert row is not None and row["account_id"] == 2
    finally:
        store.close()
    status, out = _run(capsys, "accounts", "list", *where)
    assert "bob" in out and "local" in out
    status, out = _run(capsys, "tokens", "create", *where, "2")
    assert status == 0 and re.search(r"^  export KLOUDLESS_TOKEN=tok_\S+$", out, re.M)
    assert _run(capsys, "tokens", "create", *where, "99")[0] == 1
    status, out = _run(capsys, "accounts", "delete", *where, "2")
    assert status == 0 and "Deleted account 2" in out
    assert _run(capsys, "accounts", "delete", *where, "2")[0] == 1
    status, out = _run(capsys, "accounts", "list", *where)
    assert "bob" not in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["accounts", "list"],
        ["accounts", "create"],
        ["accounts", "delete", "1"],
        ["tokens", "create", "1"],
        ["apps", "show"],
        ["apps", "webhook", "show"],
        ["apps", "webhook", "set", "http://127.0.0.1:9/"],
        ["apps", "redirect-uri", "list"],
    ],
)
def test_admin_commands_do_not_create_a_data_dir(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    data = tmp_path / "typo"
    assert main([*argv, "--data-dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"kloudless: error: no server data in {data} "
        f"(start it once with: kloudless serve --data-dir {data})\n"
    )
    assert not data.exists()


def test_serve_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--port", "99999"])
    assert info.value.code == 2
    assert "port must be between 0 and 65535" in capsys.readouterr().err


def test_serve_port_in_use(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main(["serve", "--data-dir", str(tmp_path / "d"), "--port", str(port)])
    err = capsys.readouterr().err
    assert status == 1
    assert err.endswith(
        f"kloudless: error: 127.0.0.1:{port} is already in use (is another server running?)\n"
    )
    assert "Traceback" not in err
    assert not (tmp_path / "d").exists()  # nothing created for a server that cannot start


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
@pytest.mark.only_config("sqlite-files", reason="the modes of the data dir's SQLite file")
@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_new_data_dir_is_private(
    make_settings: Callable[..., Settings], tmp_path: Any, umask: int
) -> None:
    data = tmp_path / "private" / "data"
    old = os.umask(umask)
    try:
        create_app(make_settings(data)).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "kloudless.sqlite3").stat().st_mode) == 0o600


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from kloudless.version import VERSION

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"kloudless {VERSION}\n"


def test_serve_data_dir_is_a_file(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "file"
    path.write_text("not a folder")
    assert main(["serve", "--data-dir", str(path), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err == f"kloudless: error: --data-dir {path} is a file, not a folder\n"
    assert main(["accounts", "list", "--data-dir", str(path)]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    assert path.read_text() == "not a folder"


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks")
def test_second_serve_on_one_data_dir_refuses(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from kloudless.server.runner import lock_data_dir

    data = str(tmp_path / "d")
    first = lock_data_dir(data)  # what a running `kloudless serve` holds
    assert first is not None
    try:
        assert main(["serve", "--data-dir", data, "--port", "0"]) == 1
        err = capsys.readouterr().err
        assert (
            err == f"kloudless: error: another `kloudless serve` is using {data} (stop it first)\n"
        )
    finally:
        first.close()
    second = lock_data_dir(data)  # released on exit: the next server may start
    assert second is not None
    second.close()


def test_admin_account_and_team_commands(
    server: tuple[Settings, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    settings, where = server
    _run(capsys, "apps", "show", *where)  # first-start credentials, once
    status, out = _run(capsys, "accounts", "create", "--admin", "--json", "--name", "it", *where)
    admin = json.loads(out)
    assert status == 0 and admin["admin"] is True and admin["token"].startswith("tok_")
    _, out = _run(capsys, "accounts", "create", "--json", "--name", "alice", *where)
    alice = json.loads(out)
    a = str(admin["id"])
    status, out = _run(
        capsys,
        "team",
        "users",
        "add",
        a,
        str(alice["id"]),
        "--email",
        "a@x",
        "--json",
        *where,
    )
    user = json.loads(out)
    assert status == 0 and user["name"] == "alice" and user["account"] == alice["id"]
    status, out = _run(capsys, "team", "groups", "add", a, "eng", "--json", *where)
    group = json.loads(out)
    assert status == 0 and group["role"] == "member"
    assert _run(capsys, "team", "groups", "member-add", a, group["id"], user["id"], *where)[0] == 0
    status, out = _run(capsys, "team", "groups", "members", a, group["id"], "--json", *where)
    assert [m["id"] for m in json.loads(out)] == [user["id"]]
    status, out = _run(capsys, "team", "users", "list", a, *where)
    assert status == 0 and "alice" in out and "a@x" in out
    # Errors are one line and exit status 1.
    status = main(["team", "users", "add", str(alice["id"]), a, *where])
    assert status == 1 and "not an admin account" in capsys.readouterr().err
    status = main(["team", "users", "remove", a, "999", *where])
    assert status == 1 and "User not found" in capsys.readouterr().err
    assert main(["team", "users", "list", "9999", *where]) == 1
    assert _run(capsys, "team", "users", "remove", a, user["id"], *where)[0] == 0
    status, out = _run(capsys, "team", "users", "list", a, "--json", *where)
    assert json.loads(out) == []


def test_developer_key_create_and_rotate(
    server: tuple[Settings, list[str]], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from kloudless.server import developers

    settings, where = server
    # The first bootstrap (here through `apps show`) prints the developer key with the rest.
    status, out = _run(capsys, "apps", "show", *where)
    first = re.search(r"^  export KLOUDLESS_DEVELOPER_KEY=(dev_\S+)$", out, re.M)
    assert status == 0 and first is not None
    status, out = _run(capsys, "developer-key", "create", *where)
    second = re.search(r"^  export KLOUDLESS_DEVELOPER_KEY=(dev_\S+)$", out, re.M)
    assert status == 0 and second is not None and "shown once" in out
    status, out = _run(capsys, "developer-key", "rotate", *where, "--json")
    import json

    third = json.loads(out)["developer_key"]
    store = _open(settings)
    try:
        assert [developers.developer_for_key(store, k) for k in (first[1], second[1], third)] == [
            None,
            None,
            developers.OPERATOR_ID,
        ]
        # Stored hashed: the clear key is nowhere in the database.
        rows = store.all("SELECT key_hash FROM developer_keys")
        assert len(rows) == 1 and third not in str([tuple(r) for r in rows])
    finally:
        store.close()
    stored = create_app(settings)
    try:  # nor anywhere else in the database (the SQLite file's free pages...)
        assert third.encode() not in stored_bytes(stored)
    finally:
        stored.close()
    assert _run(capsys, "developer-key", "create", "--data-dir", str(tmp_path / "none"))[0] == 1


def test_apps_list_create_and_choosing_one(
    server: tuple[Settings, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    settings, where = server
    _run(capsys, "apps", "show", *where)
    status, out = _run(capsys, "apps", "create", "Billing", *where, "--json")
    made = json.loads(out)
    assert status == 0 and made["name"] == "Billing" and made["api_key"].startswith("key_")
    status, out = _run(capsys, "apps", "create", "Docs", "--description", "d", *where)
    assert status == 0 and re.search(r"^  export KLOUDLESS_API_KEY=key_\S+$", out, re.M)
    status, out = _run(capsys, "apps", "list", *where, "--json")
    listed = json.loads(out)
    assert [a["name"] for a in listed] == ["Local application", "Billing", "Docs"]
    assert [a["accounts"] for a in listed] == [1, 0, 0] and "api_key" not in str(listed)
    # --app picks the application the other commands work on.
    status, out = _run(capsys, "accounts", "create", *where, "--app", made["id"], "--json")
    assert status == 0 and json.loads(out)["id"] == 2
    status, out = _run(capsys, "apps", "show", *where, "--app", made["id"])
    assert made["id"] in out and "1 account(s): 2" in out
    store = _open(settings)
    try:
        assert store.get_account(2)["app_id"] == made["id"]
    finally:
        store.close()
    assert main(["apps", "show", *where, "--app", "app_nope"]) == 1
    assert "no application app_nope" in capsys.readouterr().err
    assert _run(capsys, "apps", "create", " ", *where)[0] == 2
