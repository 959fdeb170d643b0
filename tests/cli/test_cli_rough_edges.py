"""What a new user meets in the first hour (issue #18): usage errors, help, exit codes, output
details. In-process against the live local server unless said otherwise."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from live_server import Credentials

from kloudless.cli import build_parser
from kloudless.cli.errors import EXIT_CODES, EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_USAGE
from tests.resilience.faults import FaultProxy

Cli = Callable[..., Any]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _parsers(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[tuple[str, Any]]:
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, [*path, name])


COMMANDS = [c for c in _parsers(build_parser(), ["kloudless"]) if c[0] != "kloudless"]


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["ls", "-l"], "usage: kloudless ls "),
        (["cal", "events", "a", "b"], "usage: kloudless cal events "),
        (["put", "x", "--bogus"], "usage: kloudless put "),
        (["accounts", "list", "--bogus"], "usage: kloudless accounts list "),
    ],
)
def test_a_bad_option_shows_the_subcommands_usage(cli: Cli, argv: list[str], usage: str) -> None:
    result = cli(*argv)
    assert result.code == EXIT_USAGE
    assert result.err.startswith(usage), result.err
    name = usage.removeprefix("usage: ").strip()
    assert f"{name}: error: unrecognized arguments: " in result.err


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_option_has_help_and_states_its_default(name: str, parser: Any) -> None:
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        what = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help, f"{what} has no help text"
        if action.default not in (None, False, argparse.SUPPRESS, []):
            assert "default" in action.help, f"{what} does not say its default"


def test_the_documented_exit_codes_are_the_real_ones() -> None:
    text = (DOCS / "cli.rst").read_text(encoding="utf-8")
    table = re.findall(r"^   \* - ``(\d+)``\n     - (.+)$", text, re.M)
    assert [(int(code), meaning) for code, meaning in table] == list(EXIT_CODES)


def test_json_keeps_non_ascii_names(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    local = tmp_path / "Café ☕.txt"
    local.write_text("x")
    assert cli("put", str(local), "--no-progress").code == 0
    listed = cli("ls", "--json")
    assert '"Café ☕.txt"' in listed.out and "\\u" not in listed.out
    # Even where the locale cannot encode it, the JSON is written as UTF-8.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLOUDLESS_")}
    env.update(creds.env(), PYTHONIOENCODING="ascii", LC_ALL="C")
    env.pop("KLOUDLESS_API_KEY")
    child = subprocess.run(
        [sys.executable, "-m", "kloudless.cli", "ls", "--json"],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert [i["name"] for i in json.loads(child.stdout.decode("utf-8"))] == ["Café ☕.txt"]


def test_events_have_a_header_and_the_objects_path(
    cli: Cli, creds: Credentials, tmp_path: Path
) -> None:
    assert cli("mkdir", "-p", "/docs/2026").code == 0
    (tmp_path / "a.txt").write_text("a")
    assert cli("put", str(tmp_path / "a.txt"), "--parent", "/docs/2026").code == 0
    lines = cli("events").out.splitlines()
    assert lines[0].split() == ["TIME", "ACTION", "TYPE", "PATH", "(ID)"]
    assert any(" add " in line and " dir " in line and "/docs/2026/ (" in line for line in lines)
    file_line = next(line for line in lines if "a.txt" in line)
    assert " file " in file_line and "/docs/2026/a.txt (" in file_line


def test_all_day_events_show_their_dates(cli: Cli, creds: Credentials) -> None:
    added = cli("cal", "add", "Holiday", "--start", "2030-05-02")
    assert added.code == 0, added.err
    row = next(line for line in added.out.splitlines() if "Holiday" in line)
    assert row.split()[:2] == ["2030-05-02", "2030-05-03"]  # the end is exclusive, as in iCal


def test_mkdir_p_semantics(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    assert cli("mkdir", "-p", "/a/b").code == 0
    again = cli("mkdir", "-p", "/a/b", "--json")
    first_id = json.loads(cli("ls", "/a", "--json").out)[0]["id"]
    assert again.code == 0 and json.loads(again.out)["id"] == first_id  # the same folder
    missing = cli("mkdir", "/x/y")
    assert missing.code == EXIT_NOT_FOUND
    assert (
        missing.err == "kloudless: error: no such folder: /x (use -p to create missing parents)\n"
    )
    (tmp_path / "f").write_text("f")
    assert cli("put", str(tmp_path / "f"), "--parent", "/a").code == 0
    in_the_way = cli("mkdir", "-p", "/a/f/g")
    assert in_the_way.code == EXIT_CONFLICT and "not a folder: a/f is a file" in in_the_way.err
    assert [i["name"] for i in json.loads(cli("ls", "/a", "--json").out)] == ["b", "f"]


def test_local_errors_name_the_destination_not_a_temp_file(
    cli: Cli, creds: Credentials, tmp_path: Path
) -> None:
    (tmp_path / "doc.txt").write_text("d")
    assert cli("put", str(tmp_path / "doc.txt")).code == 0
    too_long = tmp_path / ("x" * 300)  # the download works, the final rename cannot
    result = cli("get", "/doc.txt", str(too_long))
    assert result.code == 1
    assert result.err == f"kloudless: error: File name too long: {too_long}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.txt"]  # no temp file left


def test_retries_are_announced(
    cli: Cli, creds: Credentials, tmp_path: Path, live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = live_server.base_url.rsplit("/", 1)[-1].split(":")
    (tmp_path / "r.txt").write_text("retry me")
    with FaultProxy((host, int(port))) as proxy:
        answered: list[str] = []

        def first_upload_503(method: str, target: str) -> str | None:
            if method == "POST" and target.split("?")[0].endswith("/storage/files"):
                answered.append(target)
                return "503" if len(answered) == 1 else None
            return None

        proxy.override = first_upload_503
        result = cli("put", str(tmp_path / "r.txt"), "--base-url", proxy.base_url, "--json")
        assert result.code == 0, result.err
        assert len(answered) == 2
        assert re.fullmatch(
            r"kloudless: retrying in \d+(\.\d)?s \(attempt 2/4\) after status 503\n", result.err
        ), result.err

        # On a terminal the notice goes on the progress bar's line instead.
        monkeypatch.setattr("kloudless.cli.progress._want_bar", lambda enabled: enabled)
        answered.clear()
        shown = cli("put", str(tmp_path / "r.txt"), "--base-url", proxy.base_url)
        assert shown.code == 0, shown.err
        assert "retrying in" in shown.err and "attempt 2/4" in shown.err
        assert "kloudless: retrying" not in shown.err
