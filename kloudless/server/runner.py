"""Serving the app with waitress: in the foreground (``kloudless serve``) or in a background
thread (the demo and the end-to-end tests)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any, TextIO

from .app import ServerApp
from .bootstrap import Credentials, bootstrap
from .settings import Settings

log = logging.getLogger("kloudless.server")


def _create_server(app: ServerApp, host: str, port: int, threads: int) -> Any:
    from waitress import create_server
    from waitress.server import MultiSocketServer

    # waitress buffers each request body (spooling large ones to disk) before the app runs, so
    # a dropped upload never reaches the app; its own body limit must not undercut ours.
    body_limit = max(app.settings.max_upload_bytes, app.settings.max_json_bytes) + 1024 * 1024
    server = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="kloudless",
        clear_untrusted_proxy_headers=True,
        max_request_body_size=body_limit,
    )
    if isinstance(server, MultiSocketServer):  # pragma: no cover - one host only
        raise RuntimeError("bind exactly one address")
    return server


def _stop_server(server: Any) -> None:
    from waitress import wasyncore

    server.task_dispatcher.shutdown()
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
            self.server.pull_trigger()
            self._thread.join(timeout=15)
        else:
            _stop_server(self.server)
        self.app.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def print_credentials(creds: Credentials, out: TextIO) -> None:
    """Print first-start secrets once, with a warning to store them."""
    out.write(
        "Created a new application and a local account (shown once, store them safely):\n"
        f"  KLOUDLESS_APP_ID={creds.app_id}\n"
        f"  KLOUDLESS_API_KEY={creds.api_key}\n"
        f"  KLOUDLESS_ACCOUNT_ID={creds.account_id}\n"
        f"  KLOUDLESS_TOKEN={creds.token}\n"
    )
    out.flush()


def run_forever(settings: Settings, out: TextIO = sys.stdout) -> None:
    """Serve until Ctrl-C or SIGTERM, logging one line per request with its request id."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = ServerApp(settings)
    creds = bootstrap(app.store)
    if creds is not None:
        print_credentials(creds, out)
    server = _create_server(app, settings.host, settings.port, settings.threads)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    out.write(
        f"Serving the Kloudless API on http://{settings.host}:{server.effective_port}"
        f" (data dir {settings.data_dir}); Ctrl-C stops.\n"
    )
    out.flush()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        _stop_server(server)
        app.close()
        signal.signal(signal.SIGTERM, previous)
        out.write("Stopped.\n")
