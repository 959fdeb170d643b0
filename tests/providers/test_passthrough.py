"""Pass-through (``account.raw()``) to a stand-in provider API, and the token's life: refresh
before expiry, on a 401, once, and revocation."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from kloudless import Account, exceptions

from .conftest import STANDIN_LOGGERS, Live, connect


@pytest.fixture
def connected(live: Live) -> Iterator[tuple[Live, Account, int]]:
    live.configure("dropbox")
    account_id, token = connect(live, "dropbox")
    live.provider.requests.clear()
    with Account(token=token, base_url=live.base_url) as account:
        yield live, account, account_id


def _upstream(live: Live, path_prefix: str) -> list[Any]:
    return [r for r in live.provider.requests if r.path.startswith(path_prefix)]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_with_the_server_token_and_not_the_clients(
    connected: tuple[Live, Account, int], method: str
) -> None:
    live, account, _ = connected
    body = b"" if method in ("GET", "DELETE", "OPTIONS") else b'{"path": "/a"}'
    answer = account.raw(
        method,
        "/echo/files/list_folder?limit=5",
        data=body or None,
        headers={"Content-Type": "application/json", "X-Custom": "kept", "Cookie": "k=v"},
        params={"extra": "1"},
    )
    assert answer.status_code == 200
    echo = answer.json()
    assert echo["method"] == method and echo["path"] == "/echo/files/list_folder"
    assert echo["query"] == "limit=5&extra=1"
    assert echo["length"] == len(body)
    sent = _upstream(live, "/echo")[-1]
    assert sent.body == body
    headers = {k.lower(): v for k, v in sent.headers.items()}
    stored = live.provider.state.grant.access
    assert headers["authorization"].startswith("Bearer ")
    assert headers["authorization"][len("Bearer ") :] in stored  # the provider's token...
    assert account.api_key is None and account.token not in json.dumps(headers)  # ...not ours
    assert headers["x-custom"] == "kept"
    assert "cookie" not in headers and "idempotency-key" not in headers
    assert not any(k.startswith("x-kloudless") for k in headers)


def test_bodies_stream_both_ways_as_they_are(connected: tuple[Live, Account, int]) -> None:
    live, account, _ = connected
    payload = os.urandom(3 * 1024 * 1024 + 17)  # above waitress's in-memory buffer
    answer = account.raw(
        "POST",
        f"{live.provider.content_base}/echo/raw/2/files/upload",
        data=payload,
        headers={"Content-Type": "application/octet-stream"},
        stream=True,
    )
    assert answer.status_code == 200
    assert answer.raw.read() == payload
    assert answer.headers["X-Upstream"] == "yes"
    assert "Connection" not in answer.headers or answer.headers["Connection"] != "close"
    assert answer.headers["Set-Cookie"] == "a=1"  # an end-to-end header, relayed
    # Chunked request body (unknown length) too.
    answer = account.raw("PUT", "/echo/raw/x", data=iter([b"ab", b"cd"]))
    assert answer.content == b"abcd"


def test_upstream_status_and_body_come_back_as_they_are(
    connected: tuple[Live, Account, int],
) -> None:
    _, account, _ = connected
    with pytest.raises(exceptions.APIException) as caught:
        account.raw("GET", "/echo/raw/missing?status=409", retry=False)
    assert caught.value.response is not None and caught.value.response.status_code == 409
    with pytest.raises(exceptions.NotFoundException) as missing:
        account.raw("GET", "/nothing/here", retry=False)
    assert missing.value.response is not None
    assert missing.value.response.json() == {"error": "not_found"}  # the provider's own body


def test_raw_headers_are_honoured_but_may_not_set_authorization(
    connected: tuple[Live, Account, int],
) -> None:
    _, account, _ = connected
    echo = account.raw(
        "POST",
        "/echo/x",
        raw_headers={"Dropbox-API-Arg": '{"path": "/b"}', "X-Custom": "raw-wins"},
        headers={"X-Custom": "plain"},
    ).json()
    assert echo["headers"]["Dropbox-Api-Arg"] == '{"path": "/b"}'
    assert echo["headers"]["X-Custom"] == "raw-wins"
    with pytest.raises(exceptions.APIException) as caught:
        account.raw("GET", "/echo/x", raw_headers={"Authorization": "Bearer mine"})
    assert caught.value.status == 400 and "Authorization" in str(caught.value)


@pytest.mark.parametrize(
    "uri, status",
    [
        ("https://evil.example/steal", 403),
        ("http://127.0.0.1:9/other-port", 403),
        ("//evil.example/x", 403),
        ("https://user:pw@api.dropboxapi.com/x", 400),
        ("/echo#frag", 400),
        ("/echo with space", 400),
    ],
)
def test_only_the_providers_hosts(
    connected: tuple[Live, Account, int], uri: str, status: int
) -> None:
    live, account, _ = connected
    before = len(live.provider.requests)
    with pytest.raises(exceptions.APIException) as caught:
        account.raw("GET", uri, retry=False)
    assert caught.value.status == status
    assert caught.value.error_data["error_code"] in ("forbidden", "invalid_parameters")
    assert len(live.provider.requests) == before


def test_refresh_before_expiry_shared_with_the_storage_side(
    connected: tuple[Live, Account, int],
) -> None:
    live, account, account_id = connected
    store = live.server.app.store
    from kloudless.server.connectors.provider import TokenKeeper

    # The provider now issues tokens that expire within the refresh margin.
    state = live.provider.state
    old = _stored_token(live, account_id)
    _make_expiring(live, account_id)
    account.raw("GET", "/echo/a")
    assert state.issued.count("refresh_token") == 1
    new = _stored_token(live, account_id)
    assert new.access_token != old.access_token
    sent = _upstream(live, "/echo")[-1].headers["Authorization"]
    assert sent == f"Bearer {new.access_token}"
    row = store.get_account(account_id)
    assert row is not None and row["token_expiry"] and row["active"]
    # Again, used as stored: no second refresh while it is fresh.
    account.raw("GET", "/echo/b")
    assert state.issued.count("refresh_token") == 1
    # The storage side gets the same current token (what rclone is handed).
    env = live.server.app.account_env(row)
    assert TokenKeeper(env).access_token() == new.access_token


def test_a_401_refreshes_once_and_repeats_the_request(
    connected: tuple[Live, Account, int],
) -> None:
    live, account, account_id = connected
    state = live.provider.state
    state.expire_access_tokens()  # the provider stops accepting the token before its expiry
    payload = b"x" * 1000
    answer = account.raw("PUT", "/echo/put", data=payload)
    assert answer.status_code == 200 and answer.json()["length"] == len(payload)
    assert state.issued.count("refresh_token") == 1
    calls = _upstream(live, "/echo/put")
    assert len(calls) == 2 and calls[1].body == payload  # repeated with the body
    # A provider that keeps answering 401: one refresh per request, the 401 relayed.
    state.accept_tokens = False  # even fresh tokens are refused
    with pytest.raises(exceptions.APIException) as caught:
        account.raw("GET", "/echo/again", retry=False)
    assert caught.value.status == 401
    assert state.issued.count("refresh_token") <= 3
    assert len(_upstream(live, "/echo/again")) == 2


def test_a_revoked_grant_is_a_401_with_a_reconnect_hint(
    connected: tuple[Live, Account, int], caplog: pytest.LogCaptureFixture
) -> None:
    live, account, account_id = connected
    caplog.set_level(logging.DEBUG)
    live.provider.state.revoke()
    _make_expiring(live, account_id)
    with pytest.raises(exceptions.APIException) as caught:
        account.raw("GET", "/echo/a", retry=False)
    assert caught.value.status == 401
    assert caught.value.error_data["error_code"] == "invalid_token"
    assert "Connect it again through the consent page" in caught.value.error_data["message"]
    row = live.server.app.store.get_account(account_id)
    assert row is not None and not row["active"]
    info = requests.get(
        f"{live.base_url}/v1/accounts/{account_id}",
        headers={"Authorization": f"APIKey {live.creds.api_key}"},
        timeout=30,
    ).json()
    assert info["active"] is False and info["token_expiry"]
    # Later requests are answered without calling the provider again.
    before = len(live.provider.state.token_requests)
    with pytest.raises(exceptions.APIException):
        account.raw("GET", "/echo/b", retry=False)
    assert len(live.provider.state.token_requests) == before
    # Connecting the same provider account again makes it active again.
    live.provider.state.decision = "approve"
    again, _ = connect(live, "dropbox")
    assert again == account_id
    row = live.server.app.store.get_account(account_id)
    assert row is not None and row["active"]
    # No token, code or secret in the log.
    leaks = [
        (r.name, s)
        for r in caplog.records
        for s in live.provider.secrets_seen()
        if s in r.getMessage()
        # the stand-in authorization server's own oauthlib logging is the provider's, not ours
        and not r.name.startswith(STANDIN_LOGGERS)
    ]
    assert leaks == []


def test_no_secret_in_errors_or_answers(connected: tuple[Live, Account, int]) -> None:
    live, account, _ = connected
    for uri in ("https://evil.example/", "/echo#x"):
        with pytest.raises(exceptions.APIException) as caught:
            account.raw("GET", uri, retry=False)
        body = json.dumps(caught.value.error_data)
        assert all(s not in body for s in live.provider.secrets_seen())
    answer = account.raw("GET", "/echo/h")
    assert all(s not in json.dumps(dict(answer.headers)) for s in live.provider.secrets_seen())


def _stored_token(live: Live, account_id: int) -> Any:
    from kloudless.server.connectors import provider_tokens
    from kloudless.server.connectors.rclone_remotes import load_spec

    row = live.server.app.store.get_account(account_id)
    assert row is not None
    spec = load_spec(json.loads(row["config"]), live.server.app.store.server_secret())
    return provider_tokens.from_rclone(spec.sections[spec.main]["token"])


def _make_expiring(live: Live, account_id: int) -> None:
    """Rewrite the stored token's expiry to one minute from now (inside the refresh margin)."""
    import datetime

    from kloudless.server.connectors.provider import save_token
    from kloudless.server.connectors.rclone_remotes import load_spec

    store = live.server.app.store
    row = store.get_account(account_id)
    assert row is not None
    config = json.loads(row["config"])
    spec = load_spec(config, store.server_secret())
    token = _stored_token(live, account_id)
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=60)
    save_token(
        store,
        account_id,
        config,
        spec,
        {
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "expires_at": soon.timestamp(),
        },
    )
