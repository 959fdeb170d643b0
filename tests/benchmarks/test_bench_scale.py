"""Smoke test of benchmark 7 (workers and databases) in ``--quick`` mode: two ``kloudless serve
--workers N`` runs answer every workload and the table has its rows. No figure is checked."""

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
    rows = [line for line in result.stdout.splitlines() if " SQLite " in line]
    for workload in ("list folder", "download 4 KiB", "upload 4 KiB"):
        workers = sorted(line.split()[-6] for line in rows if line.startswith(workload))
        assert workers == ["1", "2"], (workload, rows)
    assert "7. Workers and databases" in result.stdout
