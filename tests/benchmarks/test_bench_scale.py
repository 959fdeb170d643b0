"""Smoke test of benchmark 7 (workers and stores) in ``--quick`` mode: two ``kloudless serve
--workers N`` servers answer every workload of the load generator (statuses and sampled bodies
checked by it) and the table has its rows, with the requests of 2 workers spread over 2
processes. No figure is checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scale_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "scale", "--quick"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if " SQLite+files " in line]
    for workload in ("list", "download", "upload"):
        mine = [row for row in rows if row[0] == workload]
        cells = {row[row.index("SQLite+files") + 1]: row for row in mine}
        assert sorted(cells) == ["1", "2"], (workload, rows)
        # "requests per worker" of 2 workers: two shares (e.g. 52/48%), both served some.
        shares = next(c for c in cells["2"] if c.endswith("%") and "/" in c)
        assert all(int(share) > 0 for share in shares.rstrip("%").split("/")), cells["2"]
    assert "7. Workers and stores" in result.stdout
