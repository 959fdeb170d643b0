"""A new user's first hour, for real: the README's and the getting-started page's commands, in
order, in a fresh copy of the checkout in a temporary folder (issue #18).

Every command of those pages is either run as written or listed in :data:`NOT_RUN` with the
reason, so a new command on either page fails this test until it is classified. Two changes are
made to what a reader types, both for this shared test machine: ``kloudless serve`` gets
``--port 0`` (a free port instead of 8002, which another process may hold), and the placeholders
(``export KLOUDLESS_TOKEN=...``, ``YOUR_BEARER_TOKEN``) are the values the server printed at its
first start, as the reader copies them.

It creates a virtual environment and installs the project there (``make demo``, then ``make
dist`` with the development tools): pip takes the packages from its cache or the package index.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rst_snippets import blocks_of

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.rst"
GETTING_STARTED = ROOT / "docs" / "getting-started.rst"
#: One command may take this long (``make demo`` and ``make dist`` install packages).
COMMAND_TIMEOUT = 900
SERVER_START_TIMEOUT = 120
#: Commands of the pages that are not run here, and why.
NOT_RUN = {
    "make test": "this test is part of `make test`: running it here would never end",
    'pip install "kloudless-compat[server,cli]"': (
        "the index line of the README: the name is not published on the index yet"
    ),
}
#: What pip prints about this machine's pip configuration (a missing local index), not about
#: the project.
_PIP_CONFIG_NOISE = re.compile(r"^WARNING: Location 'file:///opt/")
#: Warnings a new user must not see.
_WARNINGS = re.compile(r"warning|traceback|deprecat", re.IGNORECASE)

pytestmark = pytest.mark.timeout(3600)


def _shell_commands(page: Path) -> list[str]:
    """:returns: the commands of the page's ``sh`` and ``console`` blocks, in order."""
    commands: list[str] = []
    for block in blocks_of(page):
        if block.language == "sh":
            lines = [line for line in block.code.splitlines() if line.strip()]
            commands += [line for line in lines if not line.lstrip().startswith("#")]
        elif block.language == "console":
            commands += [line[2:] for line in block.code.splitlines() if line.startswith("$ ")]
    return [re.sub(r"\s+#\s.*$", "", c).strip() for c in commands]


def _python_blocks(page: Path) -> list[str]:
    return [b.code for b in blocks_of(page) if b.language == "python" and not b.no_run]


def _fresh_checkout(dest: Path) -> Path:
    """Copy what a clone of the working tree holds (tracked and new files, not ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is not there
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


class Walk:
    """The reader's shell: one folder, one environment, commands run one after the other."""

    def __init__(self, checkout: Path) -> None:
        self.cwd = checkout
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KLOUDLESS_")}
        # Not the test's own virtual environment: the reader's shell has none active; nor this
        # machine's PYTHONDONTWRITEBYTECODE, which makes setuptools warn while building.
        self.env.pop("VIRTUAL_ENV", None)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        outer_bin = str(Path(sys.executable).parent)
        path = [p for p in self.env.get("PATH", "").split(os.pathsep) if p != outer_bin]
        self.env["PATH"] = os.pathsep.join([str(checkout / ".venv" / "bin"), *path])
        self.server: subprocess.Popen[str] | None = None
        self.server_output: list[str] = []
        self.printed: dict[str, str] = {}
        self.reader: threading.Thread | None = None

    def _shell(self) -> dict[str, Any]:
        """The settings of every command: this folder and environment, output and errors as
        one text stream, nothing on standard input."""
        return {
            "cwd": self.cwd,
            "env": self.env,
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.STDOUT,
            "text": True,
        }

    def run(self, command: str) -> str:
        result = subprocess.run(
            ["bash", "-c", command], **self._shell(), timeout=COMMAND_TIMEOUT, check=False
        )
        assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{result.stdout}"
        noise = [
            line
            for line in result.stdout.splitlines()
            if _WARNINGS.search(line) and not _PIP_CONFIG_NOISE.match(line)
        ]
        assert not noise, f"`{command}` printed warnings:\n" + "\n".join(noise)
        return result.stdout

    def start_server(self, command: str) -> None:
        """Start ``kloudless serve`` in the background; take its first-start ``export`` lines."""
        assert self.server is None
        self.server = subprocess.Popen(["bash", "-c", f"exec {command} --port 0"], **self._shell())
        lines: list[str] = []
        stream = self.server.stdout
        reader = threading.Thread(target=lambda: lines.extend(stream or []), daemon=True)
        reader.start()
        self.reader = reader
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline and not any("KLOUDLESS_TOKEN=" in x for x in lines):
            assert self.server.poll() is None, "".join(lines)
            time.sleep(0.2)
        exports = dict(re.findall(r"^\s*export (KLOUDLESS_\w+)=(\S+)$", "".join(lines), re.M))
        assert {"KLOUDLESS_BASE_URL", "KLOUDLESS_TOKEN", "KLOUDLESS_API_KEY"} <= set(exports), (
            "".join(lines)
        )
        self.printed = {name: shlex.split(value)[0] for name, value in exports.items()}
        # The reader pastes the export lines the server printed (both pages say so).
        self.env.update(self.printed)
        self.server_output = lines

    def export(self, command: str) -> None:
        """``export NAME=value``: the value the reader copies (the printed one for ``...``)."""
        name, _, value = command.removeprefix("export ").partition("=")
        # The base URL's port is the free one the server took (see the module docstring).
        if value.startswith("...") or name == "KLOUDLESS_BASE_URL":
            assert name in self.printed, f"the server printed no {name} to copy"
            value = self.printed[name]
        self.env[name] = value

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.send_signal(signal.SIGINT)  # the reader's Ctrl-C
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(timeout=30)
            if self.reader is not None:
                self.reader.join(timeout=30)  # it ends with the server's output
            if self.server.stdout is not None:
                self.server.stdout.close()
            self.server = None

    def python(self, code: str) -> str:
        """Run a page's Python block with the checkout's interpreter, as a reader would."""
        script = self.cwd / "snippet.py"
        script.write_text(code, encoding="utf-8")
        try:
            return self.run(".venv/bin/python snippet.py")
        finally:
            script.unlink()


def _walk(walk: Walk, page: Path) -> list[str]:
    """Run a page's commands; :returns: those run."""
    ran = []
    for command in _shell_commands(page):
        if command in NOT_RUN:
            continue
        ran.append(command)
        words = shlex.split(command) if "$(" not in command else []
        if words and os.path.basename(words[0]) == "kloudless" and words[1:2] == ["serve"]:
            walk.start_server(command)
        elif command.startswith("export "):
            walk.export(command)
        else:
            walk.run(command)
    return ran


def test_the_pages_commands_are_all_classified() -> None:
    """The extraction finds the commands (a broken parser would silently check nothing)."""
    readme, started = _shell_commands(README), _shell_commands(GETTING_STARTED)
    assert "make demo" in readme and "make demo" in started
    assert any(c.startswith("kloudless serve") for c in readme)
    assert any(c.startswith(".venv/bin/kloudless serve") for c in started)
    assert set(NOT_RUN) <= set(readme + started)
    # The index line names the project's own distribution, not the defunct 2.x one.
    assert 'pip install "kloudless-compat[server,cli]"' in readme


def test_readme_and_getting_started_from_a_fresh_checkout(tmp_path: Path) -> None:
    walk = Walk(_fresh_checkout(tmp_path / "checkout"))
    try:
        # docs/getting-started.rst: make demo, a server of one's own, the first ten lines.
        ran = _walk(walk, GETTING_STARTED)
        assert ran[0] == "make demo" and walk.server is not None
        assert "KLOUDLESS_TOKEN" in walk.env
        (first_ten,) = _python_blocks(GETTING_STARTED)
        printed = walk.python(first_ten)
        assert "b'Hello, world!\\n'" in printed
        walk.stop_server()
        shutil.rmtree(walk.cwd / "kloudless-data")

        # README.rst: the same from its own lines, then the three ways to install.
        ran = _walk(walk, README)
        assert "make dist" in ran and any(c.startswith("pip install") for c in ran)
        assert sorted(p.name.split("-")[0] for p in (walk.cwd / "dist").iterdir()) == [
            "kloudless_compat",
            "kloudless_compat",
        ]
        (ten_lines,) = _python_blocks(README)
        printed = walk.python(
            ten_lines.replace("YOUR_BEARER_TOKEN", walk.printed["KLOUDLESS_TOKEN"])
        )
        assert "b'Hello!'" in printed
        version = walk.run("kloudless --version")
        assert re.fullmatch(r"kloudless \S+\n", version)
    finally:
        walk.stop_server()
