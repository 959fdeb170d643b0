"""API areas; each module exposes ``ROUTES`` (a list of :class:`kloudless.server.routing.Route`).

:data:`ROUTES` is the server's one routing table: a new area module is imported and its
``ROUTES`` listed here.
"""

from __future__ import annotations

from ..routing import Route
from . import (
    accounts,
    calendar,
    contacts,
    events,
    links,
    meta,
    multipart,
    oauth,
    raw,
    raw_ids,
    site,
    storage,
    tasks,
    team,
    trusted_domains,
    unsupported,
)

#: Every route, in matching order (``unsupported`` last: it answers what the others do not).
ROUTES: list[Route] = [
    *oauth.ROUTES,
    *accounts.ROUTES,
    *storage.ROUTES,
    *multipart.ROUTES,
    *links.ROUTES,
    *events.ROUTES,
    *raw.ROUTES,
    *raw_ids.ROUTES,
    *meta.ROUTES,
    *trusted_domains.ROUTES,
    *tasks.ROUTES,
    *team.ROUTES,
    *unsupported.ROUTES,
    *calendar.ROUTES,
    *site.ROUTES,
    *contacts.ROUTES,
]

__all__ = ["ROUTES"]
