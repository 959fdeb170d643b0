"""``kloudless serve`` as a real process: first-start credentials, request log lines with the
request id, loopback binding, clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable

import requests

from kloudless.server.settings import Settings
from tests.server.conftest import cli_options


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_process(make_settings: Callable[..., Settings], tmp_path: Any) -> None:
    port = _free_port()
    settings = make_settings(tmp_path / "d")
    where = cli_options(settings)
    if settings.blob_store:  # the AWS variables of this process name the endpoint
        where += ["--blob-store", settings.blob_store]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kloudless.cli", "serve", *where, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("Serving" in ln for ln in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        token = next(ln.split("=", 1)[1].strip() for ln in lines if "KLOUDLESS_TOKEN=" in ln)
        # First start: copy-pasteable shell lines, including where the server is.
        exports = [ln.strip() for ln in lines if ln.strip().startswith("export ")]
        assert exports[0] == f"export KLOUDLESS_BASE_URL=http://127.0.0.1:{port}"
        assert [ln.split("=", 1)[0] for ln in exports] == [
            "export KLOUDLESS_BASE_URL",
            "export KLOUDLESS_APP_ID",
            "export KLOUDLESS_API_KEY",
            "export KLOUDLESS_ACCOUNT_ID",
            "export KLOUDLESS_TOKEN",
            "export KLOUDLESS_DEVELOPER_KEY",
        ]
        developer_key = exports[-1].split("=", 1)[1]
        assert developer_key.startswith("dev_")
        apps = requests.get(
            f"http://127.0.0.1:{port}/v1/meta/applications",
            headers={"Authorization": f"DeveloperKey {developer_key}"},
            timeout=10,
        )
        assert apps.status_code == 200 and apps.json()["count"] == 1
        response = requests.get(
            f"http://127.0.0.1:{port}/v1/accounts/me",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200
        request_id = response.headers["X-Request-Id"]
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert f"request_id={request_id}" in rest
        assert token not in rest  # the token is printed once at creation, never logged
        assert developer_key not in rest
        assert "Stopped." in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
