"""Find the Python code blocks of the documentation pages.

A block is every ``.. code-block:: python`` directive in ``docs/*.rst``. Blocks run in page order,
sharing one namespace per page, so a page can build on its earlier blocks just as a reader does.
An rst comment ``.. snippet: no-run`` on the line(s) directly above a block excludes it; keep that
rare (it is meant for code that needs a framework around it, such as Django views).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"

NO_RUN_MARKER = ".. snippet: no-run"

_DIRECTIVE = re.compile(
    r"^(?P<indent>\s*)\.\.\s+(?P<name>code-block|code|sourcecode)::\s*(?P<lang>\S*)"
)
_OTHER_PYTHON = re.compile(r"^\s*\.\.\s+(doctest|testcode|ipython)::")

# Languages a code block may use. Python blocks are executed; the others are commands, output or
# configuration files whose accuracy other tests (CLI, server) cover.
#: ``sh``: the REST reference's curl examples (run by tests/openapi/test_rest_examples.py).
ALLOWED_LANGUAGES = {
    "python",
    "console",
    "text",
    "ini",
    "nginx",
    "caddy",
    "json",
    "apacheconf",
    "sh",
}


@dataclass(frozen=True)
class Snippet:
    """One runnable Python block of a documentation page."""

    page: str
    index: int
    line: int
    code: str

    @property
    def name(self) -> str:
        """:returns: a readable test id such as ``storage.rst:42``."""
        return f"{self.page}:{self.line}"


@dataclass(frozen=True)
class Block:
    """Any code block: its page, line (1-based), language and whether it is marked no-run."""

    page: str
    line: int
    directive: str
    language: str
    no_run: bool
    code: str


def _block_body(lines: list[str], start: int, indent: int) -> tuple[str, int]:
    """Collect the indented body of a directive that starts at ``lines[start]``.

    :returns: the dedented body and the index of the first line after it.
    """
    i = start + 1
    # Options such as ``:caption:`` come first, indented deeper than the directive.
    while i < len(lines) and lines[i].strip().startswith(":") and _indent(lines[i]) > indent:
        i += 1
    body: list[str] = []
    while i < len(lines):
        line = lines[i]
        if line.strip() and _indent(line) <= indent:
            break
        body.append(line)
        i += 1
    return textwrap.dedent("\n".join(body)).strip("\n") + "\n", i


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _marked_no_run(lines: list[str], start: int) -> bool:
    """:returns: True when the nearest non-blank line above ``start`` is the no-run marker."""
    i = start - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    return i >= 0 and lines[i].strip() == NO_RUN_MARKER


def blocks_of(path: Path) -> list[Block]:
    """:returns: every code block of one page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    for i, line in enumerate(lines):
        match = _DIRECTIVE.match(line)
        if match:
            code, _ = _block_body(lines, i, len(match.group("indent")))
            found.append(
                Block(
                    page=path.name,
                    line=i + 1,
                    directive=match.group("name"),
                    language=match.group("lang"),
                    no_run=_marked_no_run(lines, i),
                    code=code,
                )
            )
        elif _OTHER_PYTHON.match(line):
            found.append(Block(path.name, i + 1, line.strip(), "python", False, ""))
    return found


def pages() -> list[Path]:
    """:returns: the documentation pages, sorted by name."""
    return sorted(DOCS_DIR.glob("*.rst"))


def snippets_of(path: Path) -> list[Snippet]:
    """:returns: the runnable Python blocks of one page, in order."""
    runnable = [
        b for b in blocks_of(path) if b.directive == "code-block" and b.language == "python"
    ]
    return [
        Snippet(page=b.page, index=n, line=b.line, code=b.code)
        for n, b in enumerate(b for b in runnable if not b.no_run)
    ]


def all_snippets() -> list[Snippet]:
    """:returns: the runnable Python blocks of every page."""
    return [s for page in pages() for s in snippets_of(page)]


@dataclass(frozen=True)
class ConsoleCommand:
    """One ``$ command`` line of a ``console`` block and the output lines shown under it."""

    page: str
    line: int
    command: str
    output: tuple[str, ...]

    @property
    def name(self) -> str:
        """:returns: a readable test id such as ``cli.rst:42``."""
        return f"{self.page}:{self.line}"


def console_commands(path: Path) -> list[ConsoleCommand]:
    """:returns: the commands of every ``console`` block of a page, in order. A command line
    ending in ``\\`` goes on on the next line, as in a shell: :attr:`ConsoleCommand.command`
    keeps the backslash-newlines (``bash -c`` runs it as shown)."""
    found: list[ConsoleCommand] = []
    for block in blocks_of(path):
        if block.language != "console":
            continue
        current: list[str] = []
        start = 0
        command = ""
        continued = False
        # The body starts two lines below the directive (directive, blank line, body).
        for offset, text in enumerate(block.code.splitlines()):
            if continued:
                command += "\n" + text
                continued = text.endswith("\\")
            elif text.startswith("$ "):
                if command:
                    found.append(ConsoleCommand(path.name, start, command, tuple(current)))
                command, current, start = text[2:], [], block.line + 2 + offset
                continued = text.endswith("\\")
            elif command:
                current.append(text)
        if command:
            found.append(ConsoleCommand(path.name, start, command, tuple(current)))
    return found
