"""Parsers of the values users type: counts, sizes, dates, times and durations."""

from __future__ import annotations

import argparse
import datetime as _dt

from . import output
from .errors import CommandError


def _whole_number(text: str, least: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {rule}: {text!r}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1, "1 or more")


def limit_count(text: str) -> int:
    """Parse a limit: a whole number, 0 meaning no limit."""
    return _whole_number(text, 0, "0 (no limit) or more")


def byte_count(text: str) -> int:
    """Parse ``1048576``, ``512K``, ``8M`` or ``1G`` (binary multiples)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = units.get(cleaned[-1:], 1)
    number = cleaned[:-1] if cleaned[-1:] in units else cleaned
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 8M)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def byte_count_or_zero(text: str) -> int:
    """Parse a size as :func:`byte_count` does, or ``0`` (none)."""
    return 0 if text.strip() == "0" else byte_count(text)


def parse_user_time(text: str, option: str) -> str:
    """Turn a date or time typed by the user into the API's ISO-8601 UTC form.

    Accepts ``2024-05-01``, ``2024-05-01 14:00``, ``2024-05-01T14:00:00+02:00`` or ``...Z``;
    times without a zone are local times.

    :param text: the user's input.
    :param option: the option name, for the error message.
    :returns: e.g. ``2024-05-01T12:00:00Z``.
    :raises CommandError: if the text is not a date or time.
    """
    raw = text.strip()
    parsed = output.parse_time(raw) if raw.endswith(("Z", "z")) else None
    if parsed is None:
        try:
            parsed = _dt.datetime.fromisoformat(raw)
        except ValueError:
            raise CommandError(
                f"{option}: not a date or time: {text!r} (use e.g. 2024-05-01 or 2024-05-01T14:00)"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()  # naive = local time
    return parsed.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str) -> _dt.timedelta:
    """Parse a short duration such as ``30m``, ``1h``, ``1h30m``, ``90s`` or ``2d``.

    :param text: the user's input.
    :returns: the duration.
    :raises CommandError: for anything else or a zero duration.
    """
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    total = 0
    number = ""
    for char in text.strip().lower():
        if char.isdigit():
            number += char
        elif char in units and number:
            total += int(number) * units[char]
            number = ""
        else:
            raise CommandError(f"--duration: not a duration: {text!r} (use e.g. 30m, 1h, 1h30m)")
    if number or total <= 0:
        raise CommandError(f"--duration: not a duration: {text!r} (use e.g. 30m, 1h, 1h30m)")
    return _dt.timedelta(seconds=total)
