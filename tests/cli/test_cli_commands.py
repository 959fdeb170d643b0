"""The client commands, run in-process through ``kloudless.cli.main`` against a live local server.

Every test has its own account (see conftest), so listings and activity start empty.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from live_server import Credentials

from kloudless.cli.errors import (
    EXIT_AUTH,
    EXIT_CONFLICT,
    EXIT_NETWORK,
    EXIT_NOT_FOUND,
    EXIT_SERVER,
)

Cli = Callable[..., Any]


def put_text(cli: Cli, tmp_path: Path, name: str, text: str, *extra: str) -> dict[str, Any]:
    """Upload a small text file and return the new file object."""
    local = tmp_path / name
    local.write_text(text)
    result = cli("put", str(local), "--json", *extra)
    assert result.code == 0, result.err
    return json.loads(result.out)


def assert_one_line_error(result: Any, code: int, *needles: str) -> None:
    """An error: the given exit code, nothing on stdout, one line on stderr, no traceback."""
    assert result.code == code
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("kloudless: error: ")
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0]


# -- storage ----------------------------------------------------------------------------------


def test_ls_empty_root_and_json(cli: Cli, creds: Credentials) -> None:
    human = cli("ls")
    assert human.code == 0
    assert human.out.split() == ["TYPE", "SIZE", "MODIFIED", "NAME", "ID"]
    as_json = cli("ls", "--json")
    assert as_json.code == 0 and json.loads(as_json.out) == []


def test_put_ls_get_roundtrip(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    uploaded = put_text(cli, tmp_path, "hello.txt", "hello world\n")
    assert uploaded["name"] == "hello.txt" and uploaded["size"] == 12

    listing = cli("ls")
    assert listing.code == 0
    row = next(line for line in listing.out.splitlines() if "hello.txt" in line)
    assert row.split()[:2] == ["file", "12"] and "12 B" in row and uploaded["id"] in row

    dest = tmp_path / "downloads"
    dest.mkdir()
    got = cli("get", "/hello.txt", str(dest))
    assert got.code == 0, got.err
    assert (dest / "hello.txt").read_text() == "hello world\n"
    assert "hello.txt" in got.out and "12 B" in got.out

    # The local file exists now: no silent overwrite, then --force replaces it.
    again = cli("get", uploaded["id"], str(dest))
    assert_one_line_error(again, EXIT_CONFLICT, "exists", "--force")
    forced = cli("get", uploaded["id"], str(dest / "hello.txt"), "--force", "--json")
    assert forced.code == 0
    assert json.loads(forced.out)["size"] == 12


def test_get_uses_a_safe_local_name(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    # A name that is hostile on Windows (reserved device name) is saved under a safe name.
    uploaded = put_text(cli, tmp_path, "src.txt", "data", "--name", "CON.txt")
    dest = tmp_path / "out"
    dest.mkdir()
    got = cli("get", uploaded["id"], str(dest), "--json")
    assert got.code == 0, got.err
    saved = Path(json.loads(got.out)["path"])
    assert saved.parent == dest and saved.name == "_CON.txt"
    assert saved.read_text() == "data"


def test_put_multipart_and_overwrite(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    payload = os.urandom(300 * 1024)
    local = tmp_path / "big.bin"
    local.write_bytes(payload)
    first = cli("put", str(local), "--multipart-threshold", "64K", "--json")
    assert first.code == 0, first.err
    assert json.loads(first.out)["size"] == len(payload)

    # Without --overwrite the server picks another name; with it, the name is kept.
    second = cli("put", str(local), "--json")
    assert json.loads(second.out)["name"] != "big.bin"
    third = cli("put", str(local), "--overwrite", "--json")
    assert json.loads(third.out)["name"] == "big.bin"

    dest = tmp_path / "back.bin"
    assert cli("get", "/big.bin", str(dest)).code == 0
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(payload).digest()


def test_put_into_folder_by_path_and_id(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    folder = json.loads(cli("mkdir", "/docs", "--json").out)
    put_text(cli, tmp_path, "a.txt", "a", "--parent", "/docs")
    put_text(cli, tmp_path, "b.txt", "b", "--parent", folder["id"])
    names = {item["name"] for item in json.loads(cli("ls", "/docs", "--json").out)}
    assert names == {"a.txt", "b.txt"}
    by_id = json.loads(cli("ls", folder["id"], "--json").out)
    assert {item["name"] for item in by_id} == names


def test_mkdir_variants(cli: Cli, creds: Credentials) -> None:
    assert cli("mkdir", "/a").code == 0
    assert_one_line_error(cli("mkdir", "/a"), EXIT_CONFLICT, "409")
    assert cli("mkdir", "-p", "/a/b/c").code == 0
    assert cli("mkdir", "-p", "/a/b/c").code == 0  # already there: fine with -p
    assert_one_line_error(cli("mkdir", "/x/y"), EXIT_NOT_FOUND, "no such folder: /x", "-p")
    assert cli("mkdir", "sub", "--parent", "/a").code == 0
    tree = json.loads(cli("tree", "--json").out)
    (a,) = tree["children"]
    assert [child["name"] for child in a["children"]] == ["b", "sub"]
    assert a["children"][0]["children"][0]["name"] == "c"


def test_tree_human_and_depth(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    cli("mkdir", "-p", "/docs/deep")
    put_text(cli, tmp_path, "note.txt", "12345", "--parent", "/docs")
    out = cli("tree").out.splitlines()
    assert out == ["/", "└── docs/", "    ├── deep/", "    └── note.txt  (5 B)"]
    shallow = json.loads(cli("tree", "--depth", "1", "--json").out)
    assert [c["name"] for c in shallow["children"]] == ["docs"]
    assert shallow["children"][0].get("children") in (None, [])
    assert_one_line_error(cli("tree", "--depth", "0"), 2, "--depth")


def test_mv_cp_rename(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    put_text(cli, tmp_path, "a.txt", "A")
    cli("mkdir", "/docs")
    # into an existing folder, keeping the name
    moved = json.loads(cli("mv", "/a.txt", "/docs", "--json").out)
    assert moved["name"] == "a.txt" and moved["parent"]["name"] == "docs"
    # rename in place with a bare name
    renamed = json.loads(cli("mv", "/docs/a.txt", "b.txt", "--json").out)
    assert renamed["name"] == "b.txt" and renamed["id"] == moved["id"]
    # copy to a new path with a new name
    copied = json.loads(cli("cp", "/docs/b.txt", "/c.txt", "--json").out)
    assert copied["name"] == "c.txt" and copied["id"] != moved["id"]
    # a destination that exists as a file is refused
    assert_one_line_error(cli("mv", "/c.txt", "/docs/b.txt"), 2, "already exists")
    # copying a folder by id into the root
    folder = json.loads(cli("ls", "--json").out)
    docs = next(item for item in folder if item["name"] == "docs")
    assert cli("cp", docs["id"], "/docs2").code == 0
    names = sorted(i["name"] for i in json.loads(cli("ls", "/docs2", "--json").out))
    assert names == ["b.txt"]


def test_rm(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    put_text(cli, tmp_path, "a.txt", "A")
    cli("mkdir", "-p", "/docs/inner")
    assert_one_line_error(cli("rm", "/docs"), 2, "is a folder", "-r")
    assert_one_line_error(cli("rm", "-r", "/"), 2, "root")
    removed = cli("rm", "/a.txt", "--json")
    assert removed.code == 0 and json.loads(removed.out)[0]["name"] == "a.txt"
    assert cli("rm", "-r", "/docs").out.strip() == "deleted docs/"
    assert json.loads(cli("ls", "--json").out) == []
    assert_one_line_error(cli("rm", "/a.txt"), EXIT_NOT_FOUND, "no such")


def test_link_serves_the_file(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    put_text(cli, tmp_path, "shared.txt", "shared contents")
    result = cli("link", "/shared.txt", "--direct")
    assert result.code == 0, result.err
    url = result.out.strip()
    assert url.startswith(creds.base_url)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.text == "shared contents"
    as_json = json.loads(cli("link", "/shared.txt", "--json").out)
    assert as_json["url"].startswith(creds.base_url) and as_json["direct"] is False


def test_search(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    cli("mkdir", "/docs")
    put_text(cli, tmp_path, "report-2024.txt", "r", "--parent", "/docs")
    put_text(cli, tmp_path, "other.txt", "o")
    found = json.loads(cli("search", "report", "--json").out)
    assert [item["name"] for item in found] == ["report-2024.txt"]
    human = cli("search", "report").out
    assert "/docs/report-2024.txt" in human
    assert json.loads(cli("search", "report", "--parent", "/", "--json").out)
    assert json.loads(cli("search", "nothing-matches", "--json").out) == []
    assert_one_line_error(cli("search", " "), 2, "empty")


# -- calendar ---------------------------------------------------------------------------------


def test_calendar_commands(cli: Cli, creds: Credentials) -> None:
    calendars = json.loads(cli("cal", "list", "--json").out)
    assert len(calendars) >= 1
    assert "NAME" in cli("cal", "list").out

    added = cli("cal", "add", "Standup", "--start", "2024-05-01T09:00:00Z", "--duration", "15m")
    assert added.code == 0, added.err
    assert "Standup" in added.out
    second = cli(
        "cal",
        "add",
        "Review",
        "--start",
        "2024-06-01T09:00:00Z",
        "--end",
        "2024-06-01T10:00Z",
        "--description",
        "quarterly",
        "--json",
    )
    event = json.loads(second.out)
    assert event["name"] == "Review" and event["description"] == "quarterly"
    assert event["start"] == "2024-06-01T09:00:00Z" and event["end"] == "2024-06-01T10:00:00Z"

    everything = json.loads(cli("cal", "events", "--json").out)
    assert sorted(e["name"] for e in everything) == ["Review", "Standup"]
    may = json.loads(
        cli("cal", "events", "primary", "--from", "2024-05-01", "--to", "2024-05-31", "--json").out
    )
    assert [e["name"] for e in may] == ["Standup"]
    limited = json.loads(cli("cal", "events", "--limit", "1", "--json").out)
    assert len(limited) == 1

    assert_one_line_error(
        cli("cal", "add", "Bad", "--start", "2024-05-01T10:00Z", "--end", "2024-05-01T09:00Z"),
        2,
        "end after",
    )
    assert_one_line_error(
        cli("cal", "events", "no-such-calendar"), EXIT_NOT_FOUND, "no such calendar"
    )


# -- activity events --------------------------------------------------------------------------


def test_events_list_and_cursor(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    put_text(cli, tmp_path, "one.txt", "1")
    cli("mkdir", "/folder")
    first = cli("events", "--json")
    assert first.code == 0
    data = json.loads(first.out)
    assert [(e["type"], e["metadata"]["name"]) for e in data["objects"]] == [
        ("add", "one.txt"),
        ("add", "folder"),
    ]
    cursor = str(data["cursor"])
    human = cli("events", "--cursor", cursor)
    assert human.out == "" and f"cursor: {cursor}" in human.err

    cli("rm", "/one.txt")
    after = json.loads(cli("events", "--cursor", cursor, "--json").out)
    assert [e["type"] for e in after["objects"]] == ["delete"]

    small_pages = json.loads(cli("events", "--page-size", "1", "--json").out)
    assert len(small_pages["objects"]) == 3


def test_events_follow_is_bounded(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    put_text(cli, tmp_path, "before.txt", "x")
    # --follow starts at the latest cursor: older events are not repeated.
    result = cli("events", "--follow", "--max-polls", "2", "--interval", "0.1", "--json")
    assert result.code == 0
    assert result.out == ""
    assert "cursor:" in result.err
    assert_one_line_error(cli("events", "--page-size", "0"), 2, "--page-size")


def test_events_follow_stops_cleanly_on_ctrl_c(
    cli: Cli, creds: Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("kloudless.cli.events.time.sleep", interrupt)
    result = cli("events", "--follow")
    assert result.code == 0
    assert "Traceback" not in result.err and "cursor:" in result.err


# -- pass-through -----------------------------------------------------------------------------


def test_raw_reports_the_api_error(cli: Cli, creds: Credentials) -> None:
    result = cli("raw", "GET", "/drive/v2/about")
    assert_one_line_error(result, EXIT_SERVER, "501", "not_implemented", "(request ")


# -- credentials and errors -------------------------------------------------------------------


def test_bad_token(cli: Cli, creds: Credentials) -> None:
    result = cli("ls", "--token", "tok_not-a-real-token")
    assert_one_line_error(result, EXIT_AUTH, "401")
    assert "tok_not-a-real-token" not in result.err


def test_missing_credentials(cli: Cli, creds: Credentials, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KLOUDLESS_TOKEN")
    assert_one_line_error(cli("ls"), 2, "no credentials", "KLOUDLESS_TOKEN")
    monkeypatch.setenv("KLOUDLESS_API_KEY", creds.api_key)
    assert_one_line_error(cli("ls"), 2, "account id")


def test_api_key_with_account_id(
    cli: Cli, creds: Credentials, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    put_text(cli, tmp_path, "mine.txt", "m")
    monkeypatch.delenv("KLOUDLESS_TOKEN")
    result = cli("ls", "--api-key", creds.api_key, "--account", str(creds.account_id), "--json")
    assert result.code == 0, result.err
    assert [item["name"] for item in json.loads(result.out)] == ["mine.txt"]
    assert creds.api_key not in result.out + result.err


def test_server_down(cli: Cli, creds: Credentials) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli("ls", "--base-url", f"http://127.0.0.1:{port}", "--retries", "0")
    assert_one_line_error(result, EXIT_NETWORK, "cannot connect", str(port))
    assert "is `kloudless serve` running?" in result.err
    assert_one_line_error(cli("ls", "--retries", "-1"), 2, "--retries")
    assert_one_line_error(cli("ls", "--timeout", "0"), 2, "--timeout")


def test_missing_remote_and_local_files(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    assert_one_line_error(
        cli("get", "/nope.txt"), EXIT_NOT_FOUND, "no such file or folder: /nope.txt"
    )
    assert_one_line_error(cli("get", "file_doesnotexist"), EXIT_NOT_FOUND, "no such file")
    assert_one_line_error(
        cli("put", str(tmp_path / "absent.txt")), EXIT_NOT_FOUND, "no such local file"
    )
    cli("mkdir", "/docs")
    assert_one_line_error(cli("get", "/docs"), 2, "not a file")
    assert_one_line_error(cli("ls", "/docs/../etc"), 2, "'..'")


@pytest.mark.parametrize(
    "argv",
    [
        ["ls"],
        ["tree"],
        ["get"],
        ["put"],
        ["mkdir"],
        ["mv"],
        ["cp"],
        ["rm"],
        ["link"],
        ["search"],
        ["cal"],
        ["cal", "list"],
        ["cal", "events"],
        ["cal", "add"],
        ["events"],
        ["raw"],
    ],
)
def test_help_everywhere(cli: Cli, argv: list[str]) -> None:
    result = cli(*argv, "--help")
    assert result.code == 0
    assert result.out.startswith("usage: ")
    assert "KLOUDLESS_TOKEN" in result.out


def test_usage_error_exits_2(cli: Cli) -> None:
    result = cli("get")
    assert result.code == 2 and "usage:" in result.err


def test_argument_checks(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    one, two = tmp_path / "1.txt", tmp_path / "2.txt"
    one.write_text("1")
    two.write_text("2")
    assert_one_line_error(cli("put", str(one), str(two), "--name", "x"), 2, "exactly one file")
    assert_one_line_error(cli("put", str(tmp_path)), 2, "is a folder")
    both = cli("put", str(one), str(two), "--json")
    assert [f["name"] for f in json.loads(both.out)] == ["1.txt", "2.txt"]
    assert_one_line_error(cli("raw", "GET", "/x", "-H", "no colon"), 2, "-H")
    assert_one_line_error(cli("mkdir", "a/b", "--parent", "/"), 2, "without '/'")
    assert_one_line_error(
        cli("cal", "add", "X", "--start", "2024-01-01T10:00Z", "--duration", "soon"),
        2,
        "--duration",
    )


def test_verbose_logs_requests_without_secrets(cli: Cli, creds: Credentials) -> None:
    result = cli("ls", "-vv")
    assert result.code == 0
    assert "Request to " in result.err and "storage/folders/root/contents" in result.err
    assert creds.token not in result.err and creds.token not in result.out
    quiet = cli("ls")
    assert quiet.err == ""  # the handler is gone after the command


def test_progress_bars_on_a_terminal(
    cli: Cli, creds: Credentials, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend stderr is a terminal: uploads and downloads draw a tqdm bar there, data unchanged.
    monkeypatch.setattr("kloudless.cli.progress._want_bar", lambda enabled: enabled)
    local = tmp_path / "bar.bin"
    local.write_bytes(b"z" * 200_000)
    put = cli("put", str(local), "--json")
    assert put.code == 0 and json.loads(put.out)["size"] == 200_000
    assert "bar.bin" in put.err and "\r" in put.err
    got = cli("get", "/bar.bin", str(tmp_path / "copy.bin"))
    assert got.code == 0 and "bar.bin" in got.err
    assert (tmp_path / "copy.bin").read_bytes() == local.read_bytes()
    silent = cli("put", str(local), "--no-progress")
    assert silent.code == 0 and "\r" not in silent.err
    # The only line: the name was taken, so the server stored it under another one.
    assert silent.err == (
        "kloudless: bar.bin exists in /; stored as bar (1).bin "
        "(--overwrite replaces, --skip-existing skips)\n"
    )


def test_put_ctrl_c_prints_the_resume_hint(
    cli: Cli, creds: Credentials, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kloudless import transfer

    payload = os.urandom(3 * 1024 * 1024)
    local = tmp_path / "stopped.bin"
    local.write_bytes(payload)
    send_part = transfer._MultipartUpload._send_part

    def ctrl_c_on_part_1(self: Any, session_id: str, number: int) -> None:
        if number == 1:  # after the session was created on the server
            raise KeyboardInterrupt
        send_part(self, session_id, number)

    monkeypatch.setattr(transfer._MultipartUpload, "_send_part", ctrl_c_on_part_1)
    stopped = cli("put", str(local), "--multipart-threshold", "64K", "--no-progress")
    assert stopped.code == 130
    assert "Traceback" not in stopped.err
    hint = f"resume with: kloudless put {local} --session-id "
    assert hint in stopped.err, stopped.err
    session_id = stopped.err.split(hint, 1)[1].split()[0]

    monkeypatch.setattr(transfer._MultipartUpload, "_send_part", send_part)
    resumed = cli("put", str(local), "--session-id", session_id, "--json", "--no-progress")
    assert resumed.code == 0, resumed.err
    assert json.loads(resumed.out)["size"] == len(payload)


def test_events_cursor_ahead_is_one_error_line(cli: Cli, creds: Credentials) -> None:
    result = cli("events", "--cursor", "999999")
    assert result.code == 1
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "ahead of the latest event" in result.err


def test_cal_add_date_only_is_an_all_day_event(cli: Cli, creds: Credentials) -> None:
    one = cli("cal", "add", "Holiday", "--start", "2030-05-02", "--json")
    assert one.code == 0, one.err
    event = json.loads(one.out)
    assert event["all_day"] is True
    assert (event["start"], event["end"]) == ("2030-05-02", "2030-05-03")
    trip = json.loads(
        cli("cal", "add", "Trip", "--start", "2030-06-01", "--duration", "3d", "--json").out
    )
    assert (trip["all_day"], trip["end"]) == (True, "2030-06-04")
    assert cli("cal", "add", "Bad", "--start", "2030-06-01", "--duration", "90m").code == 2
    assert cli("cal", "add", "Bad", "--start", "2030-06-01", "--end", "2030-06-01T10:00").code == 2


def test_api_key_flag_wins_over_token_env(
    cli: Cli, creds: Credentials, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    put_text(cli, tmp_path, "mine.txt", "m")
    monkeypatch.setenv("KLOUDLESS_TOKEN", "tok_stale-token-from-env")  # would answer 401
    result = cli("ls", "--api-key", creds.api_key, "--account", str(creds.account_id), "--json")
    assert result.code == 0, result.err
    assert [item["name"] for item in json.loads(result.out)] == ["mine.txt"]


def test_get_into_a_missing_local_folder(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    put_text(cli, tmp_path, "here.txt", "h")
    missing = tmp_path / "missing" / "dir"
    result = cli("get", "/here.txt", str(missing / "x.txt"))
    assert_one_line_error(result, EXIT_NOT_FOUND)
    assert result.err == f"kloudless: error: no such local folder: {missing}\n"
    assert not missing.exists()
