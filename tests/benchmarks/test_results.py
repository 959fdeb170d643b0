"""The recorded benchmark results: one data file, the source of the page's tables and charts.

* ``docs/performance.rst``'s results block is exactly what ``docs/performance.json`` renders to
  (nobody edited one without the other).
* ``record()`` writes the data file, then the block from it; it refuses a page without a block
  before writing anything.
* Every chart draws from tables shaped like the benchmarks' own (the smoke test draws the
  charts of a real ``--quick`` run too), reproducibly, and a chart whose table the run lacks is
  left out rather than drawn empty.
* The profile rows (1c) show dotted function names.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import charts  # noqa: E402
from benchmarks._profile import readable_name  # noqa: E402
from benchmarks._util import Table  # noqa: E402
from benchmarks.results import (  # noqa: E402
    BEGIN,
    END,
    block_of,
    data_path,
    find_table,
    load,
    record,
    render_block,
    save,
    to_data,
)

PAGE = ROOT / "docs" / "performance.rst"
MACHINE = [("CPU", "test"), ("Cores", "2 physical, 2 logical")]


def _columns(names: str) -> list[str]:
    """:returns: ``"a|b"`` as ``["a", "b"]`` (the column names of a benchmark table)."""
    return names.split("|")


def _rows(*rows: str) -> list[list[str]]:
    """:returns: ``"a|b", "c|d"`` as rows of cells."""
    return [row.split("|") for row in rows]


def _tables() -> list[Table]:
    """One table per chart, with the titles and columns the benchmark modules write."""
    return [
        Table(
            "1a. Per-request overhead: GET storage/folders/root on the local server",
            ["client", "requests", "requests/s", "ms/request", "client CPU us/request", "ratio"],
            [
                ["bare requests.Session", "6000", "1160", "0.86", "485", "1.00x"],
                ["kloudless Account.get", "6000", "1138", "0.88", "503", "0.98x"],
            ],
            ["Ratio: ...; goal >= 0.90x: met."],
        ),
        Table(
            "2. Paging 100,000 items, page_size 1000 (stub server on loopback)",
            ["client", "items/s", "ratio"],
            [["bare requests loop", "210,938", "1.00x"], ["get_paging_iterator()", "1", "0.63x"]],
        ),
        Table(
            "3. Download of a 1024.0 MiB file from the local server (chunk size 1 MiB)",
            _columns("client|runs|MiB/s|ratio"),
            _rows(
                "bare requests iter_content|16|4108|1.00x",
                "Resource.download(file object)|16|4086|0.96x",
            ),
        ),
        Table(
            "4. Upload of a 1024.0 MiB file to the local server (part size 8.0 MiB)",
            _columns("client|MiB/s|ratio"),
            _rows(
                "bare requests streamed POST (mean of first and last run)|249|1.00x",
                "account.upload(), one POST|208|0.84x",
                "account.upload(), multipart serial|133|0.53x",
                "account.upload(), multipart 4 parallel|205|0.83x",
            ),
        ),
        Table(
            "4b. Streamed POST of 256.0 MiB with and without an Idempotency-Key, interleaved",
            _columns("POST|pairs|median MiB/s|ratio"),
            _rows("without a key|6|20|1.00x", "with an Idempotency-Key|6|17|1.15x"),
        ),
        Table(
            "5. Local server throughput (10,000-file folder, 4 KiB files)",
            _columns("workload|clients|requests|requests/s|p50 ms|p99 ms|vs bare waitress"),
            [
                [name, str(level), "100", f"{rate * level:,}", "1.0", "2.5", "0.50x"]
                for name, rate in (("bare waitress", 1500), ("list folder, page of 1000", 20))
                for level in (1, 4, 16)
            ],
        ),
        Table(
            "6. Blob stores: files vs S3 (moto on loopback)",
            _columns("workload|clients|files req/s|files p50 ms|S3 req/s|S3 p50 ms|S3 / files"),
            [["download 4 KiB", "1", "900.0", "1.1", "300.0", "3.3", "0.33x"]],
        ),
        Table(
            "7. Workers and databases (2,000-file folder, 4 KiB files)",
            _columns(
                "workload|database|workers|requests|requests/s|p50 ms|p99 ms|vs 1 SQLite worker"
            ),
            [
                ["download 4 KiB file", "SQLite", "1", "10", "900", "1", "2", "1.00x"],
                ["download 4 KiB file", "PostgreSQL", "2", "10", "1200", "1", "2", "1.33x"],
            ],
        ),
        Table(
            "8. Peers: the same operations against WsgiDAV and rclone serve webdav",
            _columns(
                "operation|unit|kloudless|WsgiDAV|rclone serve webdav|vs WsgiDAV|vs rclone|goal"
            ),
            [["GET 4 KiB", "requests/s", "900", "600", "1200", "1.50x", "0.75x", "-"]],
        ),
    ]


def test_the_page_shows_the_recorded_data() -> None:
    """docs/performance.rst's block is what docs/performance.json renders: one source."""
    data = load(data_path(str(PAGE)))
    assert block_of(PAGE.read_text(encoding="utf-8")) == render_block(data), (
        "the results block and docs/performance.json differ: record again "
        "(python -m benchmarks --record docs/performance.rst), never edit one by hand"
    )
    assert find_table(data, "1a") is not None and find_table(data, "5") is not None


def test_record_writes_the_data_then_the_block(tmp_path: Path) -> None:
    page = tmp_path / "perf.rst"
    page.write_text(f"Perf\n====\n\n{BEGIN}\n\nOLD FIGURES\n\n{END}\n\nAfter.\n", encoding="utf-8")
    written = record(str(page), MACHINE, _tables(), "python -m benchmarks")
    assert written == str(tmp_path / "perf.json")
    data = load(written)
    assert [t["title"].split(".")[0] for t in data["tables"]] == [
        "1a", "2", "3", "4", "4b", "5", "6", "7", "8",
    ]  # fmt: skip
    text = page.read_text(encoding="utf-8")
    assert block_of(text) == render_block(data)
    assert "OLD FIGURES" not in text and text.endswith(f"{END}\n\nAfter.\n")
    assert "| Ratio: ...; goal >= 0.90x: met." in text


def test_a_run_of_some_benchmarks_replaces_only_its_tables(tmp_path: Path) -> None:
    page = tmp_path / "perf.rst"
    page.write_text(f"Perf\n====\n\n{BEGIN}\n\n{END}\n", encoding="utf-8")
    record(str(page), MACHINE, _tables(), "python -m benchmarks")
    first = load(data_path(str(page)))
    again = [
        Table("7. Workers and stores (new)", ["workload", "ratio"], [["list", "1.90x"]]),
        Table("5c. A new table", ["workload"], [["x"]]),
    ]
    record(str(page), MACHINE, again, "python -m benchmarks scale", keep_others=True)
    data = load(data_path(str(page)))
    numbers = [t["title"].split(".")[0] for t in data["tables"]]
    assert numbers == ["1a", "2", "3", "4", "4b", "5", "5c", "6", "7", "8"]
    assert find_table(data, "7") is not None
    assert find_table(data, "7").rows == [["list", "1.90x"]]  # type: ignore[union-attr]
    assert data["command"] == "python -m benchmarks scale"
    kept = [t for t in data["tables"] if "recorded" in t]
    assert len(kept) == 8 and {t["command"] for t in kept} == {"python -m benchmarks"}
    assert all(t["recorded"] == first["recorded"] for t in kept)
    # The block says which tables come from which run, and still renders from the data.
    text = page.read_text(encoding="utf-8")
    assert block_of(text) == render_block(data)
    assert "with ``python -m benchmarks scale``." in text
    assert (
        f"Tables 1a, 2, 3, 4, 4b, 5, 6, 8: recorded on {first['recorded']} with"
        " ``python -m benchmarks``." in text
    )
    # A third run keeps the oldest tables' provenance and moves table 7's into the kept ones.
    record(str(page), MACHINE, again[1:], "python -m benchmarks x", keep_others=True)
    third = load(data_path(str(page)))
    assert {t["command"] for t in third["tables"] if "recorded" in t} == {
        "python -m benchmarks",
        "python -m benchmarks scale",
    }
    # Without keep_others (a run of everything) the data is replaced.
    record(str(page), MACHINE, again, "python -m benchmarks")
    assert [t["title"] for t in load(data_path(str(page)))["tables"]] == [t.title for t in again]


def test_record_refuses_a_page_without_a_block_and_writes_nothing(tmp_path: Path) -> None:
    page = tmp_path / "perf.rst"
    page.write_text("Perf\n====\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        record(str(page), MACHINE, _tables(), "cmd")
    assert not (tmp_path / "perf.json").exists()
    assert page.read_text(encoding="utf-8") == "Perf\n====\n"


def test_load_refuses_other_files(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"tables": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="format"):
        load(str(path))


def test_numbers_are_read_back_from_cells() -> None:
    assert charts.number("1,044") == 1044.0
    assert charts.number("0.56x") == 0.56
    assert charts.number("12.3 MiB") == 12.3
    assert charts.number("-") is None
    assert charts.number("met") is None


def _svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return path.read_text(encoding="utf-8")


def test_every_chart_draws_reproducibly(tmp_path: Path) -> None:
    data_file = tmp_path / "perf.json"
    save(str(data_file), to_data(MACHINE, _tables(), "cmd", "2026-12-01 12:00 UTC"))
    first = charts.render_all(str(data_file), str(tmp_path / "a"))
    second = charts.render_all(str(data_file), str(tmp_path / "b"))
    assert [Path(p).name for p in first] == [f"{name}.svg" for name in charts.CHARTS]
    for one, two in zip(first, second):
        assert _svg_text(Path(one)) == _svg_text(Path(two)), f"{one} is not reproducible"
        assert "<dc:date>" not in Path(one).read_text(encoding="utf-8")


def test_a_chart_without_its_table_is_left_out(tmp_path: Path) -> None:
    data = to_data(MACHINE, _tables()[:5], "cmd")  # tables 1a-4b only
    assert charts.available(data, "sdk-ratios")
    assert not charts.available(data, "server-latency")
    target = tmp_path / "server-latency.svg"
    assert charts.render(data, "server-latency", str(target)) is False
    assert not target.exists()


def test_the_charts_change_with_the_data(tmp_path: Path) -> None:
    """A chart shows the figures: other ratios, another drawing."""
    tables = _tables()
    data = to_data(MACHINE, tables, "cmd", "2026-12-01 12:00 UTC")
    charts.render(data, "sdk-ratios", str(tmp_path / "one.svg"))
    tables[0].rows[1][-1] = "0.50x"
    data = to_data(MACHINE, tables, "cmd", "2026-12-01 12:00 UTC")
    charts.render(data, "sdk-ratios", str(tmp_path / "two.svg"))
    assert (tmp_path / "one.svg").read_bytes() != (tmp_path / "two.svg").read_bytes()


def test_profile_rows_have_readable_names() -> None:
    import os
    import urllib.request

    import requests

    assert readable_name("~", 0, "<method 'decode' of 'bytes' objects>") == "bytes.decode"
    assert readable_name("~", 0, "<built-in method builtins.isinstance>") == "isinstance"
    line = os._Environ.__getitem__.__code__.co_firstlineno
    assert readable_name("<frozen os>", line, "__getitem__") == "os._Environ.__getitem__"
    code = urllib.request.getproxies_environment.__code__
    assert (
        readable_name(code.co_filename, code.co_firstlineno, "getproxies_environment")
        == "urllib.request.getproxies_environment"
    )
    code = requests.Session.request.__code__
    assert (
        readable_name(code.co_filename, code.co_firstlineno, "request")
        == "requests.sessions.Session.request"
    )
    recorded = find_table(load(data_path(str(PAGE))), "1c")
    assert recorded is not None
    for row in recorded.rows:
        assert "<" not in row[0] and ":" not in row[0], row[0]
