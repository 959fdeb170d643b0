"""API areas; each module exposes ``ROUTES`` (a list of :class:`kloudless.server.routing.Route`).

:data:`ROUTES` is the server's one routing table: a new area module is imported and its
``ROUTES`` listed here.
"""

from __future__ import annotations

from ..routing import Route, in_family
from . import (
    accounts,
    calendar,
    contacts,
    events,
    links,
    management,
    meta,
    multipart,
    oauth,
    openapi,
    raw,
    raw_ids,
    site,
    storage,
    tasks,
    team,
    trusted_domains,
    unsupported,
)

#: Every route, in matching order (``unsupported`` last: it answers what the others do not),
#: each in its API family (:data:`kloudless.server.scopes.FAMILIES`), which a bearer token's
#: scope must cover. Routes that name their own family keep it.
ROUTES: list[Route] = [
    *in_family("oauth", oauth.ROUTES),
    *in_family("account", accounts.ROUTES),
    *in_family("storage", storage.ROUTES),
    *in_family("storage", multipart.ROUTES),
    *in_family("storage", links.ROUTES),
    *in_family("events", events.ROUTES),
    *in_family("raw", raw.ROUTES),
    *in_family("storage", raw_ids.ROUTES),
    *in_family("meta", meta.ROUTES),
    *in_family("meta", management.ROUTES),
    *in_family("meta", trusted_domains.ROUTES),
    *in_family("account", tasks.ROUTES),
    *in_family("team", team.ROUTES),
    *unsupported.ROUTES,
    *in_family("calendar", calendar.ROUTES),
    *in_family("public", site.ROUTES),
    *in_family("contacts", contacts.ROUTES),
]
#: ``GET /v1/openapi.json`` describes this table (its descriptions: :mod:`kloudless.server.apidoc`).
ROUTES.append(openapi.document_route(ROUTES))

__all__ = ["ROUTES"]
