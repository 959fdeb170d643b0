"""Charts of recorded benchmark results (matplotlib, SVG), drawn from the data file alone.

:func:`render_all` draws every chart whose tables the run recorded; ``python -m benchmarks
--record`` calls it, and so does the docs build (``docs/_ext/benchmark_charts.py``, the
``benchmark-chart`` directive of ``docs/performance.rst``), so the charts always show the data
of ``docs/performance.json`` (:mod:`benchmarks.results`). The cells of the tables are the
numbers shown in the tables: ``1,044``, ``0.56x`` and ``12.3 MiB`` are read back as numbers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._util import Table
from .results import find_table, load

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Where the charts go, beside the page (the docs build writes the same files).
TARGET_DIR = os.path.join("_generated", "charts")
#: Same data, same file: fixed ids in the SVG and no timestamp.
_SVG_SALT = "kloudless-benchmarks"
_COLOURS = ("#1f5fa8", "#e07b00", "#2e8b57", "#9b3d9b", "#6b6b6b")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def number(cell: str) -> float | None:
    """:returns: the first number of a table cell (``"1,044"``, ``"0.56x"``, ``"12.3 MiB"``),
    or None for ``-`` and text."""
    match = _NUMBER.search(cell)
    return float(match.group().replace(",", "")) if match else None


def column(table: Table, name: str) -> int:
    """:returns: the index of the column called ``name``. :raises KeyError: no such column."""
    try:
        return list(table.columns).index(name)
    except ValueError:
        raise KeyError(f"{table.title}: no column {name!r}") from None


@dataclass(frozen=True)
class Chart:
    """One chart: its file name, the tables it needs and how to draw it."""

    name: str
    tables: tuple[str, ...]
    draw: Callable[[Figure, dict[str, Table]], None]
    size: tuple[float, float] = (7.5, 4.2)


def _sdk_ratios(fig: Figure, tables: dict[str, Table]) -> None:
    """Speed of the SDK relative to bare requests (1.00 = the same), with the goals."""
    bars: list[tuple[str, float, float | None]] = []
    picks = [
        ("1a", "kloudless Account.get", "1a. per request (Account.get)", 0.90),
        ("2", "get_paging_iterator()", "2. paging (get_paging_iterator)", None),
        ("3", "Resource.download(file object)", "3. download to a file object", 0.95),
        ("4", "account.upload(), one POST", "4. upload, one POST", None),
        ("4", "account.upload(), multipart serial", "4. upload, multipart serial", None),
        ("4", "account.upload(), multipart 4 parallel", "4. upload, 4 parallel parts", None),
        ("4b", "with an Idempotency-Key", "4b. POST with a key vs without", 0.95),
    ]
    for number_, row_name, label, goal in picks:
        table = tables.get(number_)
        if table is None:
            continue
        index = column(table, "ratio")
        for row in table.rows:
            value = number(row[index]) if row[0].startswith(row_name) else None
            if value is not None:
                bars.append((label, value, goal))
    ax = fig.subplots()
    positions = list(range(len(bars)))[::-1]
    values = [value for _, value, _ in bars]
    ax.barh(positions, values, color=_COLOURS[0], height=0.6)
    for y, (_, value, goal) in zip(positions, bars):
        ax.text(value + 0.01, y, f"{value:.2f}x", va="center", fontsize=9)
        if goal is not None:
            ax.plot([goal, goal], [y - 0.4, y + 0.4], color=_COLOURS[1], linewidth=2.5)
    ax.axvline(1.0, color="#444444", linewidth=1, linestyle="--")
    ax.set_yticks(positions, [label for label, _, _ in bars])
    ax.set_xlim(0, max([1.2, *values]) * 1.12)
    ax.set_xlabel("speed relative to bare requests in the same run (1.00x = as fast)")
    ax.plot([], [], color=_COLOURS[1], linewidth=2.5, label="goal")
    ax.legend(loc="lower right", fontsize=9, frameon=False)
    _tidy(ax)


def _by_workload(table: Table, value: str) -> dict[str, list[tuple[float, float]]]:
    """:returns: ``{workload: [(clients, value), ...]}`` of a throughput table."""
    clients, index = column(table, "clients"), column(table, value)
    series: dict[str, list[tuple[float, float]]] = {}
    for row in table.rows:
        level, figure = number(row[clients]), number(row[index])
        if level is not None and figure is not None:
            series.setdefault(row[0], []).append((level, figure))
    return series


def _server_throughput(fig: Figure, tables: dict[str, Table]) -> None:
    """Requests per second of each workload at 1, 4 and 16 clients (grouped bars)."""
    series = _by_workload(tables["5"], "requests/s")
    ax = fig.subplots()
    levels = sorted({level for points in series.values() for level, _ in points})
    width = 0.8 / max(1, len(levels))
    for i, level in enumerate(levels):
        xs, ys = [], []
        for x, points in enumerate(series.values()):
            for at, figure in points:
                if at == level:
                    xs.append(x - 0.4 + width * (i + 0.5))
                    ys.append(figure)
        ax.bar(xs, ys, width=width * 0.9, color=_COLOURS[i % len(_COLOURS)],
               label=f"{level:g} client{'s' if level != 1 else ''}")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(range(len(series)), [_wrap(name) for name in series], fontsize=9)
    ax.set_ylabel("requests/s (log scale)")
    ax.legend(fontsize=9, frameon=False)
    _tidy(ax, "y")


def _server_latency(fig: Figure, tables: dict[str, Table]) -> None:
    """Median and 99th-percentile latency of each workload by the number of clients."""
    p50, p99 = _by_workload(tables["5"], "p50 ms"), _by_workload(tables["5"], "p99 ms")
    ax = fig.subplots()
    for i, name in enumerate(p50):
        colour = _COLOURS[i % len(_COLOURS)]
        xs, ys = zip(*p50[name])
        ax.plot(xs, ys, marker="o", color=colour, label=f"{name}: median")
        if name in p99:
            xs, ys = zip(*p99[name])
            ax.plot(xs, ys, marker="^", linestyle="--", color=colour, label="99th percentile")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    levels = sorted({x for points in p50.values() for x, _ in points})
    ax.set_xticks(levels, [f"{x:g}" for x in levels])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("latency, ms (log scale)")
    ax.legend(fontsize=7.5, frameon=False, ncol=2, loc="upper left")
    _tidy(ax, "both")


def _ratio_bars(
    fig: Figure, table: Table, group: str, ratio_column: str, xlabel: str, baseline: str
) -> None:
    """Horizontal bars of a ratio column, one per row, labelled by workload and ``group``."""
    groups, ratios = column(table, group), column(table, ratio_column)
    rows = [(f"{row[0]}, {row[groups]} {group}", number(row[ratios])) for row in table.rows]
    shown = [(label, value) for label, value in rows if value is not None]
    ax = fig.subplots()
    positions = list(range(len(shown)))[::-1]
    values = [value for _, value in shown]
    ax.barh(positions, values, color=_COLOURS[0], height=0.6)
    for y, value in zip(positions, values):
        ax.text(value + 0.01, y, f"{value:.2f}x", va="center", fontsize=8)
    ax.axvline(1.0, color="#444444", linewidth=1, linestyle="--", label=baseline)
    ax.set_yticks(positions, [label for label, _ in shown], fontsize=8)
    ax.set_xlim(0, max([1.2, *values]) * 1.15)
    ax.set_xlabel(xlabel)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    _tidy(ax)


def _blobstores(fig: Figure, tables: dict[str, Table]) -> None:
    """Requests per second with blobs in S3 (moto) relative to files in the data dir."""
    _ratio_bars(
        fig, tables["6"], "clients", "S3 / files", "S3 relative to files (1.00x = as fast)",
        "files in the data dir",
    )  # fmt: skip


def _scale(fig: Figure, tables: dict[str, Table]) -> None:
    """Requests per second of N workers relative to one SQLite worker."""
    table = tables["7"]
    databases, workers = column(table, "database"), column(table, "workers")
    relabelled = Table(
        table.title,
        ["workload", "setup", "ratio"],
        [
            [row[0], f"{row[databases]} x{row[workers]}", row[column(table, "vs 1 SQLite worker")]]
            for row in table.rows
        ],
    )
    _ratio_bars(
        fig, relabelled, "setup", "ratio", "requests/s relative to one SQLite worker",
        "one SQLite worker",
    )  # fmt: skip


def _peers(fig: Figure, tables: dict[str, Table]) -> None:
    """kloudless against WsgiDAV and rclone serve webdav doing the same operations."""
    table = tables["8"]
    peers = [name for name in table.columns if name.startswith("vs ")]
    ax = fig.subplots()
    operations = [row[0] for row in table.rows]
    width = 0.8 / max(1, len(peers))
    for i, peer in enumerate(peers):
        index = column(table, peer)
        xs = [x - 0.4 + width * (i + 0.5) for x in range(len(operations))]
        ys = [number(row[index]) or 0.0 for row in table.rows]
        ax.bar(xs, ys, width=width * 0.9, color=_COLOURS[i % len(_COLOURS)], label=peer)
    ax.axhline(1.0, color="#444444", linewidth=1, linestyle="--")
    ax.set_xticks(range(len(operations)), [_wrap(name, 12) for name in operations], fontsize=9)
    ax.set_ylabel("kloudless relative to the peer (1.00x = as fast)")
    ax.legend(fontsize=9, frameon=False)
    _tidy(ax, "y")


def _wrap(text: str, width: int = 16) -> str:
    """:returns: ``text`` broken into lines of about ``width`` characters (axis labels)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def _tidy(ax: Axes, grid: Literal["both", "x", "y"] = "x") -> None:
    """Light grid lines along ``grid`` (``x``, ``y`` or ``both``), no top or right frame."""
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(axis=grid, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


#: Every chart, by file name (without ``.svg``).
CHARTS: dict[str, Chart] = {
    chart.name: chart
    for chart in (
        Chart("sdk-ratios", ("1a", "2", "3", "4", "4b"), _sdk_ratios),
        Chart("server-throughput", ("5",), _server_throughput),
        Chart("server-latency", ("5",), _server_latency),
        Chart("blobstores", ("6",), _blobstores, (7.5, 5.0)),
        Chart("scale", ("7",), _scale, (7.5, 5.0)),
        Chart("peers", ("8",), _peers),
    )
}


def available(data: dict[str, Any], name: str) -> bool:
    """:returns: whether the recorded ``data`` holds the first table of chart ``name`` (the
    others are drawn when they are there)."""
    return find_table(data, CHARTS[name].tables[0]) is not None


def render(data: dict[str, Any], name: str, path: str) -> bool:
    """Draw chart ``name`` of ``data`` into the SVG file ``path`` (replaced atomically).

    :returns: False, writing nothing, when the run did not record the chart's table.
    """
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    chart = CHARTS[name]
    tables: dict[str, Table] = {}
    for wanted in chart.tables:
        table = find_table(data, wanted)
        if table is not None:
            tables[wanted] = table
    if chart.tables[0] not in tables:
        return False
    fig = Figure(figsize=chart.size, layout=ConstrainedLayoutEngine(w_pad=0.1, h_pad=0.1))
    chart.draw(fig, tables)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with _svg_salt():
            fig.savefig(tmp, format="svg", metadata={"Date": None})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


class _svg_salt:
    """Set matplotlib's SVG id salt for one save (ids derive from it: same data, same file)."""

    def __enter__(self) -> None:
        import matplotlib

        self._old = matplotlib.rcParams["svg.hashsalt"]
        matplotlib.rcParams["svg.hashsalt"] = _SVG_SALT

    def __exit__(self, *exc: object) -> None:
        import matplotlib

        matplotlib.rcParams["svg.hashsalt"] = self._old


def render_all(data_file: str, folder: str, names: Sequence[str] | None = None) -> list[str]:
    """Draw the charts of a data file into ``folder`` as ``NAME.svg``.

    :returns: the paths written (charts whose tables the run lacks are left out).
    """
    data = load(data_file)
    written = []
    for name in names or list(CHARTS):
        path = os.path.join(folder, f"{name}.svg")
        if render(data, name, path):
            written.append(path)
    return written
