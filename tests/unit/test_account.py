"""kloudless.account: Account construction, raw pass-through, get_verified_account."""

from __future__ import annotations

import pytest
import requests
import responses
from responses import matchers

from kloudless import Account, exceptions, get_verified_account
from kloudless.account import SAFE_RAW_METHODS

API = "http://localhost:8002/v1"
ACC = API + "/accounts/me"


def test_account_defaults_to_me(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", ACC, json={"id": 1})
    with Account(token="T") as account:
        assert account.url == ACC
        assert account.account_id == "me"
        assert account.token == "T" and account.api_key is None
        account.get()
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer T"


def test_account_positional_order_token_first() -> None:
    with Account("TOK", "KEY", 5) as account:
        assert account.token == "TOK"
        assert account.api_key == "KEY"
        assert account.account_id == 5
        assert account.url == API + "/accounts/5"
        assert account.auth.auth_header == "Bearer TOK"


def test_api_key_requires_account_id() -> None:
    with pytest.raises(exceptions.InvalidParameter, match="account_id must be provided"):
        Account(api_key="K")
    with pytest.raises(exceptions.InvalidParameter, match="account_id must be provided"):
        Account(token="T", api_key="K")
    with pytest.raises(exceptions.InvalidParameter, match="API Key or Bearer Token"):
        Account()


def test_api_key_account(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/accounts/abc%2F1/storage/folders/root", json={"id": "root"})
    with Account(api_key="K", account_id="abc/1") as account:
        account.get("storage/folders/root")
    assert mocked.calls[0].request.headers["Authorization"] == "APIKey K"


def test_falsy_account_id_is_me() -> None:
    with Account(token="T", account_id=0) as account:
        assert account.url == ACC


def test_raw_pass_through(mocked: responses.RequestsMock) -> None:
    mocked.add(
        "POST",
        ACC + "/raw?q=1",
        json={"upstream": True},
        match=[
            matchers.header_matcher(
                {"X-Kloudless-Raw-Method": "GET", "X-Kloudless-Raw-URI": "/drive/v2/about"}
            )
        ],
    )
    headers = {"X-Mine": "1"}
    with Account(token="T") as account:
        response = account.raw("GET", "/drive/v2/about", params={"q": 1}, headers=headers)
    assert isinstance(response, requests.Response)
    assert response.json() == {"upstream": True}
    assert headers == {"X-Mine": "1"}
    assert mocked.calls[0].request.headers["X-Mine"] == "1"
    assert "Idempotency-Key" in mocked.calls[0].request.headers


def test_raw_errors_raise(mocked: responses.RequestsMock) -> None:
    mocked.add("POST", ACC + "/raw", status=404, json={"message": "no"})
    with Account(token="T") as account, pytest.raises(exceptions.NotFoundException):
        account.raw("GET", "/x")


def test_safe_raw_methods() -> None:
    assert {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"} == SAFE_RAW_METHODS


def test_get_verified_account(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/oauth/token", json={"client_id": "APP", "account_id": 9})
    account = get_verified_account("APP", "TOK")
    try:
        assert isinstance(account, Account)
        assert account.url == ACC
        assert account.token == "TOK"
    finally:
        account.close()


def test_get_verified_account_fails_for_other_app(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/oauth/token", json={"client_id": "OTHER"})
    with pytest.raises(exceptions.TokenVerificationFailed):
        get_verified_account("APP", "TOK")
