"""The ``caldav`` connector: the calendar API over a CalDAV server (Radicale, Baikal, Nextcloud,
Fastmail, iCloud, ...), plus pass-through.

The account's URL may be the server root, the principal or the calendar home; the ``caldav``
package discovers the calendar home from it. Calendars are the collections of the calendar home;
ids are ``cal_`` + unpadded base64url of the collection's name (its last path segment). Events
are the calendar object resources; ids are ``evt_`` + base64url of the resource name (usually
``<UID>.ics``). The primary calendar is the one named by the account setting
``primary_calendar`` (a collection name, pinned when the account is connected), else the first
calendar by collection name; an account without calendars gets one named "Calendar".

Events map to API fields with :mod:`~kloudless.server.connectors.caldav_mapping`; ``raw`` is
the iCalendar text. ``start``/``end`` filters use a CalDAV ``calendar-query`` with a
``time-range`` (so recurring events match when any occurrence overlaps). Availability uses the
calendar API's default busy-interval computation over these events.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from kloudless.server.connectors.base import AccountEnv, Connector, PassthroughRequest
from kloudless.server.connectors.calendar_base import (
    PRIMARY,
    CalendarBackend,
    CalendarConflict,
    CalendarError,
    CalendarForbidden,
    CalendarInvalid,
    CalendarNotFound,
    CalendarRecord,
    EventRecord,
    Page,
)
from kloudless.server.connectors.carddav import contacts_for
from kloudless.server.connectors.contacts_base import ContactsBackend
from kloudless.server.connectors.pool import ClientPool
from kloudless.server.connectors.webdav_auth import (
    check_address,
    clean_settings,
    credentials,
    imported_config,
    stored_config,
)
from kloudless.server.connectors.webdav_client import WebDAVClient, client_for
from kloudless.server.connectors.webdav_errors import (
    AddressRefused,
    BadGateway,
    GatewayTimeout,
    ServiceForbidden,
    ServiceNotAvailable,
    ServiceUnauthorized,
    error_for_status,
)
from kloudless.server.connectors.webdav_passthrough import forward_request
from kloudless.server.errors import ApiError, invalid_parameters, not_implemented
from kloudless.server.outbound import DEFAULT_POLICY, OutboundPolicy, OutboundRefused, policy_for

try:  # icalendar and caldav come with the `caldav` extra; the server runs without them
    from kloudless.server.connectors import caldav_mapping as mapping
except ModuleNotFoundError as _missing:  # pragma: no cover - depends on the installation
    mapping = None  # type: ignore[assignment]
    MISSING_DEPENDENCY: str | None = _missing.name
else:
    MISSING_DEPENDENCY = None

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from kloudless.server.store import Store

log = logging.getLogger("kloudless.server.caldav")

#: Most events read for one listing (the CalDAV query returns them all at once).
MAX_EVENTS = 10000
DEFAULT_TIMEOUT = 30


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")


def encode_id(prefix: str, name: str) -> str:
    """:returns: ``prefix`` + base64url(``name``) without padding."""
    return prefix + _b64(name)


def decode_id(prefix: str, object_id: str, what: str) -> str:
    """:returns: the resource name in an id. :raises CalendarNotFound: for foreign ids."""
    if not object_id.startswith(prefix) or len(object_id) <= len(prefix):
        raise CalendarNotFound(f"{what} not found: {object_id[:100]}")
    try:
        name = _unb64(object_id[len(prefix) :])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CalendarNotFound(f"{what} not found: {object_id[:100]}") from None
    if not name or "/" in name or name in (".", "..") or encode_id(prefix, name) != object_id:
        raise CalendarNotFound(f"{what} not found: {object_id[:100]}")
    return name


def _segment(url: Any) -> str:
    """:returns: the decoded last path segment of a collection or object URL."""
    path = urlsplit(str(url)).path.rstrip("/")
    return unquote(path.rsplit("/", 1)[-1])


@contextlib.contextmanager
def upstream_errors(not_found: str = "Not found.") -> Iterator[None]:
    """Translate ``caldav``/``requests`` failures into the connector's typed errors; any other
    failure inside the library (a parse error on a malformed or unexpected answer, ...) is a
    502 ``bad_gateway``, never a 500.

    :param not_found: message of the :class:`CalendarNotFound` raised for a 404.
    """
    import requests
    from caldav.lib import error as caldav_error

    try:
        yield
    except (ApiError, CalendarError):
        raise  # already typed (ours)
    except OutboundRefused as exc:
        raise AddressRefused(f"The CalDAV server's address is refused: {exc}") from None
    except caldav_error.NotFoundError:
        raise CalendarNotFound(not_found) from None
    except caldav_error.AuthorizationError as exc:
        reason = str(getattr(exc, "reason", ""))
        if "403" in reason or "orbidden" in reason:
            raise ServiceForbidden("The CalDAV server forbids this operation.", 403) from None
        raise ServiceUnauthorized("The CalDAV server rejected the credentials.", 401) from None
    except caldav_error.DAVError as exc:
        reason = str(getattr(exc, "reason", "") or "").strip()
        status = next(
            (int(w) for w in reason.split()[:3] if w.isascii() and w.isdigit() and len(w) == 3),
            None,
        )
        if status == 404:
            raise CalendarNotFound(not_found) from None
        message = f"The CalDAV server refused the request: {reason[:200]}"
        if status is not None and status >= 400:
            raise error_for_status(status, message) from None
        raise BadGateway(message) from None
    except requests.Timeout:
        raise GatewayTimeout("The CalDAV server did not answer in time.") from None
    except requests.ConnectionError:
        raise ServiceNotAvailable("Cannot connect to the CalDAV server.") from None
    except requests.RequestException as exc:
        raise BadGateway(f"The CalDAV request failed: {type(exc).__name__}") from None
    except Exception as exc:  # the library choked on what the upstream sent
        log.warning("CalDAV library failure", exc_info=True)
        raise BadGateway(
            f"The CalDAV server's answer could not be understood ({type(exc).__name__})."
        ) from None


class CalDAVCalendar(CalendarBackend):
    """:class:`CalendarBackend` of one ``caldav`` account.

    :param url: the CalDAV URL (server root, principal or calendar home).
    :param username: basic-auth user.
    :param password: basic-auth password.
    :param primary: collection name of the primary calendar, if configured.
    :param timeout: seconds for each upstream request.
    :param policy: the outbound policy every request obeys.
    """

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        primary: str | None = None,
        timeout: int = DEFAULT_TIMEOUT,
        policy: OutboundPolicy = DEFAULT_POLICY,
    ) -> None:
        import caldav

        self.client = caldav.DAVClient(url, username=username, password=password, timeout=timeout)
        # The library's own session follows redirects and trusts the environment's proxies:
        # replace it with one that connects only to checked addresses and follows nothing.
        self.client.session.close()
        self.client.session = policy.session()
        self._configured_primary = primary
        self._principal: Any = None

    def close(self) -> None:
        """Close the upstream connections."""
        self.client.close()

    # -- calendars -----------------------------------------------------------------------------

    def _home(self) -> Any:
        if self._principal is None:
            with upstream_errors("No CalDAV principal at this URL."):
                self._principal = self.client.principal()
        return self._principal

    def _calendars(self) -> list[Any]:
        principal = self._home()
        with upstream_errors("No calendar home at this URL."):
            return list(principal.calendars())

    def _calendar(self, calendar_id: str) -> Any:
        calendar_id = self.resolve_calendar_id(calendar_id)
        name = decode_id("cal_", calendar_id, "Calendar")
        principal = self._home()
        with upstream_errors(f"Calendar not found: {calendar_id[:100]}"):
            home = principal.calendar_home_set
            url = str(home.url).rstrip("/") + "/" + quote(name, safe="") + "/"
            calendar = principal.calendar(cal_url=url)
            props = self._props(calendar)
        if props is None:
            raise CalendarNotFound(f"Calendar not found: {calendar_id[:100]}")
        return calendar

    def _props(self, calendar: Any) -> dict[str, Any] | None:
        from caldav.elements import cdav, dav

        wanted = [dav.DisplayName(), cdav.CalendarDescription(), cdav.CalendarTimeZone()]
        props = calendar.get_properties(wanted)
        return dict(props) if props is not None else None

    def _record(self, calendar: Any, primary_id: str | None = None) -> CalendarRecord:
        from caldav.elements import cdav, dav

        with upstream_errors("Calendar not found."):
            props = self._props(calendar) or {}
        name = _segment(calendar.url)
        cal_id = encode_id("cal_", name)
        zone = None
        tz_text = props.get(cdav.CalendarTimeZone.tag)
        if tz_text:
            with contextlib.suppress(ValueError):
                for component in mapping.parse_calendar(tz_text).walk("VTIMEZONE"):
                    zone = str(component.get("TZID"))
                    break
        primary = cal_id == (primary_id or self.primary_calendar_id())
        return CalendarRecord(
            id=cal_id,
            name=str(props.get(dav.DisplayName.tag) or name),
            description=props.get(cdav.CalendarDescription.tag) or None,
            location=None,
            timezone=zone,
            primary=primary,
            raw={"href": str(calendar.url), "properties": dict(props.items())},
        )

    def primary_calendar_id(self) -> str:
        return encode_id("cal_", self.primary_name())

    def primary_name(self) -> str:
        """Find the primary calendar.

        :returns: its collection name: the configured one, else the first by name (then
            remembered for this backend's life), else that of a new "Calendar".
        """
        names = sorted(_segment(c.url) for c in self._calendars())
        if self._configured_primary and self._configured_primary in names:
            return self._configured_primary
        if names:
            chosen = names[0]
        else:
            with upstream_errors("No calendar home at this URL."):
                chosen = _segment(self._home().make_calendar(name="Calendar").url)
        self._configured_primary = chosen
        return chosen

    def list_calendars(self, page: int, page_size: int) -> Page[CalendarRecord]:
        primary = self.primary_calendar_id()
        calendars = self._calendars()
        records = [self._record(c, primary) for c in calendars]
        records.sort(key=lambda r: not r.primary)
        start = (page - 1) * page_size
        chunk = records[start : start + page_size]
        more = start + page_size < len(records)
        return Page(chunk, page, page + 1 if more else None)

    def get_calendar(self, calendar_id: str) -> CalendarRecord:
        return self._record(self._calendar(calendar_id))

    def create_calendar(self, fields: Mapping[str, Any]) -> CalendarRecord:
        with upstream_errors("No calendar home at this URL."):
            calendar = self._home().make_calendar(name=fields["name"])
        self._set_props(calendar, fields)
        return self._record(calendar)

    def _set_props(self, calendar: Any, fields: Mapping[str, Any]) -> None:
        from caldav.elements import cdav, dav

        props: list[Any] = []
        if "name" in fields:
            props.append(dav.DisplayName(fields["name"]))
        if fields.get("description") is not None:
            props.append(cdav.CalendarDescription(fields["description"]))
        if fields.get("timezone"):
            props.append(cdav.CalendarTimeZone(_vtimezone(fields["timezone"])))
        if props:
            with upstream_errors("Calendar not found."):
                calendar.set_properties(props)

    def update_calendar(self, calendar_id: str, changes: Mapping[str, Any]) -> CalendarRecord:
        calendar = self._calendar(calendar_id)
        self._set_props(calendar, changes)
        return self._record(calendar)

    def delete_calendar(self, calendar_id: str) -> CalendarRecord:
        calendar = self._calendar(calendar_id)
        record = self._record(calendar)
        if record.primary:
            raise CalendarForbidden("The primary calendar cannot be deleted.")
        with upstream_errors(f"Calendar not found: {calendar_id[:100]}"):
            calendar.delete()
        return record

    # -- events --------------------------------------------------------------------------------

    def _event_record(self, calendar_id: str, obj: Any) -> EventRecord | None:
        text = obj.data if isinstance(obj.data, str) else str(obj.data or "")
        try:
            vevent = mapping.find_vevent(mapping.parse_calendar(text))
            fields = mapping.event_fields(vevent)
        except (ValueError, KeyError):
            return None  # not an event (a VTODO, or data we cannot read): skip it
        return EventRecord(
            id=encode_id("evt_", _segment(obj.url)), calendar_id=calendar_id, raw=text, **fields
        )

    def list_events(
        self,
        calendar_id: str,
        page: int,
        page_size: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page[EventRecord]:
        calendar = self._calendar(calendar_id)
        real_id = self.resolve_calendar_id(calendar_id)
        with upstream_errors(f"Calendar not found: {calendar_id[:100]}"):
            if start is None and end is None:
                objects = calendar.events()
            else:
                objects = calendar.search(
                    event=True,
                    start=start.astimezone(timezone.utc) if start else None,
                    end=end.astimezone(timezone.utc) if end else None,
                    expand=False,
                )
        records = [r for r in (self._event_record(real_id, o) for o in objects[:MAX_EVENTS]) if r]
        keyed = []
        for record in records:
            try:
                first = record.interval()[0]
            except CalendarInvalid:
                continue
            keyed.append((first, record.id, record))
        keyed.sort(key=lambda item: (item[0], item[1]))
        ordered = [item[2] for item in keyed]
        offset = (page - 1) * page_size
        chunk = ordered[offset : offset + page_size]
        more = offset + page_size < len(ordered)
        return Page(chunk, page, page + 1 if more else None)

    def _event_object(self, calendar_id: str, event_id: str) -> tuple[Any, Any]:
        import caldav

        calendar = self._calendar(calendar_id)
        name = decode_id("evt_", event_id, "Event")
        url = str(calendar.url).rstrip("/") + "/" + quote(name, safe="")
        with upstream_errors(f"Event not found: {event_id[:100]}"):
            obj = caldav.Event(client=self.client, url=url, parent=calendar).load()
        return calendar, obj

    def get_event(self, calendar_id: str, event_id: str) -> EventRecord:
        _, obj = self._event_object(calendar_id, event_id)
        record = self._event_record(self.resolve_calendar_id(calendar_id), obj)
        if record is None:
            raise CalendarNotFound(f"Event not found: {event_id[:100]}")
        return record

    def create_event(self, calendar_id: str, fields: Mapping[str, Any]) -> EventRecord:
        calendar = self._calendar(calendar_id)
        real_id = self.resolve_calendar_id(calendar_id)
        cal, vevent = mapping.new_vevent(fields.get("ical_uid"))
        mapping.apply_fields(vevent, fields)
        uid = str(vevent["UID"])
        with upstream_errors(f"Calendar not found: {calendar_id[:100]}"):
            existing = self._by_uid(calendar, uid)
            if existing is not None:
                raise CalendarConflict(
                    "An event with this ical_uid already exists in the calendar.",
                    encode_id("evt_", _segment(existing.url)),
                )
            obj = calendar.save_event(mapping.calendar_text(cal), no_overwrite=True)
            obj.load()
        record = self._event_record(real_id, obj)
        if record is None:
            raise BadGateway("The CalDAV server stored the event in a form we cannot read.")
        return record

    def _by_uid(self, calendar: Any, uid: str) -> Any:
        from caldav.lib import error as caldav_error

        try:
            return calendar.event_by_uid(uid)
        except caldav_error.NotFoundError:
            return None

    def update_event(
        self, calendar_id: str, event_id: str, changes: Mapping[str, Any]
    ) -> EventRecord:
        _, obj = self._event_object(calendar_id, event_id)
        try:
            cal = mapping.parse_calendar(obj.data)
            vevent = mapping.find_vevent(cal)
        except ValueError as exc:
            raise CalendarInvalid(f"The stored event cannot be edited: {exc}") from None
        mapping.apply_fields(vevent, changes)
        mapping.touch(vevent)
        obj.data = mapping.calendar_text(cal)
        with upstream_errors(f"Event not found: {event_id[:100]}"):
            obj.save()
            obj.load()
        record = self._event_record(self.resolve_calendar_id(calendar_id), obj)
        if record is None:
            raise BadGateway("The CalDAV server stored the event in a form we cannot read.")
        return record

    def delete_event(self, calendar_id: str, event_id: str) -> EventRecord:
        _, obj = self._event_object(calendar_id, event_id)
        record = self._event_record(self.resolve_calendar_id(calendar_id), obj)
        with upstream_errors(f"Event not found: {event_id[:100]}"):
            obj.delete()
        if record is None:
            raise CalendarNotFound(f"Event not found: {event_id[:100]}")
        return record


def _vtimezone(zone: str) -> str:
    """:returns: a ``VCALENDAR`` holding the ``VTIMEZONE`` of an IANA zone (calendar-timezone)."""
    import icalendar

    cal = icalendar.Calendar()
    cal.add("PRODID", "-//kloudless//local API server//EN")
    cal.add("VERSION", "2.0")
    try:
        cal.add_component(icalendar.Timezone.from_tzid(zone))
    except Exception as exc:
        raise CalendarInvalid(f"Unknown time zone: {zone}") from exc
    return cal.to_ical().decode("utf-8")


def require_dependencies() -> None:
    """:raises ApiError: 501 ``not_implemented`` when the ``caldav`` extra is not installed."""
    if MISSING_DEPENDENCY is not None:
        raise not_implemented(
            f"The caldav connector needs the {MISSING_DEPENDENCY!r} package: "
            "pip install 'kloudless-compat[caldav]'."
        )


MAX_CACHED_BACKENDS = 64
_BACKENDS: ClientPool[CalDAVCalendar] = ClientPool(MAX_CACHED_BACKENDS)


def backend_for_settings(
    url: str,
    username: str,
    password: str,
    primary: str | None = None,
    policy: OutboundPolicy = DEFAULT_POLICY,
) -> CalDAVCalendar:
    """:returns: a pooled backend for these settings (connections and discovery are reused)."""
    key = (url, username, hashlib.sha256(password.encode()).hexdigest(), primary, policy)
    return _BACKENDS.get(
        key, lambda: CalDAVCalendar(url, username, password, primary, policy=policy)
    )


def close_backends() -> None:
    """Close every pooled backend (tests and server shutdown)."""
    _BACKENDS.close_all()


# -- connection and the connector -----------------------------------------------------------------


def _primary_calendar(primary: Any) -> str | None:
    """:returns: a ``primary_calendar`` setting (a collection name) or None. :raises ApiError:
    400 for anything else."""
    if primary is not None and (not isinstance(primary, str) or "/" in primary or not primary):
        raise invalid_parameters("'primary_calendar' must be a calendar collection name.")
    return primary


def connect(
    settings: dict[str, Any],
    secret: bytes | None = None,
    policy: OutboundPolicy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Validate CalDAV settings against the server and build the account config.

    Discovers the principal and its calendars, and pins the primary calendar in the config (the
    given ``primary_calendar``, else the first calendar by name, else a new "Calendar").

    :param settings: ``url`` (or ``domain``), ``username``, ``password``; optional
        ``primary_calendar`` (a calendar collection name).
    :param secret: the server secret; when given the password is sealed.
    :param policy: the server's outbound policy (the URL's address is checked first).
    :returns: the ``config`` to store on the account.
    :raises ApiError: 400 for bad settings, a refused address or a URL without a CalDAV
        principal; 401
        ``service_unauthorized`` for wrong credentials; 503/504 when the server is unreachable.
    """
    require_dependencies()
    url, username, password = clean_settings(settings)
    primary = _primary_calendar(settings.get("primary_calendar"))
    check_address(url, policy)
    backend = CalDAVCalendar(url, username, password, primary, timeout=15, policy=policy)
    try:
        chosen = backend.primary_name()  # pins the primary calendar (created if none)
    except CalendarNotFound:
        raise invalid_parameters("No CalDAV principal was found at this URL.") from None
    finally:
        backend.close()
    if primary and chosen != primary:
        raise invalid_parameters(f"No calendar named {primary!r} was found at this URL.")
    config = stored_config(url, username, password, secret)
    config["primary_calendar"] = chosen
    return config


class CalDAVConnector(Connector):
    """Calendars over a CalDAV server, with pass-through."""

    service = "caldav"
    service_name = "CalDAV"
    apis = ("calendar", "crm", "events")
    #: The server's address book, when it has one, backs the contacts API (``carddav``).
    upstream_contacts = True

    def calendar(self, env: AccountEnv) -> Any | None:
        require_dependencies()
        url, username, password = credentials(env.config, env.store.server_secret())
        return backend_for_settings(
            url, username, password, env.config.get("primary_calendar"), policy_for(env.settings)
        )

    def contacts(self, env: AccountEnv) -> ContactsBackend | None:
        """:returns: contacts over the first address book of the same server (501 when it
        has none)."""
        return contacts_for(env)

    def passthrough(self, env: AccountEnv, request: PassthroughRequest) -> Response | None:
        url, username, password = credentials(env.config, env.store.server_secret())
        client: WebDAVClient = client_for(url, username, password, policy_for(env.settings))
        return forward_request(request, client, env.settings.max_upload_bytes)

    def validate_config(
        self,
        config: dict[str, Any],
        store: Store | None = None,
        policy: OutboundPolicy = DEFAULT_POLICY,
    ) -> dict[str, Any]:
        """Check the settings against the server (see :func:`connect`).

        :param store: the server's store; when given the password is sealed with its secret.
        :param policy: the server's outbound policy.
        """
        return connect(config, store.server_secret() if store is not None else None, policy)

    def import_config(
        self, fields: dict[str, Any], store: Store, previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Kloudless import fields (``domain``, ``username``, ``token`` = the password), stored
        untried (see :func:`~kloudless.server.connectors.webdav_auth.imported_config`)."""
        config = imported_config(fields, store.server_secret(), previous)
        primary = fields.get("primary_calendar", (previous or {}).get("primary_calendar"))
        if _primary_calendar(primary) is not None:
            config["primary_calendar"] = primary
        return config


CALDAV = CalDAVConnector()

__all__ = [
    "CALDAV",
    "PRIMARY",
    "CalDAVCalendar",
    "CalDAVConnector",
    "backend_for_settings",
    "close_backends",
    "connect",
    "upstream_errors",
]
