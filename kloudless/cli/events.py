"""The ``events`` command: the account's activity stream, once or following it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from . import output
from .command import add_command, response_data
from .context import Context
from .errors import CommandError
from .listing import display_name, kind_label
from .resolve import PAGE_SIZE

#: Limits of ``events --follow --interval`` so a typo can neither hammer the server nor stall.
MIN_INTERVAL = 0.1
MAX_INTERVAL = 300.0
#: Pages fetched per poll before yielding to the sleep (keeps one poll bounded).
MAX_PAGES_PER_POLL = 1000


def fetch_events(
    account: Any, cursor: Any, page_size: int
) -> Iterator[tuple[list[dict[str, Any]], Any]]:
    """Fetch pages of activity events until the server has nothing more (bounded).

    :param account: the :class:`kloudless.Account`.
    :param cursor: where to start (None for the start of the retained log).
    :param page_size: events per request.
    :returns: an iterator of ``(events of one page, cursor after that page)``.
    """
    for _ in range(MAX_PAGES_PER_POLL):
        params: dict[str, Any] = {"page_size": page_size}
        if cursor not in (None, ""):
            params["cursor"] = cursor
        data = response_data(account.get("events", params=params))
        objects = [dict(o) for o in data.get("objects") or [] if isinstance(o, dict)]
        new_cursor = data.get("cursor", cursor)
        if new_cursor in (None, -1, "-1"):
            new_cursor = cursor
        yield objects, new_cursor
        cursor = new_cursor
        if not objects or not data.get("remaining"):
            return


#: The header above the events (fixed widths: with --follow lines are printed as they come).
EVENT_HEADER = f"{'TIME':<16}  {'ACTION':<8}  {'TYPE':<4}  PATH (ID)"


def event_line(event: dict[str, Any]) -> str:
    """:returns: one event as a line under :data:`EVENT_HEADER`: when, what happened, to what
    kind of object, and the object's path (its name when the event has no path) and id."""
    raw_meta = event.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    when = output.format_time(event.get("modified"))
    action = str(event.get("type") or event.get("action") or "-")
    kind = kind_label(meta) if meta else "-"
    what = str(meta.get("path") or display_name(meta)) if meta else "-"
    if meta.get("type") == "folder" and not what.endswith("/"):
        what += "/"
    object_id = meta.get("id") or event.get("id")
    return f"{when:<16}  {action:<8}  {kind:<4}  {what} ({object_id})"


def cmd_events(ctx: Context) -> int:
    """Show the account's activity events."""
    args = ctx.args
    if args.page_size < 1 or args.page_size > PAGE_SIZE:
        raise CommandError(f"--page-size must be between 1 and {PAGE_SIZE}")
    if args.max_polls is not None and args.max_polls < 1:
        raise CommandError("--max-polls must be 1 or more")
    interval = min(max(args.interval, MIN_INTERVAL), MAX_INTERVAL)
    cursor: Any = args.cursor
    if args.follow and cursor is None:
        # Following starts from now, like `tail -f`.
        cursor = response_data(ctx.account.get("events/latest")).get("cursor")
    collected: list[dict[str, Any]] = []
    polls = 0
    header_shown = False
    try:
        while True:
            polls += 1
            for events, page_cursor in fetch_events(ctx.account, cursor, args.page_size):
                cursor = page_cursor
                for event in events:
                    if args.follow and ctx.json:
                        output.print_json(event, lines=True)
                    elif ctx.json:
                        collected.append(event)
                    else:
                        if not header_shown:
                            output.echo(EVENT_HEADER)
                            header_shown = True
                        output.echo(event_line(event))
            if not args.follow or (args.max_polls is not None and polls >= args.max_polls):
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        # Ctrl-C is how one stops --follow: not an error.
        output.info(f"cursor: {cursor}")
        return 0
    if ctx.json and not args.follow:
        output.print_json({"objects": collected, "cursor": cursor})
    else:
        output.info(f"cursor: {cursor}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``events`` command to the main parser's subcommands.

    :param subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    p = add_command(
        subparsers,
        "events",
        cmd_events,
        "show activity events",
        "Show the account's activity events after a cursor; with --follow keep polling "
        "(Ctrl-C stops). The last cursor is printed on stderr.",
    )
    p.add_argument(
        "--cursor",
        help="start after this cursor (default: the oldest kept event; with --follow: now)",
    )
    p.add_argument("--follow", "-F", action="store_true", help="keep polling for new events")
    p.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help=f"seconds between polls with --follow ({MIN_INTERVAL}-{MAX_INTERVAL:.0f}, default 2)",
    )
    p.add_argument(
        "--page-size", type=int, default=100, metavar="N", help="events per request (default 100)"
    )
    p.add_argument(
        "--max-polls", type=int, default=None, metavar="N", help="stop --follow after N polls"
    )
