"""What goes wrong with rclone accounts, through the API, each with a real cause: the rcd killed
during an upload and during a download, a stopped upstream, a full upstream (a tmpfs, mounted by
the test as root, else skipped with the reason printed), and a WebDAV server that rate limits,
runs out of space or rejects the credentials (WsgiDAV behind a switch that answers for it).

Every failure is a JSON error of the API's contract, nothing half-written shows up, and the next
request works (after the rcd restarted by itself)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials
from kloudless.server.connectors.rclone_process import daemon_for
from kloudless.server.connectors.rclone_storage import UPLOAD_PREFIX
from tests.dav.servers import PASSWORD as DAV_PASSWORD
from tests.dav.servers import USERNAME as DAV_USER
from tests.dav.servers import ServerThread, webdav_app

from .servers import PASSWORD, USER, ServeProcess, Upstream, Upstreams, free_port
from .test_rclone_api import connect

MIB = 1024 * 1024


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _upload(
    client: Client, token: str, name: str, data: bytes | io.RawIOBase, size: int | None = None
) -> Any:
    headers = {
        **_bearer(token),
        "X-Kloudless-Metadata": json.dumps({"parent_id": "root", "name": name}),
        "Content-Type": "application/octet-stream",
    }
    if isinstance(data, bytes):
        return client.post("/v1/accounts/me/storage/files", data=data, headers=headers)
    return client.post(
        "/v1/accounts/me/storage/files",
        headers=headers,
        environ_overrides={"wsgi.input": data, "CONTENT_LENGTH": str(size)},
    )


def _names(client: Client, token: str) -> list[str]:
    listing = client.get("/v1/accounts/me/storage/folders/root/contents", headers=_bearer(token))
    assert listing.status_code == 200, listing.get_json()
    return [o["name"] for o in listing.get_json()["objects"]]


def _on_disk(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _kill_rcd(app: ServerApp) -> int:
    daemon = daemon_for(app.settings.data_dir)
    pid = daemon.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return daemon.generation()


class KillingBody(io.RawIOBase):
    """An upload body of ``size`` bytes that calls ``kill`` once ``after`` bytes were read."""

    def __init__(self, size: int, after: int, kill: Callable[[], object]) -> None:
        super().__init__()
        self.left, self.after, self.kill = size, after, kill
        self.read_bytes = 0
        self.killed = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.read_bytes >= self.after and not self.killed:
            self.killed = True
            self.kill()
        n = min(len(buffer), self.left, 64 * 1024)
        buffer[:n] = b"u" * n
        self.left -= n
        self.read_bytes += n
        return n


def test_rcd_killed_during_an_upload(
    client: Client, app: ServerApp, creds: Credentials, upstreams: Upstreams
) -> None:
    local = upstreams.make("local")
    _, token = connect(client, creds, local)
    assert _upload(client, token, "before.txt", b"before").status_code == 201
    generation = daemon_for(app.settings.data_dir).generation()

    body = KillingBody(16 * MIB, 2 * MIB, lambda: _kill_rcd(app))
    answer = _upload(client, token, "big.bin", body, 16 * MIB)
    error = answer.get_json()
    assert body.killed, error
    assert (answer.status_code, error["error_code"]) == (503, "service_not_available"), error
    assert "rclone stopped" in error["message"] and answer.headers["Retry-After"] == "1"
    # Nothing half-written under the real name, in the listing or on the disk.
    assert _names(client, token) == ["before.txt"]
    assert [n for n in _on_disk(local.folder) if not n.startswith(UPLOAD_PREFIX)] == ["before.txt"]
    # The next request restarts the rcd and works.
    assert _upload(client, token, "after.txt", b"after").status_code == 201
    assert daemon_for(app.settings.data_dir).generation() == generation + 1
    assert (local.folder / "after.txt").read_bytes() == b"after"
    assert sorted(_names(client, token)) == ["after.txt", "before.txt"]


def test_rcd_killed_during_a_download(
    client: Client, app: ServerApp, creds: Credentials, upstreams: Upstreams
) -> None:
    local = upstreams.make("local")
    _, token = connect(client, creds, local)
    data = os.urandom(256 * 1024) * 32  # 8 MiB
    (local.folder / "big.bin").write_bytes(data)
    file_id = next(
        o["id"]
        for o in client.get(
            "/v1/accounts/me/storage/folders/root/contents", headers=_bearer(token)
        ).get_json()["objects"]
    )
    url = f"/v1/accounts/me/storage/files/{file_id}/contents"
    answer = client.get(url, headers=_bearer(token), buffered=False)
    assert answer.status_code == 200 and answer.content_length == len(data)
    chunks = iter(answer.response)
    received = next(chunks)
    _kill_rcd(app)
    # The body does not end as if it were complete: the iterator fails, so the HTTP server
    # drops the connection short of Content-Length and the client sees a broken download.
    with pytest.raises(Exception) as broken:  # noqa: B017, PT011 - urllib3's ProtocolError
        for _ in range(10_000):  # bounded: 8 MiB in chunks of 64 KiB or more
            chunk = next(chunks)
            received += chunk
    assert not isinstance(broken.value, StopIteration), "the body ended early without an error"
    assert len(received) < len(data)
    answer.close()
    again = client.get(url, headers=_bearer(token))
    assert again.status_code == 200 and again.data == data


def test_stopped_upstream(
    client: Client, app: ServerApp, creds: Credentials, tmp_path: Path
) -> None:
    root, work = tmp_path / "sftp-root", tmp_path / "sftp-work"
    (root / "files").mkdir(parents=True)
    work.mkdir()
    port = free_port()
    env = {"RCLONE_ADDR": f"127.0.0.1:{port}", "RCLONE_USER": USER, "RCLONE_PASS": PASSWORD}
    server = ServeProcess("sftp", root, work, env)
    options = {"host": "127.0.0.1", "port": str(port), "user": USER, "pass": PASSWORD}
    upstream = Upstream("sftp", "sftp", dict(options, shell_type="none"), "files", root / "files")
    try:
        _, token = connect(client, creds, upstream)
        assert _upload(client, token, "kept.txt", b"kept").status_code == 201
    finally:
        server.stop()
    listing = client.get("/v1/accounts/me/storage/folders/root/contents", headers=_bearer(token))
    error = listing.get_json()
    assert (listing.status_code, error["error_code"]) == (503, "service_not_available"), error
    assert PASSWORD not in listing.get_data(as_text=True)
    server = ServeProcess("sftp", root, work, env)  # back on the same port
    try:
        assert _names(client, token) == ["kept.txt"]
        assert _on_disk(root / "files") == ["kept.txt"]
    finally:
        server.stop()


def _mount_tmpfs(path: Path, size_mib: int) -> str | None:
    """:returns: why a tmpfs cannot be mounted at ``path``, or None once it is."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return f"mount -t tmpfs failed: {done.stderr.strip()}" if done.returncode else None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs."""
    path = tmp_path / "disk"
    path.mkdir()
    reason = _mount_tmpfs(path, 4)
    if reason is not None:
        print(f"skipping the full-upstream test: {reason}")
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize("kind", ["local", "sftp"])
def test_full_upstream_is_507(
    client: Client, app: ServerApp, creds: Credentials, small_disk: Path, kind: str
) -> None:
    (small_disk / "files").mkdir()
    server = None
    if kind == "local":
        upstream = Upstream("local", "local", {}, str(small_disk / "files"), small_disk / "files")
    else:
        (small_disk.parent / "work").mkdir()
        env = {"RCLONE_ADDR": "127.0.0.1:0", "RCLONE_USER": USER, "RCLONE_PASS": PASSWORD}
        server = ServeProcess("sftp", small_disk, small_disk.parent / "work", env)
        options = {"host": "127.0.0.1", "port": str(server.port), "user": USER}
        options.update({"pass": PASSWORD, "shell_type": "none"})
        upstream = Upstream("sftp", "sftp", options, "files", small_disk / "files")
    try:
        _, token = connect(client, creds, upstream)
        full = _upload(client, token, "too-big.bin", os.urandom(6 * MIB))
        error = full.get_json()
        if kind == "sftp" and full.status_code == 502:
            # rclone's SFTP server does not always say "no space": when it drops the write
            # channel the client only sees a failed transfer, which is all the server can tell.
            assert error["error_code"] == "bad_gateway", error
        else:
            assert (full.status_code, error["error_code"]) == (507, "insufficient_storage"), error
        assert _names(client, token) == []
        assert [n for n in _on_disk(upstream.folder) if not n.startswith(UPLOAD_PREFIX)] == []
        # The failed upload's temporary file is gone, so the space is free again.
        assert _upload(client, token, "fits.bin", b"f" * MIB).status_code == 201
        assert _names(client, token) == ["fits.bin"]
    finally:
        if server is not None:
            server.stop()


class Switch:
    """WSGI middleware: passes requests to the WebDAV app, or answers for it while ``answer``
    is set to ``(status line, headers, body, methods)``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answer: tuple[str, list[tuple[str, str]], bytes, tuple[str, ...]] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        answer = self.answer
        if answer is not None and environ["REQUEST_METHOD"] in answer[3]:
            environ["wsgi.input"].read()
            start_response(answer[0], [*answer[1], ("Content-Length", str(len(answer[2])))])
            return [answer[2]]
        return self.app(environ, start_response)


def _dav_error(exception: str, message: str) -> bytes:
    """:returns: a SabreDAV-style error body (rclone reads its exception and message)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?><d:error xmlns:d="DAV:" '
        f'xmlns:s="http://sabredav.org/ns"><s:exception>{exception}</s:exception>'
        f"<s:message>{message}</s:message></d:error>"
    ).encode()


@pytest.fixture
def dav_switch(tmp_path: Path) -> Iterator[tuple[Switch, Upstream]]:
    root = tmp_path / "dav"
    root.mkdir()
    switch = Switch(webdav_app(root))
    runner = ServerThread(switch)
    url = f"http://127.0.0.1:{runner.port}/dav/"
    runner.start(url, (DAV_USER, DAV_PASSWORD))
    options = {"url": url, "vendor": "other", "user": DAV_USER, "pass": DAV_PASSWORD}
    try:
        yield switch, Upstream("webdav", "webdav", options, "", root)
    finally:
        runner.stop()


ALL = ("PROPFIND", "GET", "PUT", "MKCOL", "MOVE", "COPY", "DELETE", "HEAD")


def test_rate_limited_full_and_rejecting_webdav(
    client: Client, app: ServerApp, creds: Credentials, dav_switch: tuple[Switch, Upstream]
) -> None:
    switch, upstream = dav_switch
    _, token = connect(client, creds, upstream)
    assert _upload(client, token, "first.txt", b"1").status_code == 201

    xml = [("Content-Type", "application/xml")]
    switch.answer = (
        "429 Too Many Requests",
        xml,
        _dav_error("TooManyRequests", "Slow down: retry after 42s"),
        ALL,
    )
    limited = client.get("/v1/accounts/me/storage/folders/root/contents", headers=_bearer(token))
    error = limited.get_json()
    assert (limited.status_code, error["error_code"]) == (429, "too_many_service_requests"), error
    assert limited.headers["Retry-After"] == "42"

    switch.answer = (
        "507 Insufficient Storage",
        xml,
        _dav_error("InsufficientStorage", "The disk is full"),
        ("PUT",),
    )
    full = _upload(client, token, "second.txt", b"2" * 1000)
    error = full.get_json()
    assert (full.status_code, error["error_code"]) == (507, "insufficient_storage"), error

    switch.answer = ("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="dav"')], b"", ALL)
    rejected = client.get("/v1/accounts/me/storage/folders/root/contents", headers=_bearer(token))
    error = rejected.get_json()
    assert (rejected.status_code, error["error_code"]) == (401, "service_unauthorized"), error
    assert "reconnect the account" in error["message"]
    assert DAV_PASSWORD not in rejected.get_data(as_text=True)

    switch.answer = None
    assert _names(client, token) == ["first.txt"]
    assert _on_disk(upstream.folder) == ["first.txt"]
