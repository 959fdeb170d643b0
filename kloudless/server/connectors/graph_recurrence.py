"""Recurrence rules both ways between iCalendar ``RRULE`` lines (the calendar API's
``recurrence``) and Microsoft Graph's ``patternedRecurrence``.

Pure functions (no I/O); :mod:`icalendar` parses the rule (``vRecur``).

What maps (``start`` is the event's first occurrence, in the event's own zone):

================================================ ==============================================
RRULE                                            Graph ``pattern`` / ``range``
================================================ ==============================================
``FREQ=DAILY;INTERVAL=n``                        ``daily``, ``interval`` n
``FREQ=WEEKLY;BYDAY=MO,WE`` (no BYDAY: start's)  ``weekly``, ``daysOfWeek``
``WKST=SU`` (absent: MO, RFC 5545's default)     ``firstDayOfWeek``
``FREQ=MONTHLY;BYMONTHDAY=d`` (absent: start's)  ``absoluteMonthly``, ``dayOfMonth``
``FREQ=MONTHLY;BYDAY=2TU`` or ``BYDAY=TU;        ``relativeMonthly``, ``index`` (first...fourth,
BYSETPOS=2`` (ordinals 1-4 and -1)               last), ``daysOfWeek``
``FREQ=YEARLY;BYMONTH=m;BYMONTHDAY=d``           ``absoluteYearly``, ``month``, ``dayOfMonth``
``FREQ=YEARLY;BYMONTH=m;BYDAY=-1FR``             ``relativeYearly``, ``month``, ``index``, ...
``COUNT=n``                                      range ``numbered``, ``numberOfOccurrences``
``UNTIL=...``                                    range ``endDate`` (UNTIL's date in the zone)
neither                                          range ``noEnd``
================================================ ==============================================

What does not map (:class:`~.calendar_base.CalendarInvalid`, 400, naming the part):
``HOURLY``/``MINUTELY``/``SECONDLY``; ``BYHOUR``, ``BYMINUTE``, ``BYSECOND``, ``BYWEEKNO``,
``BYYEARDAY``; several ``BYMONTH`` or ``BYMONTHDAY`` values; ordinals other than 1-4 and -1;
ordinals in weekly rules; ``EXDATE``, ``RDATE``, ``EXRULE`` lines and more than one rule (Graph
makes exceptions by editing or deleting single occurrences, which the API does not offer).
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone, tzinfo
from typing import Any

import icalendar

from .calendar_base import CalendarInvalid

__all__ = ["from_graph", "same_recurrence", "to_graph"]

DAYS = {
    "MO": "monday",
    "TU": "tuesday",
    "WE": "wednesday",
    "TH": "thursday",
    "FR": "friday",
    "SA": "saturday",
    "SU": "sunday",
}
_DAY_CODES = {name: code for code, name in DAYS.items()}
_WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
INDEXES = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
_INDEX_NUMBERS = {name: number for number, name in INDEXES.items()}
#: The rule parts this mapping understands.
_KNOWN = {
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYDAY",
    "BYMONTHDAY",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
}
#: The keys of ``pattern`` each type uses (what two patterns are compared on).
PATTERN_KEYS = {
    "daily": ("interval",),
    "weekly": ("interval", "daysOfWeek", "firstDayOfWeek"),
    "absoluteMonthly": ("interval", "dayOfMonth"),
    "relativeMonthly": ("interval", "daysOfWeek", "index"),
    "absoluteYearly": ("interval", "month", "dayOfMonth"),
    "relativeYearly": ("interval", "month", "daysOfWeek", "index"),
}


def _unmapped(what: str) -> CalendarInvalid:
    return CalendarInvalid(f"This recurrence does not map to Outlook calendars: {what}.")


def _single(parts: dict[str, list[Any]], key: str) -> Any:
    values = parts.get(key) or []
    if len(values) > 1:
        raise _unmapped(f"several {key} values")
    return values[0] if values else None


def _by_day(parts: dict[str, list[Any]]) -> list[tuple[int | None, str]]:
    found: list[tuple[int | None, str]] = []
    for value in parts.get("BYDAY") or []:
        text = str(value).upper()
        code = text[-2:]
        if code not in DAYS:
            raise _unmapped(f"BYDAY {text}")
        ordinal = text[:-2]
        try:
            found.append((int(ordinal) if ordinal else None, code))
        except ValueError:
            raise _unmapped(f"BYDAY {text}") from None
    return found


def _rule_line(recurrence: list[Any]) -> str:
    rules: list[str] = []
    for item in recurrence:
        text = item if isinstance(item, str) else None
        if isinstance(item, dict) and isinstance(item.get("rrule"), str):
            text = item["rrule"]
        if text is None:
            raise CalendarInvalid("'recurrence' items must be iCalendar lines ('RRULE:...').")
        name, _, value = text.strip().partition(":")
        if name.upper() != "RRULE" or not value:
            raise _unmapped(f"{name.upper() or text[:20]} lines")
        rules.append(value)
    if len(rules) != 1:
        raise _unmapped("more than one rule")
    return rules[0]


def to_graph(recurrence: list[Any], start: date, zone: tzinfo, zone_name: str) -> dict[str, Any]:
    """:param recurrence: the API's ``recurrence`` (one ``"RRULE:..."`` line).
    :param start: the first occurrence's date in the event's zone.
    :param zone: the event's zone; ``zone_name`` its name, Graph's ``recurrenceTimeZone``.
    :returns: Graph's ``patternedRecurrence``.
    :raises CalendarInvalid: the rule does not map (see the module docstring).
    """
    try:
        parts: dict[str, list[Any]] = dict(icalendar.vRecur.from_ical(_rule_line(recurrence)))
    except (ValueError, TypeError) as exc:
        if isinstance(exc, CalendarInvalid):
            raise
        raise CalendarInvalid(f"'recurrence' is not a valid RRULE: {exc}") from None
    unknown = sorted(set(parts) - _KNOWN)
    if unknown:
        raise _unmapped(", ".join(unknown))
    freq = str(_single(parts, "FREQ") or "").upper()
    given = _single(parts, "INTERVAL")
    interval = 1 if given is None else int(given)
    if interval < 1:
        raise CalendarInvalid("'recurrence' INTERVAL must be at least 1.")
    days = _by_day(parts)
    setpos = _single(parts, "BYSETPOS")
    month_day = _single(parts, "BYMONTHDAY")
    month = _single(parts, "BYMONTH")
    pattern: dict[str, Any] = {"interval": interval}
    if freq == "DAILY":
        if days or month_day or month or setpos:
            raise _unmapped("a DAILY rule with BY parts")
        pattern["type"] = "daily"
    elif freq == "WEEKLY":
        if any(n is not None for n, _ in days) or month_day or month or setpos:
            raise _unmapped("a WEEKLY rule with ordinals, BYMONTH, BYMONTHDAY or BYSETPOS")
        codes = [c for _, c in days] or [_WEEKDAY_CODES[start.weekday()]]
        pattern.update(
            type="weekly",
            daysOfWeek=[DAYS[c] for c in codes],
            firstDayOfWeek=DAYS[str(_single(parts, "WKST") or "MO").upper()],
        )
    elif freq in ("MONTHLY", "YEARLY"):
        yearly = freq == "YEARLY"
        if yearly:
            pattern["month"] = int(month or start.month)
        elif month:
            raise _unmapped("a MONTHLY rule with BYMONTH")
        if days:
            ordinals = {n if n is not None else (int(setpos) if setpos else None) for n, _ in days}
            if len(ordinals) != 1 or next(iter(ordinals)) not in INDEXES or month_day:
                raise _unmapped("weekdays without one ordinal of 1-4 or -1")
            pattern.update(
                type="relativeYearly" if yearly else "relativeMonthly",
                daysOfWeek=[DAYS[c] for _, c in days],
                index=INDEXES[int(next(iter(ordinals)))],  # type: ignore[arg-type]
            )
        else:
            if setpos:
                raise _unmapped("BYSETPOS without BYDAY")
            day = int(month_day or start.day)
            if not 1 <= day <= 31:
                raise _unmapped(f"BYMONTHDAY {day}")
            pattern.update(type="absoluteYearly" if yearly else "absoluteMonthly", dayOfMonth=day)
    else:
        raise _unmapped(f"FREQ={freq or '?'}")
    recurrence_range: dict[str, Any] = {
        "startDate": start.isoformat(),
        "recurrenceTimeZone": zone_name,
    }
    count = _single(parts, "COUNT")
    until = _single(parts, "UNTIL")
    if count is not None and until is not None:
        raise CalendarInvalid("'recurrence' may not have both COUNT and UNTIL.")
    if count is not None:
        if int(count) < 1:
            raise CalendarInvalid("'recurrence' COUNT must be at least 1.")
        recurrence_range.update(type="numbered", numberOfOccurrences=int(count))
    elif until is not None:
        if isinstance(until, datetime):
            aware = until if until.tzinfo else until.replace(tzinfo=zone)
            until_date = aware.astimezone(zone).date()
        else:
            until_date = until
        recurrence_range.update(type="endDate", endDate=until_date.isoformat())
    else:
        recurrence_range["type"] = "noEnd"
    return {"pattern": pattern, "range": recurrence_range}


def from_graph(value: dict[str, Any], all_day: bool, zone: tzinfo) -> list[str]:
    """:param value: Graph's ``patternedRecurrence``.
    :param all_day: whether the event is all-day (``UNTIL`` is then a date).
    :param zone: the event's zone (a timed ``UNTIL`` is the end of ``endDate`` there, in UTC).
    :returns: the API's ``recurrence`` (one ``"RRULE:..."`` line).
    """
    pattern = value.get("pattern") or {}
    kind = str(pattern.get("type") or "")
    freq = {
        "daily": "DAILY",
        "weekly": "WEEKLY",
        "absoluteMonthly": "MONTHLY",
        "relativeMonthly": "MONTHLY",
        "absoluteYearly": "YEARLY",
        "relativeYearly": "YEARLY",
    }.get(kind)
    if freq is None:
        return []
    rule = [f"FREQ={freq}"]
    interval = int(pattern.get("interval") or 1)
    if interval != 1:
        rule.append(f"INTERVAL={interval}")
    codes = [_DAY_CODES[d] for d in pattern.get("daysOfWeek") or [] if d in _DAY_CODES]
    if kind.endswith("Yearly"):
        rule.append(f"BYMONTH={int(pattern.get('month') or 1)}")
    if kind.startswith("absolute"):
        rule.append(f"BYMONTHDAY={int(pattern.get('dayOfMonth') or 1)}")
    if kind.startswith("relative"):
        number = _INDEX_NUMBERS.get(str(pattern.get("index") or "first"), 1)
        rule.append("BYDAY=" + ",".join(f"{number}{c}" for c in codes))
    if kind == "weekly":
        rule.append("BYDAY=" + ",".join(codes))
        first = _DAY_CODES.get(str(pattern.get("firstDayOfWeek") or "sunday"), "SU")
        if first != "MO":
            rule.append(f"WKST={first}")
    recurrence_range = value.get("range") or {}
    if recurrence_range.get("type") == "numbered":
        rule.append(f"COUNT={int(recurrence_range.get('numberOfOccurrences') or 1)}")
    elif recurrence_range.get("type") == "endDate" and recurrence_range.get("endDate"):
        end = date.fromisoformat(str(recurrence_range["endDate"])[:10])
        if all_day:
            rule.append(f"UNTIL={end.strftime('%Y%m%d')}")
        else:
            last = datetime.combine(end, time(23, 59, 59), zone).astimezone(timezone.utc)
            rule.append(f"UNTIL={last.strftime('%Y%m%dT%H%M%SZ')}")
    return ["RRULE:" + ";".join(rule)]


def same_recurrence(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """:returns: whether two ``patternedRecurrence`` values mean the same rule (the keys of
    their pattern type, the range's type and bound; the zone and start date aside)."""
    if not a or not b:
        return not a and not b

    def key(value: dict[str, Any]) -> tuple[Any, ...]:
        pattern = value.get("pattern") or {}
        kind = pattern.get("type")
        fields = []
        for name in PATTERN_KEYS.get(str(kind), ()):
            item = pattern.get(name)
            fields.append(sorted(item) if isinstance(item, list) else item)
        span = value.get("range") or {}
        bound = {"numbered": "numberOfOccurrences", "endDate": "endDate"}.get(str(span.get("type")))
        return kind, tuple(map(str, fields)), span.get("type"), span.get(bound) if bound else None

    return key(a) == key(b)
