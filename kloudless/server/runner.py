"""Serving the app with waitress: in the foreground (``kloudless serve``) or in a background
thread (the demo and the end-to-end tests)."""

from __future__ import annotations

import gc
import logging
import os
import shlex
import signal
import sys
import threading
from types import FrameType
from typing import IO, Any, TextIO

from . import affinity
from .app import ServerApp
from .bootstrap import Credentials, bootstrap
from .pgsql import redact_url
from .request_log import configure_logging
from .settings import Settings
from .store import _create_private

log = logging.getLogger("kloudless.server")


def freeze_heap() -> None:
    """Move what start-up made (modules, classes, the app and its caches) out of the garbage
    collector's reach (:func:`gc.freeze`, after a collection): the full collections a server
    runs now and then walk only what it made since, not the 80,000 objects of start-up (a full
    collection took 60-175 ms before, 0.2 ms after, measured on a busy machine). Called once
    a serving process has built its app."""
    gc.collect()
    gc.freeze()


def _create_server(
    app: ServerApp, host: str, port: int, threads: int, sock: Any = None, balance: Any = None
) -> Any:
    """:returns: the hardened waitress server of :mod:`kloudless.server.serving` for ``app``
    (on the listening socket ``sock`` when given, else bound to ``host:port``; ``balance``:
    the worker's :class:`~kloudless.server.balance.Slot` among processes sharing ``sock``)."""
    from .serving import create_server

    settings = app.settings
    # waitress receives each body (into the data dir) before the app runs; its own body limit
    # must not undercut ours.
    body_limit = max(settings.max_upload_bytes, settings.max_json_bytes) + 1024 * 1024
    return create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        data_dir=settings.data_dir,
        header_timeout=settings.header_timeout,
        idle_timeout=settings.idle_timeout,
        min_body_rate=settings.min_body_rate,
        connection_limit=settings.connection_limit,
        connections_per_address=settings.connections_per_address,
        min_free_bytes=settings.min_free_bytes,
        max_body_bytes=body_limit,
        small_body_bytes=settings.small_body_bytes,
        sock=sock,
        balance=balance,
    )


def raise_open_files_limit(wanted: int) -> None:
    """Raise this process's soft limit of open files towards ``wanted`` (capped by the hard
    limit), so that the connection limit, not the file limit, is what clients meet."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # pragma: no cover - not allowed here
            log.warning("cannot raise the open files limit to %d", target)


def _check_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` once, the way waitress will (``SO_REUSEADDR``), and release it.

    waitress leaks its sockets when its own bind fails, so a busy port is detected here first.

    :raises OSError: the address cannot be bound (``EADDRINUSE`` when the port is taken).
    """
    import socket

    if port == 0:
        return
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[
        :1
    ]:
        with socket.socket(family, kind, proto) as probe:
            if sys.platform != "win32":
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)


class DataDirError(Exception):
    """The data dir cannot be used: it is a file, or another server is using it."""


#: Name of the lock file that keeps a second ``kloudless serve`` off a data dir.
LOCK_FILE = "serve.lock"


def lock_data_dir(data_dir: str, shared: bool = False) -> IO[str] | None:
    """Create the data dir (private, see :class:`~kloudless.server.store.Store`) and take an
    exclusive lock on its :data:`LOCK_FILE`, held until the returned file is closed (or the
    process ends). Platforms without :mod:`fcntl` get no lock (None).

    :param shared: take a shared lock: servers whose database is PostgreSQL may share a data
        dir (they coordinate through the database), a SQLite server may not join them.
    :raises DataDirError: the data dir is a file, or another process holds the lock.
    """
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise DataDirError(f"--data-dir {data_dir} is a file, not a folder")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    _create_private(os.path.join(data_dir, LOCK_FILE))
    handle = open(os.path.join(data_dir, LOCK_FILE), "w", encoding="utf-8")  # noqa: SIM115
    try:
        fcntl.flock(handle.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DataDirError(
            f"another `kloudless serve` is using {data_dir} (stop it first)"
        ) from None
    return handle


def _stop_server(server: Any) -> None:
    from waitress import wasyncore

    server.task_dispatcher.shutdown()
    server.close_channels()
    wasyncore.close_all(server._map)


class ServerThread:
    """A waitress server running in a daemon thread.

    :param settings: settings (``port=0`` picks a free port).
    """

    def __init__(self, settings: Settings) -> None:
        self.app = ServerApp(settings)
        self.credentials: Credentials | None = bootstrap(self.app.store)
        self.server = _create_server(self.app, settings.host, settings.port, settings.threads)
        self.port = int(self.server.effective_port)
        self.base_url = f"http://{settings.host}:{self.port}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kloudless-server", daemon=True)

    def start(self) -> ServerThread:
        """Start serving. :returns: self."""
        self._thread.start()
        return self

    def _loop(self) -> None:
        from waitress import wasyncore

        # Sockets are closed by this thread only: closing them from another thread while
        # select() waits on them raises EBADF here.
        try:
            while not self._stopping.is_set():
                wasyncore.loop(
                    timeout=0.5,
                    map=self.server._map,
                    count=1,
                    use_poll=self.server.adj.asyncore_use_poll,
                )
        finally:
            _stop_server(self.server)

    def stop(self) -> None:
        """Stop serving and release everything (sockets, threads, database)."""
        self._stopping.set()
        if self._thread.is_alive():
            try:
                self.server.pull_trigger()  # wake the loop up from its poll()
            except OSError:  # it saw the flag first and has already closed the trigger
                pass
            self._thread.join(timeout=15)
        else:
            _stop_server(self.server)
        self.app.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def print_credentials(creds: Credentials, out: TextIO, base_url: str | None = None) -> None:
    """Print first-start secrets once, with a warning to store them, as ``export`` lines that
    can be pasted into a POSIX shell.

    :param creds: the new application's credentials.
    :param out: where to print them.
    :param base_url: the server's address, printed as ``KLOUDLESS_BASE_URL`` when known.
    """
    values = [] if base_url is None else [("KLOUDLESS_BASE_URL", base_url)]
    values += [
        ("KLOUDLESS_APP_ID", creds.app_id),
        ("KLOUDLESS_API_KEY", creds.api_key),
        ("KLOUDLESS_ACCOUNT_ID", str(creds.account_id)),
        ("KLOUDLESS_TOKEN", creds.token),
    ]
    if creds.developer_key is not None:
        values.append(("KLOUDLESS_DEVELOPER_KEY", creds.developer_key))
    out.write(
        "Created a new application and a local account (shown once, store them safely):\n"
        + "".join(f"  export {name}={shlex.quote(value)}\n" for name, value in values)
    )
    out.flush()


def where_state(settings: Settings) -> str:
    """:returns: where the server keeps its state, for the start-up line (no password)."""
    if settings.uses_postgres and settings.database_url:
        return f"data dir {settings.data_dir}, database {redact_url(settings.database_url)}"
    return f"data dir {settings.data_dir}"


def client_base_url(settings: Settings, port: int) -> str:
    """:returns: the URL clients on this machine use: ``public_base_url`` when set, else the
    bound address (a wildcard bind is reached through the loopback address)."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def run_forever(settings: Settings, out: TextIO | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM, logging one line per request with its request id.

    :param settings: the server settings.
    :param out: where the start-up lines go (default: the current ``sys.stdout``).
    :raises OSError: the address cannot be bound (e.g. ``EADDRINUSE``).
    """
    out = out or sys.stdout
    configure_logging()
    if os.path.exists(settings.data_dir) and not os.path.isdir(settings.data_dir):
        raise DataDirError(f"--data-dir {settings.data_dir} is a file, not a folder")
    _check_port_free(settings.host, settings.port)  # before a first start creates anything
    lock = lock_data_dir(settings.data_dir, shared=settings.uses_postgres)
    try:
        _serve_locked(settings, out)
    finally:
        if lock is not None:
            lock.close()  # releases the lock


def _serve_locked(settings: Settings, out: TextIO) -> None:
    """:func:`run_forever` once the data dir is locked."""
    raise_open_files_limit(settings.connection_limit + 256)
    if settings.cpu_affinity == "auto":
        cores = affinity.plan(1)
        if cores is not None:
            affinity.pin(cores[0])  # before the app starts its threads: they inherit it
    app = ServerApp(settings)
    try:
        server = _create_server(app, settings.host, settings.port, settings.threads)
    except BaseException:  # e.g. the port is in use: release the database before reporting it
        app.close()
        raise

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        creds = bootstrap(app.store)
        if creds is not None:
            print_credentials(creds, out, client_base_url(settings, int(server.effective_port)))
        out.write(
            f"Serving the Kloudless API on http://{settings.host}:{server.effective_port}"
            f" ({where_state(settings)}); Ctrl-C stops.\n"
        )
        out.flush()
        freeze_heap()
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        _stop_server(server)
        app.close()
        signal.signal(signal.SIGTERM, previous)
        out.write("Stopped.\n")
