"""Calendars of provider accounts (Google Calendar, Outlook): which accounts have them, and
the connectors that serve them.

A sign-in at a provider asks for the APIs the Kloudless ``scope`` names
(:func:`~.providers.requested_apis`); the APIs the user granted are kept in the account's
config as ``provider_apis``. So one Google account can offer storage (Drive, through rclone)
*and* calendars, as Kloudless accounts had several ``apis``:

* a storage service (``gdrive``, ``onedrivebiz``, ...) whose sign-in also granted calendars
  is served by :class:`CalendarProviderConnector`: rclone storage plus the calendar API;
* an account whose sign-in granted calendars only gets the provider's calendar service
  (``google_calendar``, ``outlook_calendar``), served by :class:`CalendarOnlyConnector`:
  calendars, activity and pass-through, no storage.

Both reach the provider with the one token of :class:`~.provider.TokenKeeper`; the backend of
each provider is built by its entry in :data:`BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import not_implemented
from ..outbound import policy_for
from ..store import Store
from .base import AccountEnv, Connector, PassthroughRequest
from .calendar_base import CalendarBackend
from .provider import PROVIDER_SERVICES, ProviderConnector, TokenKeeper, app_of, passthrough
from .provider_calendar_base import PageTokens, SyncState, forget_account
from .providers import CATALOGUE
from .rclone_remotes import load_spec

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

try:  # google-api-python-client and google-auth come with the `google` extra
    from . import google_calendar
except ModuleNotFoundError as _missing:  # pragma: no cover - depends on the installation
    google_calendar = None  # type: ignore[assignment]
    GOOGLE_MISSING: str | None = _missing.name
else:
    GOOGLE_MISSING = None
try:  # icalendar (recurrence rules, Windows zone names) comes with the `outlook` extra
    from . import outlook_calendar
except ModuleNotFoundError as _absent:  # pragma: no cover - depends on the installation
    outlook_calendar = None  # type: ignore[assignment]
    OUTLOOK_MISSING: str | None = _absent.name
else:
    OUTLOOK_MISSING = None


def _google(env: AccountEnv, keeper: TokenKeeper) -> CalendarBackend:
    if google_calendar is None:  # pragma: no cover - depends on the installation
        raise not_implemented(
            f"Google Calendar needs the server's `google` extra ({GOOGLE_MISSING} is missing): "
            "pip install 'kloudless-compat[google]'."
        )
    spec = load_spec(env.config, env.store.server_secret())
    return google_calendar.GoogleCalendar(
        app_of(env.config, spec).api_base,
        keeper.access_token,
        policy_for(env.settings),
        lambda key: PageTokens(env.store, env.account_id, key),
        SyncState(env.store, env.account_id),
    )


def _microsoft(env: AccountEnv, keeper: TokenKeeper) -> CalendarBackend:
    if outlook_calendar is None:  # pragma: no cover - depends on the installation
        raise not_implemented(
            f"Outlook calendars need the server's `outlook` extra ({OUTLOOK_MISSING} is "
            "missing): pip install 'kloudless-compat[outlook]'."
        )
    return outlook_calendar.backend(env, keeper)


#: Provider name -> ``factory(env, keeper)`` building the account's calendar backend.
BACKENDS: dict[str, Callable[[AccountEnv, TokenKeeper], CalendarBackend]] = {
    "google": _google,
    "microsoft": _microsoft,
}


def has_calendars(config: dict[str, Any]) -> bool:
    """:returns: whether a provider account's sign-in granted calendars."""
    return "calendar" in (config.get("provider_apis") or ()) and (
        str(config.get("provider", "")) in BACKENDS
    )


def calendar_backend(env: AccountEnv) -> CalendarBackend | None:
    """:returns: the calendar backend of a provider account, or None when its sign-in did
    not grant calendars (the API then answers 501)."""
    if not has_calendars(env.config):
        return None
    keeper = TokenKeeper(env)
    return BACKENDS[str(env.config["provider"])](keeper.reload(), keeper)


class CalendarProviderConnector(ProviderConnector):
    """A provider storage service whose accounts may also have calendars."""

    apis: tuple[str, ...] = ("storage", "calendar", "events")

    def account_apis(self, config: dict[str, Any]) -> tuple[str, ...]:
        if config.get("provider") and has_calendars(config):
            return ("storage", "calendar", "events")
        return ("storage", "events")

    def calendar(self, env: AccountEnv) -> CalendarBackend | None:
        return calendar_backend(env) if env.config.get("provider") else None

    def on_account_deleted(self, store: Store, account_id: int, data_dir: str) -> None:
        super().on_account_deleted(store, account_id, data_dir)
        forget_account(store, account_id)


class CalendarOnlyConnector(Connector):
    """A provider's calendar service (``google_calendar``): calendars, activity and
    pass-through of accounts connected for calendars only."""

    apis = ("calendar", "events")

    def __init__(self, service: str, title: str) -> None:
        self.service = service
        self.service_name = title

    def calendar(self, env: AccountEnv) -> CalendarBackend | None:
        return calendar_backend(env)

    def passthrough(self, env: AccountEnv, request: PassthroughRequest) -> Response | None:
        return passthrough(env, request)

    def on_account_deleted(self, store: Store, account_id: int, data_dir: str) -> None:
        forget_account(store, account_id)


_TITLES = {"google_calendar": "Google Calendar", "outlook_calendar": "Outlook Calendar"}

#: Every provider connector: storage services (with calendars when granted), then the
#: calendar-only services.
CONNECTORS: tuple[Connector, ...] = (
    *(CalendarProviderConnector(s) for s in PROVIDER_SERVICES),
    *(
        CalendarOnlyConnector(p.calendar_service, _TITLES.get(p.calendar_service, p.title))
        for p in CATALOGUE.values()
        if p.calendar_service
    ),
)
