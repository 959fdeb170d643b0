"""Smoke test of the benchmarks: every benchmark runs in ``--quick`` mode and prints its tables.

Nothing here depends on timing: only that the code runs end to end, that each table has its rows
and that ``--record`` writes them into a page. The figures themselves are not checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# benchmarks/ is not an installed package: import it from the checkout.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.__main__ import BEGIN, END, parse_size, record  # noqa: E402
from benchmarks._util import Table, percentile  # noqa: E402
from benchmarks.results import block_of, load, render_block  # noqa: E402

TITLES = (
    "1a. Per-request overhead",
    "1b. Client CPU per call",
    "1c. cProfile of account.get()",
    "2. Paging",
    "3. Download of a",
    "4. Upload of a",
    "4c. Multipart against one streamed POST",
    "5. Local server throughput",
    "5b. Listing a page of 1000",
    "5d. 4 KiB download against bare waitress",
    "6. Blob stores: files vs S3",
    "8. Peers: kloudless, WsgiDAV and rclone serve webdav",
    "8b. PUT 4 KiB against the HTTP floors",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    page = tmp_path_factory.mktemp("bench") / "performance.rst"
    page.write_text(f"Performance\n===========\n\n{BEGIN}\n\nold figures\n\n{END}\n\nAfter.\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--record", str(page)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, page


def test_every_benchmark_prints_its_table(quick_run: tuple[str, Path]) -> None:
    output, _ = quick_run
    assert output.startswith("Machine")
    assert "Python" in output and "CPU" in output
    for title in TITLES:
        assert title in output, title
    assert "All benchmarks:" in output


def test_tables_have_rows_and_ratios(quick_run: tuple[str, Path]) -> None:
    output, _ = quick_run
    assert "bare requests.Session" in output and "kloudless Account.get" in output
    assert "get_paging_iterator()" in output
    assert "Resource.download(file object)" in output
    assert "multipart 4 parallel" in output
    for level in ("1", "4", "16"):
        assert any(
            line.startswith("upload 4 KiB file") and line.split()[4] == level
            for line in output.splitlines()
        ), level
    assert output.count("1.00x") >= 5  # every benchmark reports against a baseline


def test_record_replaces_only_the_results_block(quick_run: tuple[str, Path]) -> None:
    _, page = quick_run
    text = page.read_text()
    assert text.startswith("Performance\n===========\n")
    assert text.rstrip().endswith("After.")
    assert "old figures" not in text
    assert ".. list-table:: Machine" in text
    for title in TITLES:
        assert f".. list-table:: {title}" in text, title


def test_record_saves_the_run_and_draws_its_charts(quick_run: tuple[str, Path]) -> None:
    """The data file beside the page holds the tables the page shows, and the charts of the
    run's tables are drawn from it (the column names the charts read are the benchmarks')."""
    _, page = quick_run
    data = load(str(page.with_suffix(".json")))
    assert block_of(page.read_text()) == render_block(data)
    titles = [table["title"] for table in data["tables"]]
    for title in TITLES:
        assert any(t.startswith(title) for t in titles), title
    drawn = sorted(p.name for p in (page.parent / "_generated" / "charts").glob("*.svg"))
    assert drawn == ["blobstores.svg", "peers.svg", "sdk-ratios.svg", "server-latency.svg",
                     "server-throughput.svg"]  # fmt: skip
    profile = next(t for t in data["tables"] if t["title"].startswith("1c."))
    for row in profile["rows"]:
        assert "<frozen" not in row[0] and "~:0" not in row[0], row[0]


def test_record_refuses_a_page_without_markers(tmp_path: Path) -> None:
    page = tmp_path / "p.rst"
    page.write_text("Title\n=====\n")
    with pytest.raises(SystemExit):
        record(str(page), [("CPU", "x")], [Table("t", ["a"])], "cmd")
    assert page.read_text() == "Title\n=====\n"


def test_helpers() -> None:
    assert parse_size("1G") == 1024**3
    assert parse_size("256M") == 256 * 1024**2
    assert parse_size("4096") == 4096
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([float(n) for n in range(1, 101)], 99) == 99.0
    assert percentile([], 50) == 0.0
    table = Table("T", ["name", "value"])
    table.add("row", 1.5)
    assert table.render().splitlines()[2:4] == ["name  value", "----  -----"]
    assert "   * - row\n     - 1.5" in table.render_rst()
