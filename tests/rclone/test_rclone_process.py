"""The rcd child: loopback only, random credentials kept out of its arguments, an encrypted
config file, restarted after a crash, its log redacted, orphans of a killed server stopped."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kloudless.server.connectors.rclone_process import (
    RcloneUnavailable,
    close_daemons,
    daemon_for,
    find_binary,
    stop_orphans,
)
from kloudless.server.connectors.rclone_rc import RcClient, RcError


def test_rcd_is_private_and_restarts(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kloudless.server.rclone")
    daemon = daemon_for(str(data_dir))
    rc = RcClient(daemon)
    try:
        endpoint = daemon.ensure()
        assert endpoint.url.startswith("http://127.0.0.1:")
        pid = daemon.pid()
        assert pid is not None
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
        assert argv[1:] == [b"rcd", b""]  # every setting is in the environment
        assert endpoint.password.encode() not in b" ".join(argv)
        # The config file is encrypted by rclone, and private.
        rc.call("config/create", {"name": "x", "type": "alias", "parameters": {"remote": "/"}})
        with open(daemon.config_path, encoding="utf-8") as handle:
            text = handle.read()
        assert text.startswith("# Encrypted rclone configuration File") and "alias" not in text
        assert os.stat(data_dir / "rclone").st_mode & 0o077 == 0
        # Without the credentials the rcd refuses.
        import urllib3

        refused = urllib3.PoolManager().request("POST", endpoint.url + "core/version")
        assert refused.status == 401
        # A crash: the next call starts it again, with the remotes of the config kept.
        os.kill(pid, signal.SIGKILL)
        assert rc.call("config/get", {"name": "x"})["type"] == "alias"
        assert daemon.pid() not in (None, pid)
        assert daemon.generation() == 2
        # rclone's own log reaches the server log, secrets redacted.
        daemon.redact.add(["very-secret-value-42"])
        with pytest.raises(RcError):
            rc.call("operations/list", {"fs": "x:", "remote": "very-secret-value-42/nope"})
        # The log arrives through a reader thread: wait for it (bounded), then look.
        deadline = time.monotonic() + 10
        logged = ""
        while "[REDACTED]" not in logged and time.monotonic() < deadline:
            time.sleep(0.05)
            logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "[REDACTED]" in logged and "very-secret-value-42" not in logged
        assert endpoint.password not in logged
    finally:
        rc.close()
        close_daemons(str(data_dir))
    assert not os.path.exists(daemon.config_path)
    with pytest.raises(RcloneUnavailable):
        daemon.ensure()


def test_orphans_of_a_dead_server_are_stopped(tmp_path: Path) -> None:
    state = tmp_path / "rclone"
    state.mkdir()
    orphan = subprocess.Popen(
        [find_binary(), "rcd"],
        env={"RCLONE_RC_ADDR": "127.0.0.1:0", "RCLONE_CONFIG": str(tmp_path / "none.conf")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    dead = subprocess.Popen(["true"])
    dead.wait()
    (state / f"rcd-{dead.pid}.pid").write_text(str(orphan.pid))
    (state / f"rcd-{dead.pid}.conf").write_text("left behind")
    try:
        stop_orphans(str(state))
        assert orphan.wait(30) is not None
        assert list(state.iterdir()) == []
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_missing_binary_is_a_clear_503(tmp_path: Path) -> None:
    with pytest.raises(RcloneUnavailable) as info:
        find_binary(str(tmp_path / "no-rclone"))
    assert info.value.status == 503 and "--rclone-binary" in info.value.message


def test_upload_names_must_be_plain(rc: RcClient) -> None:
    with pytest.raises(ValueError):
        rc.upload_file("x", "", 'a"b', io.BytesIO(b""))
