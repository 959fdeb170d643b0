"""Named locks across processes (kloudless.server.named_locks): a lock another process holds
is busy (LockTimeout after the wait), and a holder killed with SIGKILL releases it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from kloudless.server import named_locks
from kloudless.server.store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOLDER = """
import sys
from kloudless.server import named_locks
from kloudless.server.store import Store
store = Store(sys.argv[1], sys.argv[2] if sys.argv[2] != "-" else None)
with named_locks.hold(store, "job", timeout=60):
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_lock_held_elsewhere_is_busy_until_its_holder_dies(
    tmp_path: Any, request: pytest.FixtureRequest, database: str
) -> None:
    url = request.getfixturevalue("postgres").new_database() if database == "postgresql" else None
    path = str(tmp_path / "data" / "server.sqlite3")
    store = Store(path, url)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, path, url or "-"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(named_locks.LockTimeout), named_locks.hold(store, "job", timeout=0.3):
            pass
        with named_locks.hold(store, "another job", timeout=5):
            pass  # other names are free
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=60)  # reaped, its pipes closed
        with named_locks.hold(store, "job", timeout=60):
            pass  # released with the dead process
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.communicate(timeout=60)
        store.close()
