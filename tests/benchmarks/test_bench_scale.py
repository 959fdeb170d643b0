"""Smoke test of benchmark 7 (workers and stores) in ``--quick`` mode: ``kloudless serve
--workers N`` servers of 1 and 2 workers, pinned to cores and not, answer every workload of the
load generator (statuses and sampled bodies checked by it) and the table has its rows, with the
requests of 2 workers spread over 2 processes. No figure is checked."""

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
        at = mine[0].index("SQLite+files") if mine else 0
        cells = {(row[at + 1], row[at + 2]): row for row in mine}  # (workers, pinned)
        assert sorted(cells) == [("1", "no"), ("1", "yes"), ("2", "no"), ("2", "yes")], rows
        for two in (cells[("2", "no")], cells[("2", "yes")]):
            # "requests per worker" of 2 workers: two shares (e.g. 52/48%), both served some.
            shares = next(c for c in two if c.endswith("%") and "/" in c)
            assert all(int(share) > 0 for share in shares.rstrip("%").split("/")), two
    assert "7. Workers and stores" in result.stdout
