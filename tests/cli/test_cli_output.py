"""Unit tests of the command line's formatting and parsing helpers (no server needed)."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json

import pytest

from kloudless.cli import output
from kloudless.cli.argtypes import byte_count, parse_duration, parse_user_time
from kloudless.cli.errors import CommandError, describe_api_error
from kloudless.cli.progress import progress_bar
from kloudless.cli.resolve import is_path, split_path


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * 1024 * 1024, "5.0 MiB"),
        (3 * 1024**3, "3.0 GiB"),
        ("2048", "2.0 KiB"),
        (None, "-"),
        ("big", "-"),
    ],
)
def test_format_size(size: object, text: str) -> None:
    assert output.format_size(size) == text


def test_format_time_is_local_and_tolerant() -> None:
    stamp = "2024-05-01T12:30:00Z"
    expected = (
        dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
        .astimezone()
        .strftime("%Y-%m-%d %H:%M")
    )
    assert output.format_time(stamp) == expected
    assert output.format_time(None) == "-"
    assert output.format_time("not a time") == "not a time"


def test_render_table_aligns_columns() -> None:
    table = output.render_table(
        [["file", "12 B", "a.txt"], ["dir", "-", "long-folder-name/"]],
        ["TYPE", "SIZE", "NAME"],
        right_align=(1,),
    )
    lines = table.splitlines()
    assert lines[0].split() == ["TYPE", "SIZE", "NAME"]
    # Every NAME starts in the same column, sizes are right-aligned.
    starts = {line.index(name) for line, name in zip(lines, ["NAME", "a.txt", "long-folder-name/"])}
    assert len(starts) == 1
    assert lines[1].index("12 B") + 4 == lines[0].index("SIZE") + 4
    assert all(line == line.rstrip() for line in lines)


def test_print_json_document_and_lines() -> None:
    stream = io.StringIO()
    output.print_json({"b": 1, "a": [1, 2]}, stream)
    assert json.loads(stream.getvalue()) == {"a": [1, 2], "b": 1}
    stream = io.StringIO()
    output.print_json({"x": 1}, stream, lines=True)
    output.print_json({"x": 2}, stream, lines=True)
    assert [json.loads(line)["x"] for line in stream.getvalue().splitlines()] == [1, 2]


def test_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    output.error("first line\nsecond line")
    assert capsys.readouterr().err == "kloudless: error: first line second line\n"


def test_parse_user_time() -> None:
    assert parse_user_time("2024-05-01T14:00:00Z", "--start") == "2024-05-01T14:00:00Z"
    assert parse_user_time("2024-05-01T14:00:00+02:00", "--start") == "2024-05-01T12:00:00Z"
    local = dt.datetime(2024, 5, 1, 9, 0).astimezone()
    assert parse_user_time("2024-05-01T09:00", "--start") == local.astimezone(
        dt.timezone.utc
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(CommandError, match="--from: not a date or time"):
        parse_user_time("tomorrow", "--from")


def test_parse_duration() -> None:
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("45s") == dt.timedelta(seconds=45)
    assert parse_duration("2d") == dt.timedelta(days=2)
    for bad in ("", "0m", "h", "10", "1x"):
        with pytest.raises(CommandError):
            parse_duration(bad)


def testbyte_count() -> None:
    assert byte_count("1024") == 1024
    assert byte_count("8M") == 8 * 1024 * 1024
    assert byte_count("1KiB") == 1024
    assert byte_count("1.5k") == 1536
    for bad in ("0", "lots", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            byte_count(bad)


def test_paths() -> None:
    assert is_path("/") and is_path("root") and is_path("docs/a.txt")
    assert not is_path("file_abc")
    assert split_path("/docs//a.txt/") == ["docs", "a.txt"]
    assert split_path("root") == []
    with pytest.raises(CommandError):
        split_path("/docs/../etc")


def test_describe_api_error_is_the_exceptions_summary() -> None:
    import requests

    from kloudless import exceptions

    def error(status: int, body: str) -> exceptions.APIException:
        response = requests.Response()
        response.status_code = status
        response._content = body.encode()
        response.headers["Content-Type"] = "application/json"
        return exceptions.from_response(response)

    found = error(404, '{"error_code": "not_found", "message": "No such file.", "id": "req-1"}')
    assert describe_api_error(found) == "404 not_found: No such file. (request req-1)"
    text = describe_api_error(error(401, ""))
    assert text.startswith("401: Authorization failed.") and "KLOUDLESS_TOKEN" in text

    class Foreign(Exception):  # not an SDK exception: status and class default only
        status = 500
        default_message = "Broken."

    assert describe_api_error(Foreign()) == "500: Broken."


def test_progress_bar_is_silent_off_a_terminal() -> None:
    # Under pytest stderr is not a terminal: no bar, no callback.
    with progress_bar("x") as callback:
        assert callback is None
    with progress_bar("x", enabled=False) as callback:
        assert callback is None


def test_progress_bar_draws_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress_bar("big.bin") as callback:
        assert callback is not None
        callback(512, 2048)
        callback(2048, 2048)
    drawn = terminal.getvalue()
    assert "big.bin" in drawn and "100%" in drawn
