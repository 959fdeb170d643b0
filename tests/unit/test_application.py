"""kloudless.application: OAuth helpers."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from responses import matchers

from kloudless import configuration, exceptions
from kloudless.application import (
    OAUTH_API_VERSION,
    get_authorization_url,
    get_token_from_code,
    verify_token,
)

API = "http://localhost:8002/v1"


def test_verify_token_uses_v1_and_bearer(mocked: responses.RequestsMock) -> None:
    configuration["api_version"] = "2"
    mocked.add("GET", API + "/oauth/token", json={"client_id": "APP", "account_id": 3})
    info = verify_token("APP", "TOK")
    assert info == {"client_id": "APP", "account_id": 3}
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer TOK"
    assert OAUTH_API_VERSION == 1


def test_verify_token_other_app(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/oauth/token", json={"client_id": "OTHER"})
    with pytest.raises(exceptions.TokenVerificationFailed) as info:
        verify_token("APP", "TOK")
    assert "OTHER" in str(info.value) and "APP" in str(info.value)
    assert "TOK" not in str(info.value)


def test_verify_token_missing_client_id(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/oauth/token", json={"account_id": 1})
    with pytest.raises(exceptions.TokenVerificationFailed):
        verify_token("APP", "TOK")


def test_verify_token_non_object(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/oauth/token", json=["x"])
    with pytest.raises(exceptions.APIException, match="Unexpected token information"):
        verify_token("APP", "TOK")


def test_verify_token_invalid_json(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/oauth/token", body="<html>", content_type="application/json")
    with pytest.raises(exceptions.JSONDecodeException):
        verify_token("APP", "TOK")


def test_verify_token_api_error(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/oauth/token", status=400, json={"message": "Invalid token"})
    with pytest.raises(exceptions.APIException) as info:
        verify_token("APP", "TOK")
    assert info.value.status == 400


def test_authorization_url_exact() -> None:
    url, state = get_authorization_url("APPID", "http://localhost:8020/callback", state="S1")
    assert state == "S1"
    assert url == (
        "http://localhost:8002/v1/oauth?client_id=APPID&response_type=code"
        "&redirect_uri=http%3A%2F%2Flocalhost%3A8020%2Fcallback&scope=all&state=S1&extra_data="
    )


def test_authorization_url_random_state_extras_and_overrides() -> None:
    configuration["api_version"] = "2"
    configuration["base_url"] = "https://api.example.com"
    url, state = get_authorization_url(
        "APP",
        "https://x.example/cb",
        scope="storage calendar",
        extra_data={"domain": "d"},
        foo="bar",
        client_id="ignored",
    )
    assert len(state) == 16
    assert url.startswith("https://api.example.com/v1/oauth?foo=bar&client_id=APP&")
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["storage calendar"]
    assert "scope=storage+calendar" in url
    assert json.loads(query["extra_data"][0]) == {"domain": "d"}
    assert query["state"] == [state]
    _, other = get_authorization_url("APP", "https://x.example/cb")
    assert other != state


def test_token_from_code(mocked: responses.RequestsMock) -> None:
    configuration["api_version"] = "2"
    mocked.add(
        "POST",
        API + "/oauth/token",
        json={"access_token": "NEWTOKEN", "token_type": "Bearer"},
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "authorization_code",
                    "code": "CODE",
                    "redirect_uri": "http://cb",
                    "client_id": "APP",
                    "client_secret": "KEY",
                }
            )
        ],
    )
    token = get_token_from_code("APP", "KEY", "S", "http://cb", code="CODE", state="S")
    assert token == "NEWTOKEN"
    request = mocked.calls[0].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Authorization"] == "APIKey KEY"


def test_token_from_code_error_with_and_without_description() -> None:
    with pytest.raises(exceptions.OauthFlowFailed) as info:
        get_token_from_code("A", "K", "S", "u", error="access_denied", error_description="no")
    assert str(info.value) == "access_denied: no"
    assert info.value.error_data == {"error": "access_denied", "error_description": "no"}
    with pytest.raises(exceptions.OauthFlowFailed) as info:
        get_token_from_code("A", "K", "S", "u", error="access_denied")
    assert str(info.value) == "access_denied"


@pytest.mark.parametrize(
    ("orig", "got"), [("S", "X"), ("S", None), (None, "S"), (None, None), ("", ""), ("S", "")]
)
def test_token_from_code_state_checks(orig: object, got: object) -> None:
    params = {"code": "C"}
    if got is not None:
        params["state"] = got  # type: ignore[assignment]
    with pytest.raises(exceptions.OauthFlowFailed, match="state values do not match") as info:
        get_token_from_code("A", "K", orig, "u", **params)  # type: ignore[arg-type]
    if orig:
        assert orig not in str(info.value).replace("state", "")


def test_token_from_code_requires_code() -> None:
    with pytest.raises(exceptions.OauthFlowFailed, match="authorization code is required"):
        get_token_from_code("A", "K", "S", "u", state="S")


def test_token_from_code_without_access_token(mocked: responses.RequestsMock) -> None:
    mocked.add("POST", API + "/oauth/token", json={"nothing": 1})
    with pytest.raises(exceptions.OauthFlowFailed, match="access_token"):
        get_token_from_code("A", "K", "S", "u", state="S", code="C")


def test_token_from_code_api_error(mocked: responses.RequestsMock) -> None:
    mocked.add("POST", API + "/oauth/token", status=400, json={"error_code": "invalid_grant"})
    with pytest.raises(exceptions.APIException) as info:
        get_token_from_code("A", "K", "S", "u", state="S", code="C")
    assert info.value.error_code == "invalid_grant"
