"""Check the shell commands shown in the documentation.

* Every ``$ kloudless ...`` line of every page is parsed by the real command-line parser, so a
  renamed command or option breaks the build; ``make`` targets and ``examples/`` scripts named in
  commands must exist.
* The ``console`` blocks of ``cli.rst`` are run for real, in order, in a temporary folder, with the
  ``kloudless`` command of this checkout and the ``KLOUDLESS_*`` variables of a fresh account on the
  test server (see ``conftest.py``). Output lines shown under a command must match its output
  (stdout and stderr together) exactly; a command shown without output only has to succeed. A
  command may fail only when its shown output is a ``kloudless: error:`` line.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rst_snippets import DOCS_DIR, ConsoleCommand, console_commands, pages

ROOT = DOCS_DIR.parent
BIN_DIR = Path(sys.executable).parent
COMMANDS = [c for page in pages() for c in console_commands(page)]
CLI_COMMANDS = [c for c in COMMANDS if c.page == "cli.rst"]
COMMAND_TIMEOUT = 120
_SHELL_OPERATORS = {">", ">>", "<", "|", "||", "&&", ";", "&", "2>", "2>&1"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _words(command: str) -> list[str]:
    """The words of the first simple command of a line, without leading VAR=value assignments."""
    words = []
    # A backslash-newline continues the command line (the shell drops both characters).
    for word in shlex.split(command.replace("\\\n", " "), comments=True):
        if word in _SHELL_OPERATORS:
            break
        words.append(word)
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    return words


@pytest.mark.parametrize("command", COMMANDS, ids=[c.name for c in COMMANDS])
def test_command_is_valid(command: ConsoleCommand) -> None:
    """The command, its sub-command and its options exist."""
    from kloudless.cli import build_parser

    words = _words(command.command)
    assert words, f"{command.name}: empty command"
    program = os.path.basename(words[0])
    if program == "kloudless":
        try:
            build_parser().parse_args(words[1:])
        except SystemExit as exc:
            pytest.fail(f"{command.name}: `{command.command}` is refused by the parser ({exc})")
    elif program == "make":
        makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
        for target in words[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), (
                f"{command.name}: no make target {target!r}"
            )
    elif program.startswith("python"):
        scripts = [w for w in words[1:] if w.endswith(".py")]
        for script in scripts:
            assert (ROOT / script).is_file(), f"{command.name}: {script} does not exist"


def test_console_blocks_found() -> None:
    """The extraction finds the commands (a broken parser would silently check nothing)."""
    assert len(CLI_COMMANDS) >= 10
    assert any(c.page == "server.rst" for c in COMMANDS)


def test_cli_page_runs(doc_server: Any, tmp_path: Path) -> None:
    """The command-line page's examples give the output it shows."""
    creds = doc_server.new_account()
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}",
        KLOUDLESS_BASE_URL=creds.base_url,
        KLOUDLESS_TOKEN=creds.token,
        KLOUDLESS_APP_ID=creds.app_id,
        KLOUDLESS_API_KEY=creds.api_key,
        KLOUDLESS_ACCOUNT_ID=str(creds.account_id),
        TZ="UTC",
        PYTHONIOENCODING="utf-8",
        COLUMNS="120",
    )
    for command in CLI_COMMANDS:
        result = _run_shell(command, tmp_path, env, stderr=subprocess.STDOUT)
        shown = list(command.output)
        got = result.stdout.rstrip("\n").splitlines()
        expect_error = bool(shown) and shown[0].startswith("kloudless: error:")
        if expect_error:
            assert result.returncode != 0, f"{command.name}: `{command.command}` should fail"
        else:
            assert result.returncode == 0, (
                f"{command.name}: `{command.command}` exited {result.returncode}:\n{result.stdout}"
            )
        if shown:
            assert got == shown, f"{command.name}: `{command.command}` printed:\n{result.stdout}"


def _run_shell(
    command: ConsoleCommand, cwd: Path, env: dict[str, str], stderr: int
) -> subprocess.CompletedProcess[str]:
    """Run one documented command line with bash (a here-string feeds its own standard input)."""
    return subprocess.run(
        ["bash", "-c", command.command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


CURL_COMMANDS = [c for c in COMMANDS if _words(c.command)[:1] == ["curl"]]


def test_curl_examples_run(doc_server: Any, tmp_path: Path) -> None:
    """Every ``$ curl ...`` example runs against the server and answers JSON (``--fail-with-body``
    makes an HTTP error a failure); the credentials come from the environment, as in a shell
    where the first start's ``export`` lines were pasted."""
    import json
    import shutil

    assert CURL_COMMANDS, "the management API examples use curl"
    assert shutil.which("curl"), "curl runs the server guide's examples; install it"
    env = dict(
        os.environ,
        KLOUDLESS_BASE_URL=doc_server.base_url,
        KLOUDLESS_DEVELOPER_KEY=doc_server.developer_key,
    )
    for command in CURL_COMMANDS:
        result = _run_shell(command, tmp_path, env, stderr=subprocess.PIPE)
        assert result.returncode == 0, f"{command.name}: {result.stdout}{result.stderr or ''}"
        answer = json.loads(result.stdout)
        assert answer["api"] == "meta", f"{command.name}: {answer}"
        assert doc_server.developer_key not in result.stdout
