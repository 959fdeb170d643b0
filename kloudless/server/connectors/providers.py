"""Cloud providers whose accounts the server connects itself (Google Drive, Microsoft
OneDrive, Dropbox, Box): their built-in OAuth 2.0 endpoints and API hosts, and each
application's provider settings (``kloudless apps provider set``).

The operator registers an OAuth application at the provider (see the guide "Connecting cloud
accounts") and gives the server its client id and client secret. Per application and provider
the server keeps one row of ``provider_apps`` (migration 1300) whose ``sealed`` column holds
the settings as JSON sealed with the server secret (:func:`~.webdav_auth.seal`, as DAV passwords
are): client id, client secret, scopes, and any endpoint overrides. The client id alone is also
kept in clear, for listings.

Every endpoint has a built-in value (:data:`CATALOGUE`) and can be overridden per application:
``auth_url`` (where the browser is sent), ``token_url`` (code exchange and refresh),
``api_base`` (where relative pass-through URIs go) and ``content_base`` (the second API host:
Dropbox's ``content.dropboxapi.com``, Box's ``upload.box.com``). That is how sovereign clouds
(Microsoft's national clouds) are used, and how the tests point the server at local stand-ins.
The server reaches ``token_url``, ``api_base`` and ``content_base`` through the outbound policy
(:mod:`kloudless.server.outbound`), so loopback or private overrides need ``--allow-upstream``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import ApiError, invalid_parameters
from ..store import Store, now_iso, register_migration
from .webdav_auth import seal, unseal

register_migration(
    1300,
    """
    CREATE TABLE provider_apps (
        app_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        client_id TEXT NOT NULL,
        sealed TEXT NOT NULL,
        modified TEXT NOT NULL,
        PRIMARY KEY (app_id, provider)
    );
    """,
)


@dataclass(frozen=True)
class Provider:
    """A provider's built-in facts.

    :param name: the name operators use (``google``).
    :param title: what the consent page shows (``Google Drive``).
    :param services: the Kloudless service ids its accounts get (Microsoft: ``onedrivebiz``
        for work or school drives, ``skydrive`` for personal ones).
    :param rclone_type: the rclone backend serving its storage.
    :param auth_url: the authorization endpoint. :param token_url: the token endpoint.
    :param api_base: where relative pass-through URIs go.
    :param content_base: the provider's second API host (uploads/downloads), or "".
    :param hosts: further hosts absolute pass-through URIs may name.
    :param scopes: the scopes asked for by default.
    :param auth_params: extra authorization request parameters (offline access).
    :param pkce: whether the provider supports PKCE (RFC 7636, ``S256``).
    :param calendar_service: the service id of accounts connected for calendars only
        (``google_calendar``), or "" when the provider has no calendar API here.
    :param api_scopes: the provider scopes that grant each Kloudless API (``storage``,
        ``calendar``); the first of each is the one asked for.
    :param base_scopes: scopes asked for whatever the APIs (Microsoft: ``User.Read``,
        ``offline_access``).
    """

    name: str
    title: str
    services: tuple[str, ...]
    rclone_type: str
    auth_url: str
    token_url: str
    api_base: str
    content_base: str = ""
    hosts: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    auth_params: Mapping[str, str] = field(default_factory=dict)
    pkce: bool = True
    calendar_service: str = ""
    api_scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    base_scopes: tuple[str, ...] = ()


CATALOGUE: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "google",
            "Google Drive",
            ("gdrive",),
            "drive",
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://oauth2.googleapis.com/token",
            "https://www.googleapis.com",
            hosts=("content.googleapis.com",),
            scopes=("https://www.googleapis.com/auth/drive",),
            # A refresh token is issued only with offline access, and again only on consent.
            auth_params={"access_type": "offline", "prompt": "consent"},
            calendar_service="google_calendar",
            api_scopes={
                "storage": (
                    "https://www.googleapis.com/auth/drive",
                    "https://www.googleapis.com/auth/drive.file",
                ),
                "calendar": (
                    "https://www.googleapis.com/auth/calendar",
                    "https://www.googleapis.com/auth/calendar.events",
                ),
            },
        ),
        Provider(
            "microsoft",
            "Microsoft OneDrive",
            ("onedrivebiz", "skydrive"),
            "onedrive",
            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
            "https://login.microsoftonline.com/common/oauth2/v2.0/token",
            "https://graph.microsoft.com",
            scopes=("Files.ReadWrite.All", "User.Read", "offline_access"),
            calendar_service="outlook_calendar",
            api_scopes={
                "storage": ("Files.ReadWrite.All", "Files.ReadWrite"),
                "calendar": ("Calendars.ReadWrite",),
            },
            base_scopes=("User.Read", "offline_access"),
        ),
        Provider(
            "dropbox",
            "Dropbox",
            ("dropbox",),
            "dropbox",
            "https://www.dropbox.com/oauth2/authorize",
            "https://api.dropboxapi.com/oauth2/token",
            "https://api.dropboxapi.com",
            content_base="https://content.dropboxapi.com",
            scopes=(
                "account_info.read",
                "files.metadata.read",
                "files.metadata.write",
                "files.content.read",
                "files.content.write",
            ),
            auth_params={"token_access_type": "offline"},
        ),
        Provider(
            "box",
            "Box",
            ("box",),
            "box",
            "https://account.box.com/api/oauth2/authorize",
            "https://api.box.com/oauth2/token",
            "https://api.box.com",
            content_base="https://upload.box.com",
            # Box has no PKCE and takes the scopes configured on the app at Box.
            pkce=False,
        ),
    )
}

#: The endpoint settings an operator may override.
ENDPOINTS = ("auth_url", "token_url", "api_base", "content_base")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Longest client id / secret / scope / URL accepted.
MAX_VALUE = 2048


@dataclass(frozen=True)
class ProviderApp:
    """An application's settings for one provider (the defaults filled in).

    ``client_secret`` is never shown; :meth:`public` is what listings print.
    """

    provider: Provider
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...]
    auth_url: str
    token_url: str
    api_base: str
    content_base: str
    overrides: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The provider's name (``google``)."""
        return self.provider.name

    def api_hosts(self) -> set[tuple[str, str, int]]:
        """:returns: ``(scheme, host, port)`` of every host absolute pass-through URIs may
        name: the API base, the content base and the provider's other hosts (those only while
        ``api_base`` is the built-in one)."""
        found = {_origin(u) for u in (self.api_base, self.content_base) if u}
        if "api_base" not in self.overrides:
            found |= {("https", h, 443) for h in self.provider.hosts}
        return found

    def public(self) -> dict[str, Any]:
        """:returns: the settings without the client secret."""
        return {
            "provider": self.name,
            "client_id": self.client_id,
            "scopes": list(self.scopes),
            **{name: getattr(self, name) for name in ENDPOINTS},
            "overridden": list(self.overrides),
        }


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def provider(name: str) -> Provider:
    """:returns: the provider called ``name``. :raises ApiError: 400 for an unknown one."""
    found = CATALOGUE.get(str(name).lower())
    if found is None:
        raise invalid_parameters(
            f"Unknown provider {str(name)[:40]!r}; known: {', '.join(CATALOGUE)}."
        )
    return found


def provider_of_service(service: str) -> Provider | None:
    """:returns: the provider whose accounts have the service id ``service``, or None."""
    for candidate in CATALOGUE.values():
        if service in candidate.services or service == candidate.calendar_service:
            return candidate
    return None


#: The Kloudless APIs a provider sign-in can grant, in the order accounts list them.
PROVIDER_APIS = ("storage", "calendar")


def requested_apis(scope: str, chosen: Provider) -> tuple[str, ...]:
    """:param scope: the Kloudless ``scope`` of the authorization request.
    :returns: the APIs a sign-in at ``chosen`` asks for: ``calendar`` for items naming the
        calendar family or the provider's calendar service (``calendar``,
        ``google_calendar``, ``gdrive.calendar``), ``storage`` for the storage family or a
        storage service; both for ``all``, the provider's name or a scope naming neither.
    """
    wanted: set[str] = set()
    for item in scope.split():
        head, _, rest = item.partition(":")
        words = [w.lower() for w in head.split(".") if w]
        words += [w.lower() for w in rest.split(".")[1:2] if w]  # svc:normal.<api>.x
        if chosen.calendar_service and chosen.calendar_service in words:
            wanted.add("calendar")
        elif any(w in chosen.services for w in words):
            named = [a for a in PROVIDER_APIS if a in words[1:]]
            wanted.update(named or ["storage"])
        else:
            wanted.update(a for a in PROVIDER_APIS if a in words)
    if not wanted:
        wanted = set(PROVIDER_APIS)
    return tuple(a for a in PROVIDER_APIS if a in wanted and a in chosen.api_scopes) or ("storage",)


def scopes_for(app: ProviderApp, apis: Sequence[str]) -> tuple[str, ...]:
    """:returns: the provider scopes to ask for: the application's own list when the
    operator set one (``kloudless apps provider set ... --scope``), else the provider's
    base scopes plus the first scope of each API in ``apis``."""
    chosen = app.provider
    if app.scopes != chosen.scopes or not chosen.api_scopes:
        return app.scopes
    picked = [*chosen.base_scopes, *(chosen.api_scopes[a][0] for a in apis)]
    return tuple(dict.fromkeys(picked))


def granted_apis(
    chosen: Provider, granted: Sequence[str] | str | None, requested: Sequence[str]
) -> tuple[str, ...]:
    """:param granted: the ``scope`` of the token answer (a list or a space-separated
        string), or None when the provider did not say (then what was requested).
    :returns: the APIs whose scopes the user granted.
    """
    if granted is None or not chosen.api_scopes:
        return tuple(requested)
    names = set(granted.split() if isinstance(granted, str) else granted)
    found = tuple(a for a in PROVIDER_APIS if names & set(chosen.api_scopes.get(a, ())))
    # Scopes the operator chose that name no API here (drive.readonly, ...): storage, as
    # before calendars existed.
    return found or ("storage",)


def check_url(value: Any, what: str) -> str:
    """:returns: ``value`` when it is an ``http(s)`` URL with a host and no query, fragment
    or user info. :raises ApiError: 400 otherwise."""
    if not isinstance(value, str) or len(value) > MAX_VALUE:
        raise invalid_parameters(f"'{what}' must be an http(s) URL.")
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise invalid_parameters(f"'{what}' has an invalid port.") from None
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.fragment
        or (what != "auth_url" and parts.query)
    ):
        raise invalid_parameters(
            f"'{what}' must be an http(s) URL with a host (no user info or fragment)."
        )
    if parts.scheme.lower() == "http" and (parts.hostname or "") not in _LOOPBACK:
        raise invalid_parameters(f"'{what}' must be https (http only on loopback, for tests).")
    return value.rstrip("/") if what in ("api_base", "content_base") else value


def _text(value: Any, what: str) -> str:
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_VALUE
        or not value.isprintable()
    ):
        raise invalid_parameters(f"'{what}' must be a non-empty string.")
    return value.strip()


def build(name: str, settings: Mapping[str, Any]) -> ProviderApp:
    """:returns: a provider's settings from stored or given values (defaults filled in).

    :param settings: ``client_id``, ``client_secret``, optional ``scopes`` (a list; empty or
        missing: the provider's defaults) and endpoint overrides (:data:`ENDPOINTS`).
    :raises ApiError: 400 for a missing or malformed value.
    """
    chosen = provider(name)
    scopes = settings.get("scopes") or list(chosen.scopes)
    if not isinstance(scopes, Sequence) or isinstance(scopes, str) or len(scopes) > 50:
        raise invalid_parameters("'scopes' must be a list of scope names.")
    checked = tuple(_text(s, "scope") for s in scopes)
    if any(" " in s for s in checked):
        raise invalid_parameters("A scope name may not contain spaces (give several).")
    overrides = tuple(e for e in ENDPOINTS if settings.get(e))
    endpoints = {
        e: check_url(settings[e], e) if e in overrides else getattr(chosen, e) for e in ENDPOINTS
    }
    return ProviderApp(
        chosen,
        _text(settings.get("client_id"), "client_id"),
        _text(settings.get("client_secret"), "client_secret"),
        checked,
        overrides=overrides,
        **endpoints,
    )


def _stored(app: ProviderApp) -> dict[str, Any]:
    values: dict[str, Any] = {
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "scopes": list(app.scopes) if app.scopes != app.provider.scopes else [],
    }
    values.update({e: getattr(app, e) for e in app.overrides})
    return values


def save(store: Store, app_id: str, app: ProviderApp) -> None:
    """Store (or replace) an application's settings for ``app.provider`` (sealed)."""
    sealed = seal(store.server_secret(), json.dumps(_stored(app), sort_keys=True))
    with store.transaction():
        store.execute(
            "INSERT INTO provider_apps (app_id, provider, client_id, sealed, modified) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (app_id, provider) DO UPDATE SET "
            "client_id = excluded.client_id, sealed = excluded.sealed, "
            "modified = excluded.modified",
            (app_id, app.name, app.client_id, sealed, now_iso()),
        )


def load(store: Store, app_id: str, name: str) -> ProviderApp | None:
    """:returns: the application's settings for provider ``name``, or None when it has none.

    :raises ApiError: 500 when the row cannot be unsealed (another server secret).
    """
    row = store.one(
        "SELECT sealed FROM provider_apps WHERE app_id = ? AND provider = ?", (app_id, name)
    )
    if row is None:
        return None
    try:
        values = json.loads(unseal(store.server_secret(), str(row["sealed"])))
    except ValueError:
        raise ApiError(
            500,
            "internal_error",
            f"The stored {name} settings cannot be read (was the server secret replaced?); "
            f"set them again with: kloudless apps provider set {name} ...",
        ) from None
    return build(name, values)


def configured(store: Store, app_id: str) -> list[ProviderApp]:
    """:returns: the application's configured providers, in catalogue order."""
    rows = store.all("SELECT provider FROM provider_apps WHERE app_id = ?", (app_id,))
    names = {str(r["provider"]) for r in rows}
    found = [load(store, app_id, n) for n in CATALOGUE if n in names]
    return [f for f in found if f is not None]


def remove(store: Store, app_id: str, name: str) -> bool:
    """Forget an application's settings for a provider (connected accounts keep working
    with the client they were connected with). :returns: whether there were any."""
    cur = store.execute(
        "DELETE FROM provider_apps WHERE app_id = ? AND provider = ?", (app_id, provider(name).name)
    )
    return cur.rowcount > 0
