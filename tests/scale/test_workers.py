"""``kloudless serve --workers N`` as a real process tree: one first-start print, N workers on
one port, a killed worker replaced, a clean stop; several stores opening one fresh database at
once migrate it once and bootstrap it once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from typing import Any

import requests

from kloudless.server.settings import Settings

from .processes import Served, free_port, live_pids, wait_for

WAIT = 60.0


def test_workers_share_one_port_and_a_killed_worker_is_replaced(tmp_path: Any) -> None:
    data = str(tmp_path / "d")
    db = Settings(data_dir=data).db_path
    port = free_port()
    with Served(["--data-dir", data, "--port", str(port), "--workers", "2"]) as served:
        exports = served.exports()
        assert served.output.count("export KLOUDLESS_TOKEN=") == 1  # printed once
        assert exports["KLOUDLESS_BASE_URL"] == f"http://127.0.0.1:{port}"
        assert "with 2 worker processes" in served.output
        auth = {"Authorization": f"Bearer {exports['KLOUDLESS_TOKEN']}"}
        url = f"{served.base_url}/v1/accounts/me"
        # The supervisor and its two workers are registered (the supervisor is the parent).
        wait_for(lambda: len(live_pids(db)) == 3, "two workers")
        assert served.proc is not None
        workers = live_pids(db) - {served.proc.pid}
        with requests.Session() as session:
            for _ in range(10):
                assert session.get(url, headers=auth, timeout=30).status_code == 200
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(live_pids(db) - {served.proc.pid} - workers) == 1, "a new worker")
        assert victim not in live_pids(db)
        assert requests.get(url, headers=auth, timeout=30).status_code == 200
        assert "exited (signal 9); starting another" in served.output
        assert served.stop() == 0
    assert "Stopped." in served.output
    assert live_pids(db) == set()  # every process removed its row on the way out
    # A second start on the same data dir creates nothing new.
    with Served(["--data-dir", data, "--port", str(free_port()), "--workers", "2"]) as again:
        assert again.exports() == {}


_OPEN_AND_BOOTSTRAP = textwrap.dedent(
    """
    import sys
    from kloudless.server import create_app, Settings
    from kloudless.server.bootstrap import bootstrap
    print("ready", flush=True)
    sys.stdin.readline()  # go: every process has imported everything
    app = create_app(Settings(data_dir=sys.argv[1], workers=2))
    try:
        print("created" if bootstrap(app.store) else "existing")
    finally:
        app.close()
    """
)


def test_processes_starting_at_once_migrate_and_bootstrap_once(tmp_path: Any) -> None:
    data = str(tmp_path / "d")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AND_BOOTSTRAP, data],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [p.communicate(timeout=WAIT) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sorted(out.strip() for out, _ in outputs) == ["created"] + ["existing"] * 3
    with sqlite3.connect(Settings(data_dir=data).db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM apps").fetchone()[0] == 1
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_versions")]
    assert len(versions) == len(set(versions)) and 1100 in versions
