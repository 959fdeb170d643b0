"""The connectors, keyed by service name: one explicit table.

A new connector module defines its :class:`~kloudless.server.connectors.base.Connector`
instance and is added to :data:`BUILTIN` here (static imports, so the import graph shows every
dependency). Tests and plug-ins may add more at run time with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ApiError
from .base import Connector
from .caldav import CALDAV
from .carddav import CARDDAV
from .local import LOCAL
from .provider_calendar import CONNECTORS as PROVIDER_CONNECTORS
from .rclone import CONNECTORS as RCLONE_CONNECTORS
from .rclone import connector_for as rclone_connector_for
from .webdav import WEBDAV

#: The connectors every server has (rclone serves the service ids of its backend types).
#: Provider services (gdrive, dropbox, ...) come last: they replace the plain rclone ones;
#: then the providers' calendar services (google_calendar, outlook_calendar).
BUILTIN: tuple[Connector, ...] = (
    LOCAL,
    WEBDAV,
    CALDAV,
    CARDDAV,
    *RCLONE_CONNECTORS,
    *PROVIDER_CONNECTORS,
)

_REGISTRY: dict[str, Connector] = {c.service: c for c in BUILTIN}

__all__ = ["BUILTIN", "get_connector", "register", "services"]


def register(connector: Connector) -> Connector:
    """Register a connector under its ``service`` name (later registrations replace earlier).

    :returns: the connector.
    """
    _REGISTRY[connector.service] = connector
    return connector


def get_connector(service: str) -> Connector:
    """:returns: the connector of ``service``. :raises ApiError: 501 for an unknown service."""
    connector = _REGISTRY.get(service) or rclone_connector_for(service)
    if connector is None:
        raise ApiError(501, "not_implemented", f"No connector for service {service!r}.")
    return connector


def services() -> Iterable[str]:
    """:returns: the registered service names."""
    return sorted(_REGISTRY)
