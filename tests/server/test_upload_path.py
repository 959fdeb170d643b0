"""What an upload over HTTP does besides its durable steps.

* The app's preflight (run by the HTTP server on the headers of a body larger than
  ``Settings.small_body_bytes``: these tests look at every body first) routes and
  authenticates the request; its dispatch takes that route and those credentials for the same
  request instead of finding them again, within ``app.HANDOVER_SECONDS`` (past that, a large
  or slow body, it authenticates anew, so a token revoked meanwhile is refused), and every
  check the dispatch runs after routing (the rate limit) still runs.
* The webhook worker is woken after a change only when a notification was queued.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import requests
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from kloudless.server import app as app_module
from kloudless.server import webhooks as hooks
from kloudless.server.app import ServerApp
from kloudless.server.context import RequestContext
from kloudless.server.routing import PREFLIGHTED
from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings
from kloudless.server.transfer_limits import SLOT_HELD

from .conftest import BufferedClient, assert_error

WAIT = 10.0  # seconds any wait of these tests takes at most
S = "/v1/accounts/me/storage"


@pytest.fixture
def authentications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """:returns: the ``Authorization`` headers the app authenticates from now on (each
    appended once its credentials were looked up, valid or not)."""
    seen: list[str] = []
    authenticate = app_module.authenticate

    def counting(store: Any, header: str) -> Any:
        try:
            return authenticate(store, header)
        finally:  # once looked up (a test may revoke the token right after)
            seen.append(header)

    monkeypatch.setattr(app_module, "authenticate", counting)
    return seen


@pytest.fixture
def server(make_settings: Callable[..., Settings]) -> Iterator[ServerThread]:
    """The server over HTTP, every request body looked at by the preflight first."""
    with ServerThread(make_settings(port=0, small_body_bytes=0)) as thread:
        yield thread


def _token(server: ServerThread) -> str:
    assert server.credentials is not None
    return server.credentials.token


def _upload(server: ServerThread, name: str, **headers: str) -> requests.Response:
    meta = json.dumps({"name": name, "parent_id": "root"})
    return requests.post(
        f"{server.base_url}{S}/files",
        data=b"u" * 4096,
        headers={
            "Authorization": f"Bearer {_token(server)}",
            "X-Kloudless-Metadata": meta,
            **headers,
        },
        timeout=WAIT,
    )


def test_an_upload_over_http_is_authenticated_once(
    server: ServerThread, authentications: list[str]
) -> None:
    answer = _upload(server, "once.bin")
    assert answer.status_code == 201, answer.text
    assert authentications == [f"Bearer {_token(server)}"]  # by the preflight, not again


def test_a_stale_hand_over_authenticates_again(
    server: ServerThread, authentications: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "HANDOVER_SECONDS", -1.0)  # always stale
    answer = _upload(server, "twice.bin")
    assert answer.status_code == 201, answer.text
    assert len(authentications) == 2


def _send_headers_then_revoke(server: ServerThread, authentications: list[str]) -> bytes:
    """Send an upload's headers, revoke its token once the preflight has authenticated it,
    then send the body. :returns: the raw answer."""
    body = b"r" * 4096
    meta = json.dumps({"name": "revoked.bin", "parent_id": "root"})
    head = (
        f"POST {S}/files HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {_token(server)}\r\nX-Kloudless-Metadata: {meta}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(head.encode())
        deadline = time.monotonic() + WAIT
        while not authentications and time.monotonic() < deadline:
            time.sleep(0.01)
        assert authentications, "the preflight did not run"
        assert server.app.store.revoke_token(_token(server))
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_token_revoked_while_a_slow_body_arrives_is_refused(
    server: ServerThread, authentications: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "HANDOVER_SECONDS", -1.0)  # the body took "too long"
    answer = _send_headers_then_revoke(server, authentications)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error_code"] == "invalid_token"
    assert len(authentications) == 2


def test_within_the_hand_over_the_preflight_credentials_are_used(
    server: ServerThread, authentications: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "HANDOVER_SECONDS", WAIT * 6)
    answer = _send_headers_then_revoke(server, authentications)
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:200]
    assert len(authentications) == 1


def test_the_rate_limit_still_applies_after_a_hand_over(
    make_settings: Callable[..., Settings], authentications: list[str], still_rate_window: float
) -> None:
    settings = make_settings(port=0, rate_limit_per_minute=1, small_body_bytes=0)
    with ServerThread(settings) as server:
        assert _upload(server, "first.bin").status_code == 201
        limited = _upload(server, "second.bin")
    assert limited.status_code == 429, limited.text
    assert limited.json()["error_code"] == "too_many_requests"
    assert len(authentications) == 2  # one per request: both handed over


def test_preflight_refusals_are_unchanged(server: ServerThread) -> None:
    bad = requests.post(
        f"{server.base_url}{S}/files", data=b"x", headers={"Authorization": "Bearer nope"}
    )
    assert bad.status_code == 401 and bad.json()["error_code"] == "invalid_token"
    other = requests.post(
        f"{server.base_url}/v1/accounts/999/storage/files",
        data=b"x",
        headers={"Authorization": f"Bearer {_token(server)}"},
    )
    assert other.status_code == 404 and other.json()["error_code"] == "not_found"


def _ctx(app: ServerApp, environ: dict[str, Any]) -> RequestContext:
    return RequestContext(app, Request(environ), "request-id", app.auth_guard)


def test_a_hand_over_is_taken_for_its_own_request_only(
    app: ServerApp, auth: dict[str, str]
) -> None:
    environ = EnvironBuilder(
        method="POST", path=f"{S}/files", headers={"Host": "localhost", **auth}
    ).get_environ()
    assert app.preflight(environ) == (None, app.settings.max_upload_bytes)
    environ.pop(SLOT_HELD)()  # the upload slot the preflight took (the HTTP server's to free)
    handed = environ[PREFLIGHTED]
    # Another request (another path, other credentials) never takes it: it routes and
    # authenticates itself.
    for other in ({"PATH_INFO": f"{S}/folders"}, {"HTTP_AUTHORIZATION": "Bearer other"}):
        ctx = _ctx(app, {**environ, **other})
        assert ServerApp._handed_over(ctx) is None
        assert ctx.auth is None
    ctx = _ctx(app, environ)
    taken = ServerApp._handed_over(ctx)
    assert taken is not None and taken[0] is handed.route
    assert ctx.auth is not None and ctx.auth.account_id == handed.auth.account_id
    assert ctx.auth.account_rows  # the token's account row, read once by the preflight
    assert PREFLIGHTED not in environ  # taken once
    assert ServerApp._handed_over(_ctx(app, environ)) is None


def test_the_webhook_worker_is_woken_only_for_a_queued_notification(
    app: ServerApp, auth: dict[str, str], creds: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = BufferedClient(app)
    woken: list[tuple[int, int]] = []
    monkeypatch.setattr(
        app.webhooks, "wake", lambda account, cursor: woken.append((account, cursor))
    )
    meta = {"X-Kloudless-Metadata": json.dumps({"name": "a.bin", "parent_id": "root"})}
    assert client.post(f"{S}/files", data=b"a", headers={**auth, **meta}).status_code == 201
    assert woken == []  # no webhook: nothing queued, the worker is left alone
    app.webhooks.stop()  # nothing is delivered in this test
    hooks.configure_webhook(app.store, creds.app_id, "http://127.0.0.1:9/hook")
    meta = {"X-Kloudless-Metadata": json.dumps({"name": "b.bin", "parent_id": "root"})}
    assert client.post(f"{S}/files", data=b"b", headers={**auth, **meta}).status_code == 201
    assert [account for account, _ in woken] == [creds.account_id]
    assert app.store.one("SELECT account_id FROM webhook_queue") is not None


def test_a_refused_upload_over_http_is_json(server: ServerThread) -> None:
    answer = requests.post(
        f"{server.base_url}{S}/files",
        data=b"x",
        headers={"Authorization": f"Bearer {_token(server)}"},  # no X-Kloudless-Metadata
    )
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "invalid_parameters"
    assert answer.json()["id"] == answer.headers["X-Request-Id"]


def test_without_a_preflight_the_dispatch_authenticates(app: ServerApp) -> None:
    # The test client (like any other WSGI server) never calls the preflight.
    refused = BufferedClient(app).post(f"{S}/files", data=b"x", headers={"Authorization": "x"})
    assert_error(refused, 401, "unauthorized")
