"""``--cpu-affinity auto``: each worker of ``kloudless serve --workers N`` on a core of its own.

The plan takes the cores the process may use in turn (a cpuset or ``taskset`` is respected);
real process trees: every thread of every worker (and of a replacement worker) is on its core,
one process is pinned too, ``off`` leaves the kernel's placement, and a platform without
``sched_setaffinity`` serves unpinned with a log line.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from kloudless.server import affinity
from kloudless.server.settings import Settings

from .processes import Served, free_port, live_pids, wait_for

linux = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity (Linux)"
)


def _allowed() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _thread_cores(pid: int) -> list[set[int]]:
    """:returns: the allowed cores of every thread of ``pid``."""
    return [os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")]


def test_the_plan_takes_the_allowed_cores_in_turn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5, 1, 3}, raising=False)
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cores: None, raising=False)
    assert affinity.plan(2) == [1, 3]
    assert affinity.plan(3) == [1, 3, 5]
    with caplog.at_level(logging.INFO, logger="kloudless.server"):
        assert affinity.plan(4) == [1, 3, 5, 1]
    assert "4 workers on 3 cores" in caplog.text


def test_without_sched_setaffinity_nothing_is_pinned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    with caplog.at_level(logging.INFO, logger="kloudless.server"):
        assert affinity.plan(2) is None
    assert "cannot pin" in caplog.text


@linux
def test_a_refused_core_is_logged_and_nothing_changes(caplog: pytest.LogCaptureFixture) -> None:
    before = os.sched_getaffinity(0)
    missing = max(before) + 4096  # no such core
    with caplog.at_level(logging.WARNING, logger="kloudless.server"):
        assert affinity.pin(missing) is False
    assert f"not pinned to core {missing}" in caplog.text
    assert os.sched_getaffinity(0) == before


def test_settings_and_the_command_line_check_the_value() -> None:
    assert Settings().cpu_affinity == "off"
    with pytest.raises(ValueError, match="cpu_affinity"):
        Settings(cpu_affinity="on")
    bad = subprocess.run(
        [sys.executable, "-m", "kloudless.cli", "serve", "--cpu-affinity", "all"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--cpu-affinity" in bad.stderr
    from_env = subprocess.run(
        [sys.executable, "-m", "kloudless.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, KLOUDLESS_CPU_AFFINITY="auto"),
    )
    assert from_env.returncode == 0 and "default auto" in " ".join(from_env.stdout.split())


@linux
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_each_worker_and_all_its_threads_run_on_a_core_of_their_own(tmp_path: Any) -> None:
    data = str(tmp_path / "d")
    db = Settings(data_dir=data).db_path
    args = ["--data-dir", data, "--port", str(free_port()), "--workers", "2"]
    with Served([*args, "--cpu-affinity", "auto"]) as served:
        assert served.proc is not None
        wait_for(lambda: len(live_pids(db)) == 3, "two workers")
        workers = sorted(live_pids(db) - {served.proc.pid})
        cores = [os.sched_getaffinity(pid) for pid in workers]
        assert sorted(c for (c,) in cores) == _allowed()[:2]
        for pid, core in zip(workers, cores):
            # A worker is live in the table before it has started all its threads.
            wait_for(lambda pid=pid: len(_thread_cores(pid)) > 2, "the worker's threads")
            threads = _thread_cores(pid)
            assert len(threads) > 2 and all(t == core for t in threads)  # waitress's, ours
        # The supervisor itself is not pinned; a replacement worker takes the dead one's core.
        assert os.sched_getaffinity(served.proc.pid) == set(_allowed())
        victim, core = workers[0], cores[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(live_pids(db) - {served.proc.pid} - set(workers)) == 1, "another")
        (replacement,) = live_pids(db) - {served.proc.pid} - set(workers)
        assert os.sched_getaffinity(replacement) == core
        assert "pinned to core" in served.output
    with Served(args) as unpinned:  # off, the default: the kernel places every thread
        assert unpinned.proc is not None
        wait_for(lambda: len(live_pids(db)) == 3, "two workers")
        for pid in live_pids(db):
            assert all(t == set(_allowed()) for t in _thread_cores(pid))


@linux
def test_one_process_is_pinned_too(tmp_path: Any) -> None:
    args = ["--data-dir", str(tmp_path / "d"), "--port", str(free_port())]
    with Served([*args, "--cpu-affinity", "auto"]) as served:
        assert served.proc is not None
        assert all(t == {_allowed()[0]} for t in _thread_cores(served.proc.pid))


@linux
def test_where_the_platform_cannot_pin_the_workers_serve_unpinned(tmp_path: Any) -> None:
    data = str(tmp_path / "d")
    db = Settings(data_dir=data).db_path
    args = ["--data-dir", data, "--port", str(free_port()), "--workers", "2"]
    prelude = "import os\ndel os.sched_setaffinity"
    with Served([*args, "--cpu-affinity", "auto"], prelude=prelude) as served:
        assert served.proc is not None
        wait_for(lambda: len(live_pids(db)) == 3, "two workers")
        assert "cannot pin processes to cores; workers not pinned" in served.output
        for pid in live_pids(db):
            assert os.sched_getaffinity(pid) == set(_allowed())
