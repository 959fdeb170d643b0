"""The real entry points (``python -m kloudless.cli`` and the ``kloudless`` console script) in a
child process, against the live local server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from live_server import Credentials

TIMEOUT = 60


def run(
    args: list[str], env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m kloudless.cli ARGS`` with only the given KLOUDLESS_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KLOUDLESS_")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "kloudless.cli", *args],
        input=stdin,
        capture_output=True,
        env=clean,
        timeout=TIMEOUT,
        check=False,
    )


def test_console_script_help() -> None:
    script = Path(sys.executable).with_name("kloudless")
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0
    for command in ("serve", "ls", "tree", "get", "put", "mkdir", "rm", "cal", "events", "raw"):
        assert command in result.stdout


def test_put_ls_get_through_subprocess(live_server: object, tmp_path: Path) -> None:
    creds: Credentials = live_server.new_account()  # type: ignore[attr-defined]
    env = {"KLOUDLESS_BASE_URL": creds.base_url, "KLOUDLESS_TOKEN": creds.token}
    payload = bytes(range(256)) * 40
    local = tmp_path / "bytes.bin"
    local.write_bytes(payload)

    put = run(["put", str(local), "--json"], env)
    assert put.returncode == 0, put.stderr
    file_id = json.loads(put.stdout)["id"]

    listing = run(["ls", "--json"], env)
    assert listing.returncode == 0
    assert [item["id"] for item in json.loads(listing.stdout)] == [file_id]
    assert put.stderr == b"" and listing.stderr == b""  # no progress bar off a terminal

    streamed = run(["get", "/bytes.bin", "-"], env)
    assert streamed.returncode == 0 and streamed.stdout == payload


def test_errors_through_subprocess(live_server: object) -> None:
    creds: Credentials = live_server.new_account()  # type: ignore[attr-defined]
    bad = run(["ls"], {"KLOUDLESS_BASE_URL": creds.base_url, "KLOUDLESS_TOKEN": "tok_wrong"})
    assert bad.returncode == 4  # authentication
    assert bad.stdout == b""
    err = bad.stderr.decode()
    assert len(err.strip().splitlines()) == 1 and "401" in err and "Traceback" not in err
    assert "tok_wrong" not in err

    missing = run(
        ["get", "/missing.txt"],
        {"KLOUDLESS_BASE_URL": creds.base_url, "KLOUDLESS_TOKEN": creds.token},
    )
    assert missing.returncode == 3  # not found
    assert (
        missing.stderr.decode().strip() == "kloudless: error: no such file or folder: /missing.txt"
    )

    nothing = run(["ls"], {"KLOUDLESS_BASE_URL": creds.base_url})
    assert nothing.returncode == 2 and b"no credentials" in nothing.stderr


CTRL_C_ON_PART_1 = """
import sys
from kloudless import transfer
from kloudless.cli import main

send_part = transfer._MultipartUpload._send_part

def ctrl_c_on_part_1(self, session_id, number):
    if number == 1:  # the session exists on the server by now
        raise KeyboardInterrupt
    send_part(self, session_id, number)

transfer._MultipartUpload._send_part = ctrl_c_on_part_1
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_an_upload_prints_one_resume_hint(
    live_server: object, tmp_path: Path
) -> None:
    creds: Credentials = live_server.new_account()  # type: ignore[attr-defined]
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KLOUDLESS_")}
    clean.update(KLOUDLESS_BASE_URL=creds.base_url, KLOUDLESS_TOKEN=creds.token)
    # A real process, without pytest's log handlers: Python's last-resort handler would print
    # the SDK's own WARNING (a second hint, in Python syntax) if the command let it through.
    stopped = subprocess.run(
        [sys.executable, "-c", CTRL_C_ON_PART_1, "put", str(local), "--multipart-threshold", "64K"],
        capture_output=True,
        env=clean,
        timeout=TIMEOUT,
        check=False,
    )
    err = stopped.stderr.decode()
    assert stopped.returncode == 130, err
    assert err.count("resume") == 1 and "session_id=" not in err, err
    assert err.startswith(f"interrupted; resume with: kloudless put {local} --session-id ")
