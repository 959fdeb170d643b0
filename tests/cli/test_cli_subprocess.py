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
