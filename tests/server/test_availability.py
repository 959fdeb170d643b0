"""Unit and property tests for kloudless.server.availability."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kloudless.server.availability import (
    find_availability,
    format_utc,
    free_windows,
    merge_intervals,
    parse_datetime,
    parse_duration,
    parse_time_value,
    resolve_timezone,
    to_utc,
)

UTC = timezone.utc


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, sec, micro, tzinfo=UTC)


# --- parsing date-times -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-01-01T12:30:00Z", utc(2019, 1, 1, 12, 30)),
        ("2019-01-01t12:30:00z", utc(2019, 1, 1, 12, 30)),
        ("2019-01-01 12:30:00Z", utc(2019, 1, 1, 12, 30)),
        ("2017-05-20T08:00:00+07:00", utc(2017, 5, 20, 1, 0)),
        ("2017-05-20T08:00:00-0230", utc(2017, 5, 20, 10, 30)),
        ("2017-05-20T08:00:00+07", utc(2017, 5, 20, 1, 0)),
        ("2017-05-20T08:00Z", utc(2017, 5, 20, 8, 0)),
        ("2020-05-15T03:24:56.887056Z", utc(2020, 5, 15, 3, 24, 56, 887056)),
        ("2020-05-15T03:24:56.5Z", utc(2020, 5, 15, 3, 24, 56, 500000)),
        ("2020-05-15T03:24:56.123456789Z", utc(2020, 5, 15, 3, 24, 56, 123456)),
        ("2020-05-15T03:24:56,25+00:00", utc(2020, 5, 15, 3, 24, 56, 250000)),
    ],
)
def test_parse_datetime_with_offsets(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed.tzinfo is not None
    assert to_utc(parsed) == expected


def test_parse_datetime_naive_uses_default_zone() -> None:
    assert parse_datetime("2019-01-01T12:00:00") == utc(2019, 1, 1, 12)
    berlin = resolve_timezone("Europe/Berlin")
    assert to_utc(parse_datetime("2019-01-01T12:00:00", berlin)) == utc(2019, 1, 1, 11)
    # An explicit offset wins over the default zone.
    assert to_utc(parse_datetime("2019-01-01T12:00:00Z", berlin)) == utc(2019, 1, 1, 12)


def test_parse_date_is_midnight() -> None:
    assert parse_datetime("2019-07-04") == utc(2019, 7, 4)
    berlin = resolve_timezone("Europe/Berlin")
    assert to_utc(parse_datetime("2019-07-04", berlin)) == utc(2019, 7, 3, 22)


def test_parse_time_value_keeps_kind() -> None:
    assert parse_time_value("2019-07-04") == date(2019, 7, 4)
    naive = parse_time_value("2019-07-04T10:00:00")
    assert isinstance(naive, datetime) and naive.tzinfo is None
    aware = parse_time_value("2019-07-04T10:00:00+01:00")
    assert isinstance(aware, datetime) and aware.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tomorrow",
        "2019-13-01T00:00:00Z",
        "2019-02-30",
        "2019-01-01T25:00:00Z",
        "2019-01-01T12:60:00Z",
        "2019-01-01T12:00:00+25:00",
        "2019-01-01T12:00:00+05:75",
        "2019-01-01T12:00:00ZZ",
        "2019-1-1",
        "20190101",
        "0001-01-01T00:00:00+05:00",
    ],
)
def test_parse_datetime_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ValueError):
        parse_time_value(12345)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse_duration(None)  # type: ignore[arg-type]


def test_resolve_timezone() -> None:
    assert resolve_timezone(None) is None
    assert resolve_timezone("") is None
    assert resolve_timezone("UTC") is UTC
    assert resolve_timezone("America/Los_Angeles") is not None
    with pytest.raises(ValueError):
        resolve_timezone("Mars/Olympus_Mons")
    with pytest.raises(ValueError):
        resolve_timezone("../etc/passwd")


# --- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1H", timedelta(hours=1)),
        ("PT30M", timedelta(minutes=30)),
        ("PT45S", timedelta(seconds=45)),
        ("P1D", timedelta(days=1)),
        ("P2W", timedelta(weeks=2)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("PT1.5H", timedelta(minutes=90)),
        ("PT0,5H", timedelta(minutes=30)),
        ("pt15m", timedelta(minutes=15)),
        ("PT0S", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",
        "1H",
        "PT1",
        "P1Y",
        "P1M",
        "PT-1H",
        "PT1H30",
        "P1H",
        "one hour",
        "P99999999999W",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- formatting ---------------------------------------------------------------------------


def test_format_utc() -> None:
    assert format_utc(utc(2017, 5, 20, 1)) == "2017-05-20T01:00:00Z"
    assert format_utc(parse_datetime("2017-05-20T08:00:00+07:00")) == "2017-05-20T01:00:00Z"
    assert format_utc(utc(2017, 5, 20, 1, 0, 0, 5)) == "2017-05-20T01:00:00.000005Z"
    with pytest.raises(ValueError):
        format_utc(datetime(2017, 5, 20))


# --- merging and free windows -------------------------------------------------------------


def test_merge_intervals() -> None:
    intervals = [
        (utc(2020, 1, 1, 10), utc(2020, 1, 1, 11)),
        (utc(2020, 1, 1, 9), utc(2020, 1, 1, 10)),  # touches the first
        (utc(2020, 1, 1, 12), utc(2020, 1, 1, 14)),
        (utc(2020, 1, 1, 13), utc(2020, 1, 1, 13, 30)),  # inside the third
        (utc(2020, 1, 1, 15), utc(2020, 1, 1, 15)),  # empty: dropped
        (utc(2020, 1, 1, 17), utc(2020, 1, 1, 16)),  # reversed: dropped
    ]
    assert merge_intervals(intervals) == [
        (utc(2020, 1, 1, 9), utc(2020, 1, 1, 11)),
        (utc(2020, 1, 1, 12), utc(2020, 1, 1, 14)),
    ]
    assert merge_intervals([]) == []


def test_free_windows_basic() -> None:
    windows = [(utc(2020, 1, 1, 8), utc(2020, 1, 1, 12))]
    busy = [
        (utc(2020, 1, 1, 9), utc(2020, 1, 1, 10)),
        (utc(2020, 1, 1, 10, 30), utc(2020, 1, 1, 11)),
    ]
    assert free_windows(windows, busy, timedelta(minutes=30)) == [
        (utc(2020, 1, 1, 8), utc(2020, 1, 1, 9)),
        (utc(2020, 1, 1, 10), utc(2020, 1, 1, 10, 30)),
        (utc(2020, 1, 1, 11), utc(2020, 1, 1, 12)),
    ]
    # A longer meeting drops the 30-minute gap.
    assert free_windows(windows, busy, timedelta(hours=1)) == [
        (utc(2020, 1, 1, 8), utc(2020, 1, 1, 9)),
        (utc(2020, 1, 1, 11), utc(2020, 1, 1, 12)),
    ]


def test_free_windows_fully_busy_and_outside() -> None:
    windows = [(utc(2020, 1, 1, 8), utc(2020, 1, 1, 12))]
    assert free_windows(windows, [(utc(2020, 1, 1, 7), utc(2020, 1, 1, 13))], timedelta(0)) == []
    outside = [(utc(2020, 1, 2, 7), utc(2020, 1, 2, 13))]
    assert free_windows(windows, outside, timedelta(hours=4)) == windows
    assert free_windows(windows, [], timedelta(hours=5)) == []


def test_free_windows_overlapping_requests_are_merged() -> None:
    windows = [
        (utc(2020, 1, 1, 8), utc(2020, 1, 1, 12)),
        (utc(2020, 1, 1, 10), utc(2020, 1, 1, 14)),
    ]
    assert free_windows(windows, [], timedelta(hours=1)) == [
        (utc(2020, 1, 1, 8), utc(2020, 1, 1, 14))
    ]


def test_find_availability_matches_spec_example() -> None:
    windows = [
        (parse_datetime("2017-05-20T08:00:00+07:00"), parse_datetime("2017-05-20T12:00:00+07:00")),
        (parse_datetime("2017-05-21T08:00:00+07:00"), parse_datetime("2017-05-21T12:00:00+07:00")),
    ]
    assert find_availability(windows, [], parse_duration("PT1H")) == [
        {"start": "2017-05-20T01:00:00Z", "end": "2017-05-20T05:00:00Z"},
        {"start": "2017-05-21T01:00:00Z", "end": "2017-05-21T05:00:00Z"},
    ]


# --- properties ---------------------------------------------------------------------------

BASE = utc(2024, 1, 1)
minutes = st.integers(min_value=0, max_value=7 * 24 * 60)
interval_st = st.tuples(minutes, st.integers(min_value=0, max_value=600)).map(
    lambda p: (BASE + timedelta(minutes=p[0]), BASE + timedelta(minutes=p[0] + p[1]))
)
intervals_st = st.lists(interval_st, max_size=25)
duration_st = st.integers(min_value=0, max_value=300).map(lambda m: timedelta(minutes=m))


def _overlaps(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@settings(max_examples=300, deadline=None)
@given(windows=intervals_st, busy=intervals_st, duration=duration_st)
def test_free_windows_properties(
    windows: list[tuple[datetime, datetime]],
    busy: list[tuple[datetime, datetime]],
    duration: timedelta,
) -> None:
    free = free_windows(windows, busy, duration)
    for index, window in enumerate(free):
        start, end = window
        assert end > start
        assert end - start >= duration
        # never overlaps a busy interval
        assert not any(_overlaps(window, b) for b in busy if b[1] > b[0])
        # lies inside one requested window (after merging the requested windows)
        assert any(w[0] <= start and end <= w[1] for w in merge_intervals(windows))
        # sorted and disjoint
        if index:
            assert free[index - 1][1] <= start


@settings(max_examples=200, deadline=None)
@given(windows=intervals_st, busy=intervals_st)
def test_free_windows_cover_all_free_minutes(
    windows: list[tuple[datetime, datetime]], busy: list[tuple[datetime, datetime]]
) -> None:
    # With no minimum length the free windows are exactly "inside a window and not busy".
    free = free_windows(windows, busy, timedelta(0))
    step = timedelta(minutes=1)
    probes = {w[0] + step * k for w in windows for k in range(0, 600, 7) if w[0] + step * k < w[1]}
    for probe in probes:
        in_free = any(s <= probe < e for s, e in free)
        expected = any(s <= probe < e for s, e in windows) and not any(
            s <= probe < e for s, e in busy
        )
        assert in_free == expected


@settings(max_examples=200, deadline=None)
@given(intervals=intervals_st)
def test_merge_intervals_properties(intervals: list[tuple[datetime, datetime]]) -> None:
    merged = merge_intervals(intervals)
    for (_, end_a), (start_b, _) in zip(merged, merged[1:]):
        assert end_a < start_b  # disjoint and not touching
    for start, end in intervals:
        if end > start:
            assert any(s <= start and end <= e for s, e in merged)
    assert merge_intervals(merged) == merged


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=st.just(UTC), min_value=datetime(1900, 1, 1)))
def test_format_parse_round_trip(value: datetime) -> None:
    assert parse_datetime(format_utc(value)) == value


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=60),
    st.integers(min_value=0, max_value=23),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59),
)
def test_duration_round_trip(days: int, hours: int, mins: int, secs: int) -> None:
    text = f"P{days}DT{hours}H{mins}M{secs}S"
    assert parse_duration(text) == timedelta(days=days, hours=hours, minutes=mins, seconds=secs)
