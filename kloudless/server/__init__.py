"""Kloudless-compatible local API server (``kloudless serve``).

:func:`create_app` builds the WSGI application; :func:`serve` runs it with waitress.
See ``kloudless/server/HACKING.md`` for the developer guide.
"""

from __future__ import annotations

from .app import ServerApp
from .settings import Settings

__all__ = ["ServerApp", "Settings", "create_app", "serve"]


def create_app(settings: Settings | None = None) -> ServerApp:
    """Build the WSGI application.

    :param settings: server settings (defaults: ``./kloudless-data``, 127.0.0.1:8002).
    :returns: the WSGI callable; call ``.close()`` on it when done.
    """
    return ServerApp(settings or Settings())


def serve(settings: Settings | None = None) -> None:
    """Serve the API with waitress until interrupted (Ctrl-C or SIGTERM).

    :param settings: server settings.
    """
    settings = settings or Settings()
    if settings.workers > 1:
        from .prefork import run_workers

        run_workers(settings)
        return
    from .runner import run_forever

    run_forever(settings)
