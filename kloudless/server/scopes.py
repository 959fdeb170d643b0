"""Token scopes: which API families a bearer token may use.

Every route belongs to one API *family* (``Route.family`` in the routing table). A bearer
token carries the ``scope`` it was granted on the consent page (Kloudless scope strings,
space-separated); :func:`allows` decides whether that scope covers a family, and the
application answers ``403 forbidden`` when it does not. API keys are not scoped.

Scope items (spec §3.1) and what they grant:

=====================================  ======================================================
``any``, ``all`` (also ``all:admin``)  every family
a service alone: ``webdav``,           every family (of that service: the token is bound to
``caldav:normal``, ``local``           one account, of the service the consent page offered)
a category: ``storage``                ``storage`` and ``events``
``calendar``                           ``calendar`` and ``events``
``crm`` (also ``contacts``)            ``contacts`` and ``events``
``<service>.<api>[.<permission>]``     the family of ``<api>`` (``any.storage``,
(also ``<service>:<flow>.<api>``)      ``webdav:normal.storage``, ``gdrive.events``);
                                       ``storage``, ``calendar``, ``events``, ``crm``/
                                       ``contacts``, ``team``; other APIs grant nothing
=====================================  ======================================================

Families every token may use whatever its scope: ``account`` (the token's own account,
including its asynchronous tasks) and those that need no token (``oauth``, ``public``).
``raw`` (pass-through, the upstream's whole API) and ``meta`` (the application's settings,
reached with API keys or application-level tokens) need a scope that grants every family.
Activity events are one stream per account: a token allowed the ``events`` family reads all of
its account's events.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from .errors import forbidden

if TYPE_CHECKING:
    from .auth import Auth

__all__ = ["ALWAYS", "FAMILIES", "allows", "check", "granted"]

#: Every family a route may belong to, with what it covers (the documented table).
FAMILIES: dict[str, str] = {
    "account": "the token's own account: GET/PATCH/DELETE accounts/me, the account list, tasks",
    "storage": "files, folders, links, multipart uploads, search, recent, quota",
    "calendar": "calendars, events, availability",
    "contacts": "contacts and address books (the Kloudless crm category)",
    "events": "the activity stream (events, events/latest)",
    "team": "team users and groups of admin accounts",
    "raw": "pass-through to the upstream service (accounts/{id}/raw)",
    "meta": "applications (meta/applications): API keys, application-level tokens and the "
    "developer key; the management API (meta/developers, applications/...): the developer key",
    "oauth": "the consent page and the token endpoints (no token needed)",
    "public": "public links (/l/<id>) and the service list (no token needed)",
}
#: Families open to every token, whatever its scope.
ALWAYS = frozenset({"account", "oauth", "public"})
#: Categories (scope items without an API part) and what they grant.
CATEGORIES: dict[str, frozenset[str]] = {
    "storage": frozenset({"storage", "events"}),
    "calendar": frozenset({"calendar", "events"}),
    "crm": frozenset({"contacts", "events"}),
    "contacts": frozenset({"contacts", "events"}),
    # Categories of the hosted service that this server has no API for: they grant nothing.
    "email": frozenset(),
    "messaging": frozenset(),
    "itsm": frozenset(),
    "helpdesk": frozenset(),
}
#: The ``<api>`` part of ``<service>.<api>`` items and the family it grants.
APIS: dict[str, frozenset[str]] = {
    "storage": frozenset({"storage"}),
    "sharing": frozenset({"storage"}),
    "calendar": frozenset({"calendar"}),
    "events": frozenset({"events"}),
    "crm": frozenset({"contacts"}),
    "contacts": frozenset({"contacts"}),
    "team": frozenset({"team"}),
}


@functools.lru_cache(maxsize=1024)
def granted(scope: str) -> frozenset[str] | None:
    """:returns: the families a scope string grants besides :data:`ALWAYS`, or None when it
    grants every family (see the module docstring)."""
    families: set[str] = set()
    for item in scope.split():
        head, _, rest = item.partition(".")
        service = head.split(":", 1)[0].lower()
        api = rest.split(".", 1)[0].split(":", 1)[0].lower()
        if api:
            families |= APIS.get(api, frozenset())
        elif service in CATEGORIES:
            families |= CATEGORIES[service]
        elif service:
            return None  # any/all, or a service alone: everything
    return frozenset(families)


def allows(scope: str, family: str) -> bool:
    """:returns: whether a token granted ``scope`` may use routes of ``family``."""
    if family in ALWAYS:
        return True
    families = granted(scope)
    return families is None or family in families


def required_scopes(family: str) -> str:
    """:returns: a readable list of scope items that would grant ``family`` (error messages)."""
    if family in ("raw", "meta"):
        return "'any' (or the service's name alone)"
    items = [f"'{c}'" for c, fams in CATEGORIES.items() if family in fams]
    items += [f"'any.{a}'" for a, fams in APIS.items() if family in fams]
    return ", ".join(dict.fromkeys(items + ["'any'"]))


def check(auth: Auth, family: str) -> None:
    """Refuse a bearer token whose scope does not cover ``family`` (every token, when several
    were sent). API keys are not scoped.

    :raises ApiError: 403 ``forbidden`` naming the scopes that would grant it.
    """
    if auth.kind != "bearer":
        return
    for scope in auth.scopes or (auth.scope,):
        if not allows(scope, family):
            raise forbidden(
                f"This token's scope ({scope[:200]!r}) does not include the {family} API; "
                f"connect the account with a scope such as {required_scopes(family)}."
            )
