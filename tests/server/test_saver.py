"""Upload from a URL (the Saver): fetched through the outbound policy, streamed, size-limited;
bad bodies are 400s; ``X-Kloudless-Async`` makes it a task."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from werkzeug.test import Client

from kloudless.server import create_app
from kloudless.server.bootstrap import bootstrap

from .conftest import BufferedClient, SettingsMaker, assert_error

S = "/v1/accounts/me/storage"
PAYLOAD = b"saved from the web\n" * 100


class _Handler(BaseHTTPRequestHandler):
    redirect_to = ""

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.redirect_to + "/file/report.txt")
            self.end_headers()
        elif self.path.startswith("/file/"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 serving ``/file/<name>`` and ``/redirect``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _client(
    make_settings: SettingsMaker, name: str, **settings: Any
) -> tuple[Client, dict[str, str], Any]:
    app = create_app(make_settings(make_settings.tmp_path / name, **settings))
    creds = bootstrap(app.store)
    assert creds is not None
    return BufferedClient(app), {"Authorization": f"Bearer {creds.token}"}, app


@pytest.fixture
def allowed(make_settings: SettingsMaker) -> Iterator[tuple[Client, dict[str, str]]]:
    client, auth, app = _client(make_settings, "allowed", allow_upstream=["127.0.0.1"])
    yield client, auth
    app.close()


def test_upload_from_url_streams_the_file(allowed: tuple[Client, dict[str, str]], web: str) -> None:
    client, auth = allowed
    made = client.post(f"{S}/files", headers=auth, json={"url": f"{web}/file/a%20b.txt"})
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.get_json()["name"] == "a b.txt" and made.get_json()["size"] == len(PAYLOAD)
    contents = client.get(f"{S}/files/{made.get_json()['id']}/contents", headers=auth)
    assert contents.data == PAYLOAD
    named = client.post(
        f"{S}/files", headers=auth, json={"url": f"{web}/redirect", "name": "r.txt"}
    )
    assert named.status_code == 201 and named.get_json()["name"] == "r.txt"
    events = client.get("/v1/accounts/me/events", headers=auth).get_json()["objects"]
    assert [e["type"] for e in events] == ["add", "add"]


def test_upload_from_url_as_a_task(allowed: tuple[Client, dict[str, str]], web: str) -> None:
    client, auth = allowed
    headers = dict(auth, **{"X-Kloudless-Async": "true"})
    task = client.post(f"{S}/files", headers=headers, json={"url": f"{web}/file/t.bin"})
    assert task.status_code == 202, task.get_data(as_text=True)
    url = f"/v1/accounts/me/tasks/{task.get_json()['id']}"
    deadline = time.monotonic() + 60
    answer = client.get(url, headers=auth)
    while answer.get_json().get("state") == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.05)
        answer = client.get(url, headers=auth)
    assert answer.get_json()["name"] == "t.bin" and answer.get_json()["size"] == len(PAYLOAD)


def test_loopback_urls_are_refused_by_default(make_settings: SettingsMaker, web: str) -> None:
    client, auth, app = _client(make_settings, "default")
    try:
        for url in (
            f"{web}/file/x.txt",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/x",
            "http://[::1]/x",
        ):
            refused = client.post(f"{S}/files", headers=auth, json={"url": url})
            body = assert_error(refused, 400, "invalid_parameters")
            assert "cannot be fetched" in body["message"], url
        assert client.get(f"{S}/folders/root/contents", headers=auth).get_json()["count"] == 0
    finally:
        app.close()


def test_every_redirect_is_checked(make_settings: SettingsMaker, web: str) -> None:
    # Only the first server's port is allowed; it redirects to another loopback port.
    other = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = web.rsplit(":", 1)[1]
    _Handler.redirect_to = f"http://127.0.0.1:{other.server_address[1]}"
    client, auth, app = _client(make_settings, "port", allow_upstream=[f"127.0.0.1:{port}"])
    try:
        direct = client.post(f"{S}/files", headers=auth, json={"url": f"{web}/file/ok.txt"})
        assert direct.status_code == 201, direct.get_data(as_text=True)
        hop = client.post(f"{S}/files", headers=auth, json={"url": f"{web}/redirect"})
        assert "cannot be fetched" in assert_error(hop, 400, "invalid_parameters")["message"]
    finally:
        app.close()
        other.server_close()
        _Handler.redirect_to = ""


def test_size_limit(make_settings: SettingsMaker, web: str) -> None:
    client, auth, app = _client(
        make_settings, "small", allow_upstream=["127.0.0.1"], max_upload_bytes=100
    )
    try:
        big = client.post(f"{S}/files", headers=auth, json={"url": f"{web}/file/big.bin"})
        assert big.status_code == 413
        assert client.get(f"{S}/folders/root/contents", headers=auth).get_json()["count"] == 0
    finally:
        app.close()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "x.txt"},
        {"url": 5},
        {"url": ["http://x"]},
        {"url": "ftp://example.com/x"},
        {"url": "not a url"},
        {"url": "http://example.com/x", "parent_id": 3},
        {"url": "http://example.com/x", "name": "a/b"},
    ],
)
def test_malformed_saver_bodies_are_400(
    allowed: tuple[Client, dict[str, str]], body: dict[str, Any]
) -> None:
    client, auth = allowed
    assert_error(client.post(f"{S}/files", headers=auth, json=body), 400, "invalid_parameters")


def test_error_answers_and_missing_parent(allowed: tuple[Client, dict[str, str]], web: str) -> None:
    client, auth = allowed
    missing = client.post(f"{S}/files", headers=auth, json={"url": f"{web}/nothing"})
    assert "HTTP 404" in assert_error(missing, 400, "invalid_parameters")["message"]
    parent = client.post(
        f"{S}/files", headers=auth, json={"url": f"{web}/file/x", "parent_id": "folder_nope"}
    )
    assert parent.status_code in (400, 404) and parent.get_json()["error_code"]
