"""Output helpers for the ``kloudless`` command line: tables, sizes, times, JSON, errors.

Human output goes to stdout as aligned plain-text tables; ``--json`` output is one JSON document
(or one JSON object per line when following a stream). Errors are one line on stderr.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any

#: Prefix of every error line, so scripts and people can tell errors from data.
PROG = "kloudless"

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def format_size(size: Any) -> str:
    """Format a byte count with binary units (``512 B``, ``1.5 KiB``, ``3.0 MiB``).

    :param size: a number of bytes (int, float or numeric string); anything else gives ``-``.
    :returns: the human-readable size.
    """
    try:
        value = float(size)
    except (TypeError, ValueError):
        return "-"
    if value < 1024:
        return f"{int(value)} B"
    for unit in _UNITS:
        value /= 1024.0
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    return f"{value:.1f} {_UNITS[-1]}"  # pragma: no cover - loop always returns


def parse_time(value: Any) -> _dt.datetime | None:
    """Parse an ISO-8601 timestamp as sent by the API (``Z`` suffix accepted).

    :param value: the timestamp string (or None).
    :returns: an aware datetime (naive input is taken as UTC), or None if it cannot be parsed.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.timezone.utc)
    return parsed


def format_time(value: Any) -> str:
    """Format an API timestamp in the local time zone (``2024-05-01 14:03``).

    :param value: an ISO-8601 string; unparseable values are returned unchanged, None gives ``-``.
    :returns: the local time as text.
    """
    parsed = parse_time(value)
    if parsed is None:
        return "-" if value in (None, "") else str(value)
    return parsed.astimezone().strftime("%Y-%m-%d %H:%M")


def render_table(
    rows: Iterable[Sequence[Any]],
    headers: Sequence[str],
    right_align: Sequence[int] = (),
) -> str:
    """Render rows as an aligned plain-text table with a header line.

    :param rows: the rows; each cell is turned into text with ``str`` (None becomes ``-``).
    :param headers: the column titles.
    :param right_align: indexes of the columns to right-align (numbers, sizes).
    :returns: the table, without a trailing newline.
    """
    text_rows = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = []
        for index, cell in enumerate(cells):
            if index in right_align:
                parts.append(cell.rjust(widths[index]))
            elif index == len(cells) - 1:
                parts.append(cell)  # no trailing spaces on the last column
            else:
                parts.append(cell.ljust(widths[index]))
        return "  ".join(parts).rstrip()

    return "\n".join([line(list(headers))] + [line(row) for row in text_rows])


def print_json(data: Any, stream: IO[str] | None = None, *, lines: bool = False) -> None:
    """Write ``data`` as JSON to stdout (indented, or one compact line with ``lines=True``).

    :param data: any JSON-serialisable value.
    :param stream: where to write (default: the current ``sys.stdout``).
    :param lines: write one compact line (JSON Lines) instead of an indented document.
    """
    out = stream if stream is not None else sys.stdout
    # Names stay readable ("Café.txt", not "Caf\\u00e9.txt"), written as UTF-8 whatever the
    # locale's encoding: JSON is UTF-8 (RFC 8259).
    indent = None if lines else 2
    text = json.dumps(data, indent=indent, sort_keys=True, default=str, ensure_ascii=False) + "\n"
    binary = getattr(out, "buffer", None)
    if (
        binary is not None
        and (getattr(out, "encoding", "") or "").lower().replace("-", "") != "utf8"
    ):
        out.flush()
        binary.write(text.encode("utf-8"))
        binary.flush()
        return
    out.write(text)
    out.flush()


def echo(text: str = "", stream: IO[str] | None = None) -> None:
    """Print one line of human output to stdout (or ``stream``) and flush it.

    :param text: the text to print.
    :param stream: where to write (default: the current ``sys.stdout``).
    """
    out = stream if stream is not None else sys.stdout
    out.write(text + "\n")
    out.flush()


def info(text: str) -> None:
    """Print a status line on stderr (kept out of stdout so pipes only see data).

    :param text: the message.
    """
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def error(message: str) -> None:
    """Print a one-line error on stderr, prefixed with the program name.

    :param message: the error text; newlines are folded so it stays one line.
    """
    one_line = " ".join(str(message).split())
    sys.stderr.write(f"{PROG}: error: {one_line}\n")
    sys.stderr.flush()
