"""Trusted domains: the web origins an application's browser code runs on.

Kloudless had them as the Meta API's ``trusted_domain`` objects. Here they decide two things:

* the popup (out-of-band) OAuth flow posts the token with ``postMessage`` only to an ``origin``
  that is a trusted domain of the application (:mod:`kloudless.server.api.oauth`);
* CORS: the API answers a browser request from a trusted origin of the credential's
  application with ``Access-Control-Allow-Origin`` (:mod:`kloudless.server.cors`).

An origin is ``scheme://host[:port]`` exactly as a browser sends it in the ``Origin`` header:
``http`` or ``https``, a lower-case host, the port only when it is not the scheme's default, no
path, query, fragment or user name. :func:`normalize` turns what an operator types into that
form (``https://App.Example:443/`` → ``https://app.example``) and refuses anything else, so
the comparison with a browser's ``Origin`` is an exact string match, scheme and port included.
No origin is trusted by default, loopback ones included.

The table is ``trusted_domains`` (migration 851).
"""

from __future__ import annotations

import ipaddress
import re
import sqlite3
from urllib.parse import urlsplit

from .store import Store, now_iso, register_migration

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
#: Trusted domains one application may have.
MAX_PER_APP = 100

register_migration(
    851,
    """
    CREATE TABLE trusted_domains (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT NOT NULL,
        origin TEXT NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (app_id, origin)
    );
    CREATE INDEX trusted_domains_origin ON trusted_domains (origin);
    """,
)


def normalize(text: str) -> str:
    """:returns: ``text`` as a browser would send it in ``Origin`` (see the module docstring).

    :raises ValueError: not an http(s) origin.
    """
    value = text.strip()
    if not value or len(value) > 300 or not value.isascii() or any(c.isspace() for c in value):
        raise ValueError("an origin is scheme://host[:port], e.g. https://app.example.com")
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("an origin starts with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError("an origin has no user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment or value.endswith("?"):
        raise ValueError("an origin has no path, query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the origin's port is not a number from 0 to 65535") from None
    host = (parts.hostname or "").rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.match(host):
            raise ValueError(f"not a host name: {host[:100]!r}") from None
        shown = host
    else:
        shown = f"[{address.compressed}]" if address.version == 6 else address.compressed
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{shown}:{port}"
    return f"{scheme}://{shown}"


def add(store: Store, app_id: str, origin: str) -> sqlite3.Row:
    """Trust ``origin`` (already :func:`normalize`\\ d) for ``app_id``; adding it again is a
    no-op. :returns: its row. :raises OverflowError: the app has :data:`MAX_PER_APP` already."""
    with store.transaction():
        row = store.one(
            "SELECT * FROM trusted_domains WHERE app_id = ? AND origin = ?", (app_id, origin)
        )
        if row is not None:
            return row
        count = store.one("SELECT COUNT(*) AS n FROM trusted_domains WHERE app_id = ?", (app_id,))
        if count is not None and int(count["n"]) >= MAX_PER_APP:
            raise OverflowError(f"an application has at most {MAX_PER_APP} trusted domains")
        store.execute(
            "INSERT INTO trusted_domains (app_id, origin, created) VALUES (?, ?, ?)",
            (app_id, origin, now_iso()),
        )
        row = store.one(
            "SELECT * FROM trusted_domains WHERE app_id = ? AND origin = ?", (app_id, origin)
        )
    assert row is not None
    return row


def list_for(store: Store, app_id: str) -> list[sqlite3.Row]:
    """:returns: the application's trusted domains, oldest first."""
    return store.all("SELECT * FROM trusted_domains WHERE app_id = ? ORDER BY id", (app_id,))


def get(store: Store, app_id: str, domain_id: int) -> sqlite3.Row | None:
    """:returns: one trusted domain of the application, or None."""
    return store.one(
        "SELECT * FROM trusted_domains WHERE app_id = ? AND id = ?", (app_id, domain_id)
    )


def remove(store: Store, app_id: str, origin: str) -> bool:
    """:returns: True when ``origin`` was trusted by ``app_id`` and no longer is."""
    cursor = store.execute(
        "DELETE FROM trusted_domains WHERE app_id = ? AND origin = ?", (app_id, origin)
    )
    return cursor.rowcount > 0


def is_trusted(store: Store, app_id: str, origin: str) -> bool:
    """:returns: whether the browser ``Origin`` value is a trusted domain of ``app_id``
    (an exact match; an ``Origin`` of ``null`` or in another form is never trusted)."""
    return (
        store.one("SELECT 1 FROM trusted_domains WHERE app_id = ? AND origin = ?", (app_id, origin))
        is not None
    )


def trusted_by_any(store: Store, origin: str) -> bool:
    """:returns: whether some application trusts ``origin`` (for answers that have no
    credential yet: CORS preflights and authentication errors)."""
    return store.one("SELECT 1 FROM trusted_domains WHERE origin = ?", (origin,)) is not None
