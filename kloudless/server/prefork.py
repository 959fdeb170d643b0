"""``kloudless serve --workers N``: N server processes on one listening socket.

One Python process uses one core, so a server that must use several runs several processes.
The parent (the supervisor) does what must happen once, then forks the workers:

1. locks the data dir (``serve.lock``, as one process does), applies the migrations, creates
   the first application and account on an empty database (printing the ``export`` lines once)
   and runs start-up recovery, all in one short-lived :class:`~kloudless.server.app.ServerApp`;
2. registers itself as a live instance (:mod:`~kloudless.server.instances`), so that the
   workers, which start while it lives, never run recovery under each other's feet;
3. binds the listening socket once and forks N workers that each serve it (the kernel hands
   each new connection to one of them, and a worker holding more connections than another
   lets that one accept first: :mod:`~kloudless.server.balance`); a worker that dies is
   replaced.

Everything the workers share lives in the database (idempotency keys, rate limits when
:attr:`Settings.shared_state <kloudless.server.settings.Settings.shared_state>`, the webhook
queue, the sweep lease, the activity log) and the data dir. SIGTERM or Ctrl-C stops the
workers (each finishes its requests) and then the supervisor. Needs ``fork`` (Linux, macOS).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from types import FrameType
from typing import TextIO

from . import affinity
from .app import ServerApp
from .balance import Balance, Slot
from .bootstrap import bootstrap
from .instances import Instance
from .runner import (
    DataDirError,
    _check_port_free,
    _create_server,
    _stop_server,
    client_base_url,
    configure_logging,
    freeze_heap,
    lock_data_dir,
    print_credentials,
    raise_open_files_limit,
    where_state,
)
from .settings import Settings
from .store import Store

log = logging.getLogger("kloudless.server")

__all__ = ["run_workers"]

#: Seconds a stopping worker gets to finish its requests before it is killed.
STOP_GRACE = 30.0
#: A worker that dies sooner than this after its start counts as failing to start; after
#: :data:`MAX_QUICK_DEATHS` of those in a row the supervisor gives up.
QUICK_DEATH = 2.0
MAX_QUICK_DEATHS = 5


def _listen(host: str, port: int) -> socket.socket:
    """:returns: a listening socket on ``host:port`` (``SO_REUSEADDR``, waitress's backlog)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _worker(settings: Settings, sock: socket.socket, slot: Slot) -> None:
    """The body of one worker process: serve ``sock`` until SIGTERM or SIGINT."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    app = ServerApp(settings)
    server = None
    try:
        server = _create_server(
            app, settings.host, settings.port, settings.threads, sock=sock, balance=slot
        )
        freeze_heap()
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            _stop_server(server)
        app.close()


def _spawn(settings: Settings, sock: socket.socket, slot: Slot, core: int | None) -> int:
    """Fork one worker (in ``slot``, its count reset; pinned to ``core`` unless None).
    :returns: its pid (in the parent; the child never returns)."""
    slot.set(0)
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        if core is not None:
            affinity.pin(core)  # before any thread starts: they all inherit it
        _worker(settings, sock, slot)
    except BaseException:
        log.exception("server worker %d failed", os.getpid())
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def _set_up_once(settings: Settings, out: TextIO, port: int) -> None:
    """Migrations, the first application and account (printed once) and start-up recovery,
    in the supervisor before any worker exists."""
    app = ServerApp(settings)
    try:
        creds = bootstrap(app.store)
        if creds is not None:
            print_credentials(creds, out, client_base_url(settings, port))
    finally:
        app.close()  # no thread may be left running when the workers are forked


def run_workers(settings: Settings, out: TextIO | None = None) -> None:
    """Serve with ``settings.workers`` processes until Ctrl-C or SIGTERM.

    :raises DataDirError: the data dir is a file or in use, or this platform cannot fork.
    :raises OSError: the address cannot be bound (e.g. ``EADDRINUSE``).
    """
    out = out or sys.stdout
    if not hasattr(os, "fork"):
        raise DataDirError("--workers needs a platform with fork() (Linux, macOS)")
    configure_logging()
    if os.path.exists(settings.data_dir) and not os.path.isdir(settings.data_dir):
        raise DataDirError(f"--data-dir {settings.data_dir} is a file, not a folder")
    _check_port_free(settings.host, settings.port)
    lock = lock_data_dir(settings.data_dir, shared=settings.uses_postgres)
    try:
        _supervise(settings, out)
    finally:
        if lock is not None:
            lock.close()


def _supervise(settings: Settings, out: TextIO) -> None:
    raise_open_files_limit(settings.connection_limit + 256)
    sock = _listen(settings.host, settings.port)
    port = int(sock.getsockname()[1])
    previous = signal.signal(signal.SIGTERM, _interrupt)
    store: Store | None = None
    supervisor: Instance | None = None
    children: dict[int, tuple[float, Slot]] = {}
    balance = Balance(settings.workers)
    cores = affinity.plan(settings.workers) if settings.cpu_affinity == "auto" else None
    try:
        _set_up_once(settings, out, port)
        store = Store(settings.db_path, settings.database_url)
        supervisor = Instance(store, heartbeat=0)  # this host checks its pid, no thread
        supervisor.register()
        store.close()  # the children open their own connections
        for index in range(settings.workers):
            slot = balance.slot(index)
            children[_spawn(settings, sock, slot, _core(cores, index))] = (time.monotonic(), slot)
        out.write(
            f"Serving the Kloudless API on http://{settings.host}:{port} with"
            f" {settings.workers} worker processes ({where_state(settings)});"
            " Ctrl-C stops.\n"
        )
        out.flush()
        _keep_alive(settings, sock, children, cores)
    except KeyboardInterrupt:
        pass
    finally:
        _stop_children(children)
        sock.close()
        if supervisor is not None:
            supervisor.close()
        if store is not None:
            store.close()
        signal.signal(signal.SIGTERM, previous)
        out.write("Stopped.\n")
        out.flush()


def _core(cores: list[int] | None, index: int) -> int | None:
    """:returns: the core of worker ``index`` (None: not pinned)."""
    return None if cores is None else cores[index]


def _keep_alive(
    settings: Settings,
    sock: socket.socket,
    children: dict[int, tuple[float, Slot]],
    cores: list[int] | None,
) -> None:
    """Wait for workers to exit and replace them (on the same core), until interrupted (or
    workers keep dying right after they start)."""
    quick_deaths = 0
    while children:
        pid, status = os.wait()
        child = children.pop(pid, None)
        if child is None:
            continue
        started, slot = child
        log.warning("server worker %d exited (%s); starting another", pid, _describe_status(status))
        quick_deaths = quick_deaths + 1 if time.monotonic() - started < QUICK_DEATH else 0
        if quick_deaths >= MAX_QUICK_DEATHS:
            log.error("server workers keep failing right after they start; stopping")
            return
        children[_spawn(settings, sock, slot, _core(cores, slot.index))] = (time.monotonic(), slot)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"status {os.WEXITSTATUS(status)}"


def _stop_children(children: dict[int, tuple[float, Slot]]) -> None:
    """SIGTERM every worker, wait up to :data:`STOP_GRACE` seconds, then SIGKILL the rest."""
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE
    while children and time.monotonic() < deadline:
        for pid in list(children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                children.pop(pid, None)
        if children:
            time.sleep(0.05)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    children.clear()
