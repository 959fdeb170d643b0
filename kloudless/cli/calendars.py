"""Calendar commands: ``cal list``, ``cal events``, ``cal add``."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence
from typing import Any

from kloudless import exceptions

from . import output
from .argtypes import parse_duration, parse_user_time, positive_int
from .command import add_command, add_group, response_data
from .context import Context
from .errors import EXIT_NOT_FOUND, CommandError
from .listing import quote_id
from .resolve import PAGE_SIZE


def _calendar_id(ctx: Context, spec: str | None) -> str:
    """Accept a calendar id, ``primary`` or a calendar name."""
    if not spec or spec == "primary":
        return "primary"
    try:
        return str(ctx.account.get(f"cal/calendars/{quote_id(spec)}").data["id"])
    except exceptions.APIException as exc:
        if getattr(exc, "status", None) not in (400, 404):
            raise
    matches = [c for c in _calendars(ctx) if c.get("name") == spec]
    if len(matches) == 1:
        return str(matches[0]["id"])
    if matches:
        raise CommandError(f"calendar name '{spec}' is ambiguous; use its id")
    raise CommandError(f"no such calendar: {spec}", EXIT_NOT_FOUND)


def _calendars(ctx: Context) -> list[dict[str, Any]]:
    listing = ctx.account.get("cal/calendars", params={"page_size": PAGE_SIZE})
    return [response_data(c) for c in listing.get_paging_iterator()]


def cmd_cal_list(ctx: Context) -> int:
    """List calendars."""
    calendars = _calendars(ctx)
    if ctx.json:
        output.print_json(calendars)
        return 0
    rows = [
        [c.get("name"), "yes" if c.get("primary") else "", c.get("timezone"), c.get("id")]
        for c in calendars
    ]
    output.echo(output.render_table(rows, ["NAME", "PRIMARY", "TIMEZONE", "ID"]))
    return 0


def _event_time(event: dict[str, Any], key: str) -> str:
    """:returns: an event's start or end: the date alone for all-day events (a date has no
    time zone to convert), else the local time."""
    value = event.get(key)
    if event.get("all_day") or _plain_date(value if isinstance(value, str) else None):
        return str(value or "-")
    return output.format_time(value)


def _event_rows(events: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [
        [_event_time(e, "start"), _event_time(e, "end"), e.get("name"), e.get("id")] for e in events
    ]


def cmd_cal_events(ctx: Context) -> int:
    """List events of a calendar."""
    calendar_id = _calendar_id(ctx, ctx.args.calendar)
    params: dict[str, Any] = {"page_size": min(ctx.args.limit, PAGE_SIZE)}
    if ctx.args.start:
        params["start"] = parse_user_time(ctx.args.start, "--from")
    if ctx.args.end:
        params["end"] = parse_user_time(ctx.args.end, "--to")
    listing = ctx.account.get(f"cal/calendars/{quote_id(calendar_id)}/events", params=params)
    events = [response_data(e) for e in listing.get_paging_iterator(max_resources=ctx.args.limit)]
    if ctx.json:
        output.print_json(events)
    else:
        output.echo(output.render_table(_event_rows(events), ["START", "END", "NAME", "ID"]))
    return 0


def cmd_cal_add(ctx: Context) -> int:
    """Create an event; a date-only ``--start`` makes an all-day event."""
    if ctx.args.end and ctx.args.duration:
        raise CommandError("give --end or --duration, not both")
    day = _plain_date(ctx.args.start)
    if day is not None:
        start, end = _all_day_range(day, ctx.args.end, ctx.args.duration)
    else:
        start, end = _timed_range(ctx)
    body: dict[str, Any] = {"name": ctx.args.name, "start": start, "end": end}
    if ctx.args.description:
        body["description"] = ctx.args.description
    if ctx.args.location:
        body["location"] = ctx.args.location
    calendar_id = _calendar_id(ctx, ctx.args.calendar)
    path = f"cal/calendars/{quote_id(calendar_id)}/events"
    event = response_data(ctx.account.post(path, json=body))
    if ctx.json:
        output.print_json(event)
    else:
        output.echo(output.render_table(_event_rows([event]), ["START", "END", "NAME", "ID"]))
    return 0


def _plain_date(text: str | None) -> _dt.date | None:
    """:returns: the date when ``text`` is a date without a time (``2030-05-02``), else None."""
    raw = (text or "").strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        return None
    try:
        return _dt.date.fromisoformat(raw)
    except ValueError:
        return None


def _all_day_range(day: _dt.date, end_text: str | None, duration: str | None) -> tuple[str, str]:
    """:returns: ``(start, end)`` dates of an all-day event; the end (exclusive, as in
    iCalendar) defaults to the next day, or is ``--end DATE`` or ``--duration`` whole days.
    :raises CommandError: for a timed ``--end``, a partial-day duration or an empty range."""
    if end_text:
        end = _plain_date(end_text)
        if end is None:
            raise CommandError("--end: an all-day event (date-only --start) needs a date end")
    elif duration:
        length = parse_duration(duration)
        if length % _dt.timedelta(days=1):
            raise CommandError("--duration: an all-day event lasts whole days (e.g. 2d)")
        end = day + length
    else:
        end = day + _dt.timedelta(days=1)
    if end <= day:
        raise CommandError("the event must end after it starts")
    return day.isoformat(), end.isoformat()


def _timed_range(ctx: Context) -> tuple[str, str]:
    """:returns: ``(start, end)`` UTC times of a timed event from the command's options."""
    start = parse_user_time(ctx.args.start, "--start")
    if ctx.args.end:
        end = parse_user_time(ctx.args.end, "--end")
    else:
        begin = output.parse_time(start)
        assert begin is not None  # produced by parse_user_time
        end = (begin + parse_duration(ctx.args.duration or "1h")).strftime("%Y-%m-%dT%H:%M:%SZ")
    if end <= start:
        raise CommandError("the event must end after it starts")
    return start, end


def register(subparsers: Any) -> None:
    """Add ``cal`` and its subcommands to the main parser's subcommands.

    :param subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    cal_sub = add_group(subparsers, "cal", "calendars and events", "Calendars and events.")

    add_command(cal_sub, "list", cmd_cal_list, "list calendars")

    p = add_command(cal_sub, "events", cmd_cal_events, "list events of a calendar")
    p.add_argument(
        "calendar", nargs="?", metavar="CAL", help="calendar id or name (default primary)"
    )
    p.add_argument("--from", dest="start", metavar="TIME", help="only events ending after this")
    p.add_argument("--to", dest="end", metavar="TIME", help="only events starting before this")
    p.add_argument("--limit", type=positive_int, default=100, help="most events (default 100)")

    p = add_command(cal_sub, "add", cmd_cal_add, "create an event")
    p.add_argument("name", metavar="NAME", help="event title")
    p.add_argument(
        "--start",
        required=True,
        metavar="TIME",
        help="e.g. 2024-05-01T14:00 (local); a date alone (2024-05-01) makes an all-day event",
    )
    p.add_argument("--end", metavar="TIME", help="end time")
    p.add_argument("--duration", help="length instead of --end, e.g. 30m or 1h30m (default 1h)")
    p.add_argument("--calendar", metavar="CAL", help="calendar id or name (default primary)")
    p.add_argument("--description", help="event description")
    p.add_argument("--location", help="where the event takes place")
