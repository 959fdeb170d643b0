"""Time parsing and free-time computation for the calendar API.

Pure functions, no I/O: the calendar API layer parses request values with them and the
``cal/availability`` endpoint feeds them the busy intervals of the requested calendars.

* :func:`parse_datetime` / :func:`parse_time_value` read ISO-8601 date-times (``Z`` or ``+hh:mm``
  offsets, optional fractional seconds) and plain dates (all-day values). Python 3.9's
  :meth:`datetime.fromisoformat` does not accept ``Z`` or reduced forms, hence the own parser.
* :func:`parse_duration` reads ISO-8601 durations such as ``PT1H``, ``PT30M``, ``P1D``, ``P1W``.
* :func:`merge_intervals`, :func:`free_windows` and :func:`find_availability` compute the gaps.
* :func:`format_utc` writes the UTC ``...Z`` strings the API returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone, tzinfo

__all__ = [
    "Interval",
    "find_availability",
    "format_utc",
    "free_windows",
    "merge_intervals",
    "parse_datetime",
    "parse_duration",
    "parse_time_value",
    "resolve_timezone",
    "to_utc",
]

#: A half-open time interval ``[start, end)`` of aware datetimes.
Interval = tuple[datetime, datetime]

_DATE_RE = re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\Z")
_DATETIME_RE = re.compile(
    r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"
    r"[Tt ](?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?\Z"
)
_DURATION_RE = re.compile(
    r"P(?:(?P<W>\d+(?:[.,]\d+)?)W)?(?:(?P<D>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(?P<H>\d+(?:[.,]\d+)?)H)?(?:(?P<M>\d+(?:[.,]\d+)?)M)?(?:(?P<S>\d+(?:[.,]\d+)?)S)?)?\Z"
)


def resolve_timezone(name: str | None) -> tzinfo | None:
    """Look up an IANA time zone name.

    :param name: a zone name such as ``"Europe/Berlin"`` or ``"UTC"``; ``None`` or ``""`` gives
        ``None``.
    :returns: the zone, or ``None`` when no name was given.
    :raises ValueError: the name is not a known zone.
    """
    if not name:
        return None
    if name.upper() in ("UTC", "Z", "GMT", "ETC/UTC"):
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # stdlib from 3.9

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _offset(text: str) -> timezone:
    """Turn ``Z``, ``+hh``, ``+hhmm`` or ``+hh:mm`` into a fixed-offset zone."""
    if text in ("Z", "z"):
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"invalid UTC offset {text!r}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_time_value(value: str) -> datetime | date:
    """Parse an ISO-8601 date-time or a plain date without applying any default zone.

    :param value: e.g. ``"2019-01-01T12:30:00Z"``, ``"2017-05-20T08:00:00+07:00"``,
        ``"2019-01-01T12:30:00"`` (naive) or ``"2019-01-01"`` (a date).
    :returns: a :class:`datetime` (aware when the text has an offset, else naive) or a
        :class:`date`.
    :raises ValueError: the text is not such a value.
    """
    if not isinstance(value, str):
        raise ValueError("expected an ISO-8601 string")
    text = value.strip()
    match = _DATE_RE.match(text)
    if match:
        return date(int(match["y"]), int(match["m"]), int(match["d"]))
    match = _DATETIME_RE.match(text)
    if not match:
        raise ValueError(f"not an ISO-8601 date or date-time: {value!r}")
    micro = int((match["f"] or "0")[:6].ljust(6, "0"))
    tz = _offset(match["tz"]) if match["tz"] else None
    return datetime(
        int(match["y"]),
        int(match["m"]),
        int(match["d"]),
        int(match["H"]),
        int(match["M"]),
        int(match["S"] or 0),
        micro,
        tzinfo=tz,
    )


def parse_datetime(value: str, default_tz: tzinfo | None = None) -> datetime:
    """Parse an ISO-8601 date-time or date into an aware datetime.

    A plain date means midnight at the start of that day; naive values and dates are placed in
    ``default_tz`` (UTC when not given).

    :param value: the ISO-8601 text.
    :param default_tz: zone for values without an offset.
    :returns: an aware :class:`datetime`.
    :raises ValueError: the text is not an ISO-8601 date or date-time.
    """
    parsed = parse_time_value(value)
    if not isinstance(parsed, datetime):
        parsed = datetime(parsed.year, parsed.month, parsed.day)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_tz or timezone.utc)
    try:
        to_utc(parsed)  # values at the edge of the datetime range cannot be compared
    except OverflowError as exc:
        raise ValueError(f"date-time out of range: {value!r}") from exc
    return parsed


def to_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC.

    :param value: an aware datetime.
    :returns: the same instant with ``tzinfo=timezone.utc``.
    :raises ValueError: the datetime is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime")
    return value.astimezone(timezone.utc)


def format_utc(value: datetime) -> str:
    """Format an aware datetime as a UTC ISO-8601 string ending in ``Z``.

    :param value: an aware datetime.
    :returns: e.g. ``"2017-05-20T01:00:00Z"`` (microseconds only when non-zero).
    """
    text = to_utc(value).replace(tzinfo=None).isoformat()
    return text + "Z"


def parse_duration(value: str) -> timedelta:
    """Parse an ISO-8601 duration made of weeks, days, hours, minutes and seconds.

    Years and months are refused: their length depends on the calendar date.

    :param value: e.g. ``"PT1H"``, ``"PT30M"``, ``"P1D"``, ``"P1DT2H"``, ``"P2W"``, ``"PT1.5H"``.
    :returns: the duration.
    :raises ValueError: the text is not such a duration or has no component at all.
    """
    if not isinstance(value, str):
        raise ValueError("expected an ISO-8601 duration string")
    text = value.strip().upper()
    match = _DURATION_RE.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"not an ISO-8601 duration (P[n]W, P[n]DT[n]H[n]M[n]S): {value!r}")
    parts = {key: float(val.replace(",", ".")) for key, val in match.groupdict().items() if val}
    if not parts:
        raise ValueError(f"empty ISO-8601 duration: {value!r}")
    try:
        return timedelta(
            weeks=parts.get("W", 0.0),
            days=parts.get("D", 0.0),
            hours=parts.get("H", 0.0),
            minutes=parts.get("M", 0.0),
            seconds=parts.get("S", 0.0),
        )
    except OverflowError as exc:
        raise ValueError(f"ISO-8601 duration out of range: {value!r}") from exc


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Merge overlapping or touching intervals.

    Empty or reversed intervals (``end <= start``) are dropped.

    :param intervals: aware ``(start, end)`` pairs in any order.
    :returns: disjoint, sorted intervals in UTC covering the same instants.
    """
    ordered = sorted((to_utc(s), to_utc(e)) for s, e in intervals if e > s)
    merged: list[Interval] = []
    for start, end in ordered:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _fits(start: datetime, end: datetime, duration: timedelta) -> bool:
    """Whether ``[start, end)`` is non-empty and at least ``duration`` long."""
    return end > start and end - start >= duration


def free_windows(
    windows: Iterable[Interval], busy: Iterable[Interval], duration: timedelta
) -> list[Interval]:
    """Find the free parts of ``windows`` that are at least ``duration`` long.

    :param windows: the time windows to search (may overlap; they are merged first).
    :param busy: busy intervals (may overlap, may lie outside the windows).
    :param duration: minimum length of a free window.
    :returns: sorted, disjoint UTC intervals inside the windows and outside every busy interval.
    """
    busy_merged = merge_intervals(busy)
    result: list[Interval] = []
    for win_start, win_end in merge_intervals(windows):
        cursor = win_start
        for busy_start, busy_end in busy_merged:
            if busy_end <= cursor:
                continue
            if busy_start >= win_end:
                break
            if _fits(cursor, busy_start, duration):
                result.append((cursor, busy_start))
            cursor = max(cursor, busy_end)
            if cursor >= win_end:
                break
        if _fits(cursor, win_end, duration):
            result.append((cursor, win_end))
    return result


def find_availability(
    windows: Sequence[Interval], busy: Iterable[Interval], duration: timedelta
) -> list[dict[str, str]]:
    """Free windows as the API returns them.

    :param windows: the requested time windows.
    :param busy: busy intervals of all requested calendars.
    :param duration: the meeting duration.
    :returns: ``[{"start": "...Z", "end": "...Z"}, ...]``; empty when nothing is free.
    """
    return [
        {"start": format_utc(start), "end": format_utc(end)}
        for start, end in free_windows(windows, busy, duration)
    ]
