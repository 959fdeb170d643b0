"""Recorded results: one JSON file per page, the single source of its results block and charts.

``python -m benchmarks --record docs/performance.rst`` writes the run to
``docs/performance.json`` (:func:`data_path`): when, with which command, the machine and every
table (title, columns, rows, notes). The results block of the page, between the
:data:`BEGIN` and :data:`END` comments, is rendered from that data (:func:`render_block`), and
the docs build draws the charts from the same data (:mod:`benchmarks.charts`), so the tables,
the charts and the data cannot disagree (``tests/benchmarks/test_results.py`` checks it).

A run of some benchmarks only (``python -m benchmarks scale server --record ...``) merges into
the recorded data by table number: its tables replace those with the same numbers, the others
stay, each with the date and command of the run that measured it (shown in the block).
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from ._util import Table, rst_escape

BEGIN = ".. BEGIN BENCHMARK RESULTS"
END = ".. END BENCHMARK RESULTS"
#: Version of the JSON layout.
FORMAT = 1


def data_path(page: str) -> str:
    """:returns: the data file of a page: ``docs/performance.rst`` -> ``docs/performance.json``."""
    return os.path.splitext(page)[0] + ".json"


def to_data(
    machine: list[tuple[str, str]],
    tables: list[Table],
    command: str,
    recorded: str | None = None,
) -> dict[str, Any]:
    """:returns: one run as JSON-ready data. :param recorded: ``YYYY-MM-DD HH:MM UTC``
    (default: now)."""
    return {
        "format": FORMAT,
        "recorded": recorded or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command,
        "machine": [list(pair) for pair in machine],
        "tables": [
            {
                "title": t.title,
                "columns": list(t.columns),
                "rows": [list(r) for r in t.rows],
                "notes": list(t.notes),
            }
            for t in tables
        ],
    }


def tables_of(data: dict[str, Any]) -> list[Table]:
    """:returns: the tables of recorded data."""
    return [
        Table(t["title"], t["columns"], [list(r) for r in t["rows"]], list(t["notes"]))
        for t in data["tables"]
    ]


def find_table(data: dict[str, Any], number: str) -> Table | None:
    """:returns: the table whose title starts with ``number`` (``"5"``, ``"1a"``), if recorded."""
    for table in tables_of(data):
        if table.title.split(".", 1)[0] == number:
            return table
    return None


def number_of(title: str) -> str:
    """:returns: a table's number: the title before its first ``.`` (``"5b"``)."""
    return title.split(".", 1)[0]


def _order(number: str) -> tuple[int, str]:
    match = re.match(r"(\d+)(.*)", number)
    return (int(match.group(1)), match.group(2)) if match else (1 << 30, number)


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """:returns: ``new`` with the tables of ``old`` whose numbers ``new`` lacks, each kept
    with its own ``recorded`` and ``command`` (from ``old`` unless it already had them), all
    in table number order."""
    fresh = {number_of(t["title"]) for t in new["tables"]}
    kept = [
        {
            **t,
            "recorded": t.get("recorded", old["recorded"]),
            "command": t.get("command", old["command"]),
        }
        for t in old["tables"]
        if number_of(t["title"]) not in fresh
    ]
    tables = sorted(kept + new["tables"], key=lambda t: _order(number_of(t["title"])))
    return {**new, "tables": tables}


def save(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` (indented, one cell per line: readable diffs)."""
    with open(path, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1, ensure_ascii=False)
        out.write("\n")


def load(path: str) -> dict[str, Any]:
    """:returns: the data recorded in ``path``. :raises ValueError: another format."""
    with open(path, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not benchmark results of format {FORMAT}")
    return data


def render_block(data: dict[str, Any]) -> str:
    """:returns: the page's results block for ``data``, from the :data:`BEGIN` line up to (not
    including) the :data:`END` line."""
    lines = [
        BEGIN + " (written by python -m benchmarks --record; do not edit by hand)",
        "",
        f"Recorded on {data['recorded']} with ``{data['command']}``.",
        "",
    ]
    earlier: dict[tuple[str, str], list[str]] = {}
    for t in data["tables"]:
        if "recorded" in t:
            earlier.setdefault((t["recorded"], t["command"]), []).append(number_of(t["title"]))
    for (recorded, command), numbers in earlier.items():
        plural = "Tables" if len(numbers) > 1 else "Table"
        lines += [
            f"{plural} {', '.join(numbers)}: recorded on {recorded} with ``{command}``.",
            "",
        ]
    lines += [".. list-table:: Machine", ""]
    for name, value in data["machine"]:
        lines += [f"   * - {rst_escape(name)}", f"     - {rst_escape(value)}"]
    lines.append("")
    for table in tables_of(data):
        lines += [table.render_rst(), ""]
    return "\n".join(lines)


def block_of(text: str) -> str:
    """:returns: the results block of a page's text (as :func:`render_block` makes it).
    :raises ValueError: the page has no block."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no '{BEGIN}' ... '{END}' block")
    return text[start:end]


def write_block(page: str, data: dict[str, Any]) -> None:
    """Replace the results block of ``page`` with the one rendered from ``data``."""
    with open(page, encoding="utf-8") as fh:
        text = fh.read()
    try:
        old = block_of(text)
    except ValueError as exc:
        raise SystemExit(f"{page}: {exc}") from None
    start = text.find(BEGIN)
    text = text[:start] + render_block(data) + text[start + len(old) :]
    with open(page, "w", encoding="utf-8") as out:
        out.write(text)


def record(
    path: str,
    machine: list[tuple[str, str]],
    tables: list[Table],
    command: str,
    keep_others: bool = False,
) -> str:
    """Record a run for the page ``path``: its data file, then its results block.

    :param keep_others: merge into the recorded data (:func:`merge`): keep the tables this
        run did not measure.
    :returns: the data file's path."""
    data = to_data(machine, tables, command)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        block_of(text)  # refuse a page without a block before writing anything
    except ValueError as exc:
        raise SystemExit(f"{path}: {exc}") from None
    target = data_path(path)
    if keep_others and os.path.exists(target):
        data = merge(load(target), data)
    save(target, data)
    write_block(path, data)
    return target
