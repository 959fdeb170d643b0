"""``kloudless serve`` as real processes for the multi-process tests: start one, read its
first-start lines, find its workers, stop it."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any

START_TIMEOUT = 60.0
_SERVING = re.compile(r"Serving the Kloudless API on (http://[^ ]+)")


def wait_for(predicate: Any, what: str, timeout: float = 60.0) -> None:
    """Poll ``predicate()`` every 0.1 s until it is true. :raises AssertionError: after
    ``timeout`` seconds, naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A ``kloudless serve ARGS`` process; its output is collected by a reader thread (so a
    full pipe never blocks it).

    :param args: the ``serve`` arguments.
    :param env: extra environment variables.
    :param prelude: Python run in the server process before the command (to tune a module
        constant for a test).
    """

    def __init__(
        self, args: list[str], env: dict[str, str] | None = None, prelude: str = ""
    ) -> None:
        self.args = args
        self.prelude = prelude
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> Served:
        command = [sys.executable, "-m", "kloudless.cli", "serve"]
        if self.prelude:
            script = "\n".join(
                [self.prelude, "import sys", "from kloudless.cli import main"]
                + ["sys.exit(main(['serve', *sys.argv[1:]]))"]
            )
            command = [sys.executable, "-c", script]
        self.proc = subprocess.Popen(
            [*command, *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = next(filter(None, map(_SERVING.search, self.output.splitlines())), None)
            if match:
                self.base_url = match.group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"kloudless serve did not start:\n{self.output}")

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line)

    @property
    def output(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def exports(self) -> dict[str, str]:
        """:returns: the ``export NAME=VALUE`` lines printed on first start."""
        found = re.findall(r"^\s*export (KLOUDLESS_\w+)=(\S+)$", self.output, re.M)
        return dict(found)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit. :returns: the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return int(self.proc.returncode)

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def live_pids(db_path: str) -> set[int]:
    """:returns: the pids registered in a SQLite store's ``server_instances`` that exist."""
    with sqlite3.connect(db_path, timeout=30) as conn:
        pids = {int(r[0]) for r in conn.execute("SELECT pid FROM server_instances")}
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.add(pid)
    return alive
