"""Real upstream servers for the rclone connector tests, served by rclone itself on loopback.

``rclone serve s3|sftp|webdav|ftp <folder>`` run as child processes bound to 127.0.0.1 (their
credentials in environment variables), plus the ``local`` backend and a ``crypt`` remote over a
local folder, which need no server. Each :class:`Upstream` says how to make an account of it:
the rclone type, the options (plain values) and the account's root path.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from kloudless.server.connectors.rclone_process import find_binary

USER = "rclone-user"
PASSWORD = "rclone-secret-pw-31337"
ACCESS_KEY = "AKIDKLOUDLESSTEST"
SECRET_KEY = "s3-secret-key-kloudless-31337"
CRYPT_PASSWORD = "crypt-secret-pw-31337"
READY_TIMEOUT = 60.0
#: The served trees' directory cache (see ServeProcess).
DIR_CACHE_SECONDS = 0.1
#: Every kind of upstream the suites are parametrised over.
KINDS = ("local", "s3", "sftp", "webdav", "ftp", "crypt")
_ADDRESS = re.compile(r"127\.0\.0\.1:(\d+)")


def free_port() -> int:
    """:returns: a loopback port nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """``rclone serve <protocol> <root>`` on 127.0.0.1, stopped by :meth:`stop`."""

    def __init__(self, protocol: str, root: Path, work: Path, env: dict[str, str]) -> None:
        self.protocol = protocol
        self.root = root
        base = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
        base.update(
            RCLONE_CONFIG=str(work / "none.conf"),
            RCLONE_CACHE_DIR=str(work / "cache"),
            RCLONE_LOG_LEVEL="NOTICE",
            # Folders made on disk by the tests show after this (Upstreams.make waits it out).
            # Not 0s: with no directory cache rclone serve s3 slows down to seconds, then
            # minutes, per request once a folder was moved.
            RCLONE_DIR_CACHE_TIME=f"{int(DIR_CACHE_SECONDS * 1000)}ms",
        )
        base.update(env)
        self.log: list[str] = []
        self.port = 0
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [find_binary(), "serve", protocol, str(root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=base,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(READY_TIMEOUT) or not self.port:
            self.stop()
            raise RuntimeError(f"rclone serve {protocol} did not start: {self.log[-5:]}")
        self._wait_listening()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.log.append(line)
            if len(self.log) > 200:
                del self.log[:100]
            match = _ADDRESS.search(line)
            if match and not self._ready.is_set():
                self.port = int(match.group(1))
                self._ready.set()
        self._ready.set()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        for _ in range(1000):  # bounded in count and in time
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"rclone serve {self.protocol} does not accept connections")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@dataclass
class Upstream:
    """How to reach one upstream: an account's rclone type, options and root path.

    :param folder: where the account's files land on disk (to change them "upstream").
    :param encrypted: the files on disk are rclone-crypt encrypted (names and contents).
    """

    kind: str
    rclone_type: str
    options: dict[str, str]
    path: str
    folder: Path
    encrypted: bool = False
    server: ServeProcess | None = field(default=None, repr=False)

    def account_settings(self) -> dict[str, object]:
        """:returns: the ``POST /v1/accounts`` body (minus ``service``) for this upstream."""
        body: dict[str, object] = {
            "rclone_type": self.rclone_type,
            "rclone_options": dict(self.options),
        }
        if self.path:
            body["rclone_path"] = self.path
        return body


class Upstreams:
    """Starts each served protocol once (on first use) and makes fresh folders on it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.servers: dict[str, ServeProcess] = {}

    def _serve(self, protocol: str) -> ServeProcess:
        server = self.servers.get(protocol)
        if server is not None and server.alive():
            return server
        if server is not None:
            server.stop()  # a test stopped it: start another
        root = self.base / f"{protocol}-root"
        root.mkdir(exist_ok=True)
        work = self.base / f"{protocol}-work"
        work.mkdir(exist_ok=True)
        env = {"RCLONE_ADDR": "127.0.0.1:0"}
        if protocol == "s3":
            # A list flag read from the environment is CSV: quote the "key,secret" pair.
            env["RCLONE_AUTH_KEY"] = f'"{ACCESS_KEY},{SECRET_KEY}"'
        else:
            env.update(RCLONE_USER=USER, RCLONE_PASS=PASSWORD)
        if protocol == "ftp":
            # rclone serve ftp does not report a kernel-chosen port: pick one.
            env["RCLONE_ADDR"] = f"127.0.0.1:{free_port()}"
            low = 30000 + (os.getpid() * 7) % 20000
            env["RCLONE_PASSIVE_PORT"] = f"{low}-{low + 200}"
        server = ServeProcess(protocol, root, work, env)
        self.servers[protocol] = server
        return server

    def make(self, kind: str) -> Upstream:
        """:returns: a fresh, empty upstream folder of ``kind`` (see :data:`KINDS`)."""
        name = f"t{uuid.uuid4().hex[:10]}"
        if kind == "local":
            folder = self.base / "local" / name
            folder.mkdir(parents=True)
            return Upstream(kind, "local", {}, str(folder), folder)
        if kind == "crypt":
            folder = self.base / "crypt" / name
            folder.mkdir(parents=True)
            options = {"remote": str(folder), "password": CRYPT_PASSWORD}
            return Upstream(kind, "crypt", options, "", folder, encrypted=True)
        server = self._serve(kind)
        folder = server.root / name
        folder.mkdir()
        # The server lists the new folder once its cached listing of the root expired.
        time.sleep(DIR_CACHE_SECONDS * 3)
        host = f"http://127.0.0.1:{server.port}"
        if kind == "s3":
            options = {
                "provider": "Rclone",
                "endpoint": host,
                "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY,
            }
        elif kind == "webdav":
            options = {"url": host + "/", "vendor": "rclone", "user": USER, "pass": PASSWORD}
        else:  # sftp, ftp
            options = {"host": "127.0.0.1", "port": str(server.port), "user": USER}
            options["pass"] = PASSWORD
            if kind == "sftp":
                options["shell_type"] = "none"
        return Upstream(kind, kind, options, name, folder, server=server)

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
