"""Watch an account's activity stream, remembering where it stopped in a cursor file.

The first run starts from the current end of the stream (``events/latest``); every poll then reads
the events after the stored cursor with the SDK's paging iterator, prints them, and saves
``events.latest_cursor`` (atomically: a temporary file renamed into place), so a restart neither
misses nor repeats events.

Run it against the local server::

    KLOUDLESS_TOKEN=... KLOUDLESS_BASE_URL=http://localhost:8002 \\
        python examples/watch_events.py --cursor-file .kloudless-cursor --interval 5

``--once`` polls once and exits; ``--max-polls N`` stops after N polls; Ctrl-C stops cleanly.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

from kloudless import Account
from kloudless.exceptions import KloudlessException


def read_cursor(path: str) -> str | None:
    """The stored cursor, or None when there is none yet.

    :param path: the cursor file.
    :returns: the cursor text.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except FileNotFoundError:
        return None


def write_cursor(path: str, cursor: Any) -> None:
    """Store the cursor atomically, so a crash never leaves a half-written file.

    :param path: the cursor file.
    :param cursor: the cursor to store.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".cursor-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{cursor}\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def describe(event: dict[str, Any]) -> str:
    """One line per event: time, type, and the name and id of what changed.

    :param event: an activity event object.
    :returns: the line.
    """
    meta = event.get("metadata") if isinstance(event.get("metadata"), dict) else {}
    name = meta.get("name") if meta else None
    object_id = meta.get("id") if meta else event.get("id")
    return (
        f"{event.get('modified') or '-'}  {event.get('type', '-'):<8} {name or '-'}  ({object_id})"
    )


def poll(account: Account, cursor: str, page_size: int) -> str:
    """Print every event after ``cursor`` and return the new cursor.

    :param account: the account to watch.
    :param cursor: the stored cursor.
    :param page_size: events per request.
    :returns: the cursor to store (unchanged when nothing happened).
    """
    events = account.get("events", params={"cursor": cursor, "page_size": page_size})
    for event in events.get_paging_iterator():
        print(describe(event.data), flush=True)
    latest = events.latest_cursor
    return str(latest) if latest not in (None, "", -1, "-1") else cursor


def make_account() -> Account:
    """The account from KLOUDLESS_TOKEN (or KLOUDLESS_API_KEY + KLOUDLESS_ACCOUNT_ID)."""
    token = os.environ.get("KLOUDLESS_TOKEN")
    if token:
        return Account(token=token)
    return Account(
        api_key=os.environ.get("KLOUDLESS_API_KEY"),
        account_id=os.environ.get("KLOUDLESS_ACCOUNT_ID"),
    )


def main(argv: list[str] | None = None) -> int:
    """Poll the activity stream until stopped.

    :param argv: command-line arguments (default ``sys.argv[1:]``).
    :returns: the exit code.
    """
    parser = argparse.ArgumentParser(description="Watch an account's activity stream.")
    parser.add_argument("--cursor-file", default=".kloudless-cursor", help="where the cursor lives")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--once", action="store_true", help="poll once and exit")
    parser.add_argument("--max-polls", type=int, help="stop after this many polls")
    args = parser.parse_args(argv)
    interval = min(max(args.interval, 0.1), 300.0)
    max_polls = 1 if args.once else args.max_polls
    try:
        with make_account() as account:
            cursor = read_cursor(args.cursor_file)
            if cursor is None:
                cursor = str(account.get("events/latest").data["cursor"])
                write_cursor(args.cursor_file, cursor)
                print(f"starting at cursor {cursor}", file=sys.stderr)
            polls = 0
            while True:
                cursor = poll(account, cursor, args.page_size)
                write_cursor(args.cursor_file, cursor)
                polls += 1
                if max_polls is not None and polls >= max_polls:
                    break
                time.sleep(interval)
    except KeyboardInterrupt:
        return 0
    except KloudlessException as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
