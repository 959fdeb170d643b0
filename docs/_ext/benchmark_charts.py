"""Sphinx extension: the ``benchmark-chart`` directive, charts drawn from recorded results.

::

   .. benchmark-chart:: server-latency
      :alt: what the chart shows, for readers who cannot see it

      The caption.

draws chart ``server-latency`` of :mod:`benchmarks.charts` from the page's data file
(``performance.json`` beside ``performance.rst``, written by ``python -m benchmarks
--record``) into ``_generated/charts/server-latency.svg`` and shows it as a figure. When the
recorded run lacks the chart's table, the page says so instead. Editing the data file rebuilds
the page.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

from benchmarks import charts
from benchmarks.results import data_path, load


class BenchmarkChart(SphinxDirective):
    """A chart of the page's recorded benchmark results (argument: the chart's name)."""

    required_arguments = 1
    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {"alt": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        if name not in charts.CHARTS:
            raise ExtensionError(f"no benchmark chart {name!r}; there are {sorted(charts.CHARTS)}")
        page = self.env.doc2path(self.env.docname)
        data_file = data_path(str(page))
        self.env.note_dependency(data_file)
        data = load(data_file)
        if not charts.available(data, name):
            note = nodes.paragraph(
                text=f"(No chart {name}: the recorded run has no table "
                f"{charts.CHARTS[name].tables[0]}.)"
            )
            return [note]
        relative = os.path.join(charts.TARGET_DIR, f"{name}.svg")
        charts.render(data, name, os.path.join(self.env.srcdir, relative))
        alt = self.options.get("alt", name)
        lines = [
            f".. figure:: /{relative.replace(os.sep, '/')}",
            f"   :alt: {' '.join(alt.split())}",
            "   :width: 100%",
            "",
            *[f"   {line}" for line in self.content],
        ]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=data_file), self.content_offset, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("benchmark-chart", BenchmarkChart)
    return {"parallel_read_safe": True, "version": "1"}
