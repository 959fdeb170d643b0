"""examples/large_upload.py, watch_events.py and webhook_receiver.py, run as scripts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import requests
from example_helpers import live_server_module, load_example, run_example, wait_for

from kloudless import Account
from kloudless.cli import main as cli_main

TIMEOUT = 10
#: A webhook signing key for the receiver tests that sign requests themselves.
KEY = "whsec_example"


# -- quickstart.py (the main job; `make demo` runs it) ----------------------------------------


def test_quickstart(creds: Any) -> None:
    result = run_example("quickstart", [], creds)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "== Account ==" in result.stdout
    assert creds.token not in result.stdout + result.stderr


def test_quickstart_server_down(creds: Any) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_example(
        "quickstart", [], creds, {"KLOUDLESS_BASE_URL": f"http://127.0.0.1:{port}"}
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], result.stderr
    assert "kloudless serve" in lines[0]


# -- large_upload.py --------------------------------------------------------------------------


def test_large_upload_generated_file_multipart_verified(creds: Any) -> None:
    # 3.5 MiB with the server's 1 MiB parts: a four-part multipart upload, downloaded back.
    result = run_example(
        "large_upload", ["--size", "3584K", "--threshold", "1M", "--verify"], creds
    )
    assert result.returncode == 0, result.stderr
    assert "(3670016 bytes)" in result.stdout
    assert "verified: the downloaded copy is identical" in result.stdout
    with Account(token=creds.token, base_url=creds.base_url) as account:
        (item,) = list(account.get("storage/folders/root/contents"))
        assert item.data["size"] == 3670016


def test_large_upload_given_file(creds: Any, tmp_path: Path) -> None:
    local = tmp_path / "given.bin"
    payload = os.urandom(1024 * 1024 + 17)
    local.write_bytes(payload)
    result = run_example(
        "large_upload", [str(local), "--name", "renamed.bin", "--threshold", "1M"], creds
    )
    assert result.returncode == 0, result.stderr
    assert "uploaded renamed.bin" in result.stdout
    assert f"sha256 {hashlib.sha256(payload).hexdigest()}" in result.stdout


def test_large_upload_reports_errors(creds: Any, tmp_path: Path) -> None:
    result = run_example("large_upload", [str(tmp_path / "absent.bin")], creds)
    assert result.returncode == 1 and "error:" in result.stderr
    assert "Traceback" not in result.stderr
    bad = run_example("large_upload", ["--size", "1K"], creds, {"KLOUDLESS_TOKEN": "tok_bad"})
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def test_large_upload_ctrl_c_prints_the_resume_hint(
    creds: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kloudless import transfer

    def ctrl_c(self: Any, session_id: str, number: int) -> None:
        raise KeyboardInterrupt

    import kloudless

    for name, value in creds.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(kloudless.configuration, "base_url", creds.base_url)
    monkeypatch.setattr(transfer._MultipartUpload, "_send_part", ctrl_c)
    status = load_example("large_upload").main(["--size", "2M", "--threshold", "1M"])
    err = capsys.readouterr().err
    assert status == 130, err
    assert re.search(r"interrupted; resume with --session-id \S+", err), err
    assert "Traceback" not in err


# -- watch_events.py --------------------------------------------------------------------------


def test_watch_events_with_a_cursor_file(creds: Any, tmp_path: Path) -> None:
    cursor_file = tmp_path / "cursor"
    first = run_example("watch_events", ["--cursor-file", str(cursor_file), "--once"], creds)
    assert first.returncode == 0, first.stderr
    start = cursor_file.read_text().strip()
    assert f"starting at cursor {start}" in first.stderr
    assert first.stdout == ""

    with Account(token=creds.token, base_url=creds.base_url) as account:
        account.post("storage/folders", json={"name": "watched", "parent_id": "root"})
        account.upload(_small_file(tmp_path), parent_id="root", name="seen.txt")

    second = run_example("watch_events", ["--cursor-file", str(cursor_file), "--once"], creds)
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert len(lines) == 2
    assert "add" in lines[0] and "watched" in lines[0]
    assert "add" in lines[1] and "seen.txt" in lines[1]
    moved_on = cursor_file.read_text().strip()
    assert int(moved_on) > int(start)

    # Nothing new: nothing printed, the cursor stays; --max-polls bounds a polling run.
    third = run_example(
        "watch_events",
        ["--cursor-file", str(cursor_file), "--max-polls", "2", "--interval", "0.1"],
        creds,
    )
    assert third.returncode == 0 and third.stdout == ""
    assert cursor_file.read_text().strip() == moved_on


def _small_file(folder: Path) -> str:
    path = folder / "small.txt"
    path.write_text("seen\n")
    return str(path)


# -- webhook_receiver.py ----------------------------------------------------------------------


def _sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _webhook_set(url: str, data_dir: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    # The receiver listens on loopback, which the outbound policy refuses unless allowlisted.
    allow = ["--allow-upstream", "127.0.0.1"]
    status = cli_main(["apps", "webhook", "set", url, "--data-dir", data_dir, *allow])
    return status, capsys.readouterr().out


def test_webhook_receiver_with_the_local_server(
    example_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's steps: webhook set prints the signing key, the receiver validates the ping
    and verifies the notification sent after an upload. Its own server: the webhook must not
    see the other tests' activity."""
    data_dir = str(tmp_path / "data")
    server = live_server_module.LiveServer(data_dir, allow_upstream=["127.0.0.1"]).start()
    try:
        creds = server.new_account()
        url = f"http://127.0.0.1:{_free_port()}/"
        status, out = _webhook_set(url, data_dir, capsys)
        assert status == 1 and f"Webhook {url}: invalid" in out  # no receiver yet
        key = re.search(r"(whsec_\S+)", out)
        assert key is not None, out

        receiver = example_server(
            "webhook_receiver",
            ["--port", url.rsplit(":", 1)[1].rstrip("/")],
            creds,
            {"KLOUDLESS_WEBHOOK_SIGNING_KEY": key.group(1)},
        )
        status, out = _webhook_set(url, data_dir, capsys)
        assert status == 0 and f"Webhook {url}: valid" in out, out
        assert "whsec_" not in out  # the key is kept, not shown again

        with Account(token=creds.token, base_url=creds.base_url) as account:
            account.upload(_small_file(tmp_path), parent_id="root", name="notify.txt")
        line = receiver.next_line(timeout=20)
        assert line.strip() == f"new activity on account {creds.account_id}"
    finally:
        server.stop()


def test_webhook_receiver_refuses_the_api_key_by_default(example_server: Any, creds: Any) -> None:
    # Signed with the API key (what the old example used) while the receiver has the signing key.
    receiver = example_server(
        "webhook_receiver",
        ["--port", "0"],
        creds,
        {"KLOUDLESS_WEBHOOK_SIGNING_KEY": "whsec_test"},
    )
    body = f"account={creds.account_id}".encode()
    wrong = requests.post(
        receiver.url,
        data=body,
        headers={"X-Kloudless-Signature": _sign(body, creds.api_key)},
        timeout=TIMEOUT,
    )
    assert wrong.status_code == 401
    right = requests.post(
        receiver.url,
        data=body,
        headers={"X-Kloudless-Signature": _sign(body, "whsec_test")},
        timeout=TIMEOUT,
    )
    assert right.status_code == 200 and right.text == creds.app_id


def test_webhook_receiver_needs_a_signing_key(creds: Any) -> None:
    result = run_example("webhook_receiver", ["--port", "0"], creds)
    assert result.returncode == 2
    assert "KLOUDLESS_WEBHOOK_SIGNING_KEY" in result.stderr and "Traceback" not in result.stderr


def test_webhook_receiver(example_server: Any, creds: Any) -> None:
    receiver = example_server("webhook_receiver", ["--port", "0", "--signing-key", KEY], creds)
    url = receiver.url + "/"

    ping = requests.post(
        url, data=b"", headers={"X-Kloudless-Signature": _sign(b"", KEY)}, timeout=TIMEOUT
    )
    assert ping.status_code == 200 and ping.text == creds.app_id

    body = f"account={creds.account_id}".encode()
    note = requests.post(
        url,
        data=body,
        headers={
            "X-Kloudless-Signature": _sign(body, KEY),
            "Content-Type": "application/x-www-form-urlencoded",
        },
        timeout=TIMEOUT,
    )
    assert note.status_code == 200 and note.text == creds.app_id
    assert receiver.next_line().strip() == f"new activity on account {creds.account_id}"

    forged = requests.post(
        url, data=body, headers={"X-Kloudless-Signature": _sign(body, "wrong-key")}, timeout=TIMEOUT
    )
    assert forged.status_code == 401 and creds.app_id not in forged.text
    unsigned = requests.post(url, data=body, timeout=TIMEOUT)
    assert unsigned.status_code == 401
    tampered = requests.post(
        url,
        data=b"account=999",
        headers={"X-Kloudless-Signature": _sign(body, KEY)},
        timeout=TIMEOUT,
    )
    assert tampered.status_code == 401
    assert requests.get(url, timeout=TIMEOUT).status_code == 405
    assert requests.post(url, data=b"x" * 100_000, timeout=TIMEOUT).status_code == 413

    # Only the one genuine notification was reported.
    assert wait_for(lambda: receiver.lines.empty(), timeout=1)
    receiver.stop()
    assert receiver.lines.empty()


def test_webhook_receiver_accepts_rotated_keys(example_server: Any, creds: Any) -> None:
    receiver = example_server(
        "webhook_receiver",
        ["--port", "0", "--app-id", "app_x", "--api-key", "old-key", "--api-key", "new-key"],
        creds,
    )
    for key in ("old-key", "new-key"):
        answer = requests.post(
            receiver.url,
            data=b"account=7",
            headers={"X-Kloudless-Signature": _sign(b"account=7", key)},
            timeout=TIMEOUT,
        )
        assert answer.status_code == 200 and answer.text == "app_x"
    assert (
        requests.post(
            receiver.url,
            data=b"account=7",
            headers={"X-Kloudless-Signature": _sign(b"account=7", creds.api_key)},
            timeout=TIMEOUT,
        ).status_code
        == 401
    )


# -- examples/README.rst ----------------------------------------------------------------------


def test_examples_readme_install_line_and_settings() -> None:
    text = (Path(__file__).resolve().parents[2] / "examples" / "README.rst").read_text()
    installs = re.findall(r'pip install "kloudless[-\w]*\[[^\]]*\]"', text)
    # One line for every example, under the distribution's own name (not the defunct 2.x one).
    assert installs == ['pip install "kloudless-compat[server,cli]"']
    for name in ("KLOUDLESS_REDIRECT_URL", "KLOUDLESS_WEBHOOK_SIGNING_KEY"):
        assert f"``{name}``" in text
    assert "kloudless apps webhook set http://127.0.0.1:8030/" in text
