"""Sphinx extension: the REST reference, rendered from the server's OpenAPI description.

``.. rest-reference::`` inserts :func:`kloudless.server.apidoc.reference.reference_rst` (a
section per API area, an entry and a ``curl`` example per operation), and the build writes
the OpenAPI document itself to ``openapi.json`` beside the pages.
"""

from __future__ import annotations

import json
import os
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from kloudless.server.api import ROUTES
from kloudless.server.apidoc.document import build
from kloudless.server.apidoc.reference import reference_rst


class RestReference(SphinxDirective):
    """Insert the REST reference (no arguments)."""

    def run(self) -> list[nodes.Node]:
        text = reference_rst(ROUTES)
        container = nodes.section()
        container.document = self.state.document
        lines = StringList(text.splitlines(), source="<rest-reference>")
        # Titles inside: parse as part of the page's own sections.
        self.state.nested_parse(lines, self.content_offset, container, match_titles=True)
        return container.children


def _write_document(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        with open(os.path.join(app.outdir, "openapi.json"), "w", encoding="utf-8") as out:
            json.dump(build(ROUTES), out, indent=1)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("rest-reference", RestReference)
    app.connect("build-finished", _write_document)
    return {"parallel_read_safe": True, "version": "1"}
