"""kloudless.client: Session headers, Client auth and URLs, timeouts, error mapping."""

from __future__ import annotations

import json
import warnings

import pytest
import requests
import responses
from responses import matchers

import kloudless
from kloudless import Client, configuration, exceptions
from kloudless.client import Session, handle_response, is_json_content_type
from kloudless.version import VERSION

API = "http://localhost:8002/v1"


def test_client_requires_a_credential() -> None:
    with pytest.raises(exceptions.InvalidParameter) as info:
        Client()
    assert "An API Key or Bearer Token must be provided" in str(info.value)


def test_bearer_wins_over_api_key_and_both_attributes_exist(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/meta/applications", json={"x": 1})
    with Client(api_key="KEY", token="TOK") as client:
        assert client.token == "TOK"
        assert client.api_key == "KEY"
        client.get("meta/applications")
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer TOK"


def test_positional_order_is_api_key_then_token(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/accounts", json={"type": "object_list", "objects": []})
    with Client("KEY") as client:
        assert client.api_key == "KEY"
        assert client.token is None
        client.get("accounts")
    assert mocked.calls[0].request.headers["Authorization"] == "APIKey KEY"


def test_default_headers(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/accounts", json={})
    with Client(token="T") as client:
        assert client.url == API
        client.get("accounts")
    headers = mocked.calls[0].request.headers
    assert headers["User-Agent"] == f"kloudless-python/{VERSION}"
    assert headers["Accept"] == "*/*"
    assert "Idempotency-Key" not in headers
    assert kloudless.__version__ == VERSION


def test_kloudless_header_encodings(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", json={})
    with Client(token="T") as client:
        client.get("x", get_raw_data=True, raw_headers={"X-A": "b"}, impersonate_user_id=42)
    headers = mocked.calls[0].request.headers
    assert headers["X-Kloudless-Raw-Data"] == "true"
    assert json.loads(headers["X-Kloudless-Raw-Headers"]) == {"X-A": "b"}
    assert headers["X-Kloudless-Raw-Headers"] == '{"X-A": "b"}'
    assert headers["X-Kloudless-As-User"] == "42"


def test_kloudless_headers_ignored_values(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", json={})
    with Client(token="T") as client:
        client.get("x", get_raw_data="true", raw_headers={}, impersonate_user_id=0)
    headers = mocked.calls[0].request.headers
    assert "X-Kloudless-Raw-Data" not in headers
    assert "X-Kloudless-Raw-Headers" not in headers
    assert "X-Kloudless-As-User" not in headers


def test_raw_data_false_overrides_session_default(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", json={})
    mocked.add("GET", API + "/x", json={})
    with Client(token="T") as client:
        client.headers["X-Kloudless-Raw-Data"] = "true"
        client.get("x")
        client.get("x", get_raw_data=False)
    assert mocked.calls[0].request.headers["X-Kloudless-Raw-Data"] == "true"
    assert mocked.calls[1].request.headers["X-Kloudless-Raw-Data"] == "false"


def test_caller_headers_not_changed_and_none_allowed(mocked: responses.RequestsMock) -> None:
    mocked.add("POST", API + "/x", json={})
    mocked.add("GET", API + "/x", json={})
    headers = {"X-Mine": "1"}
    with Client(token="T") as client:
        client.post("x", headers=headers, get_raw_data=True)
        client.get("x", headers=None, get_raw_data=True)
    assert headers == {"X-Mine": "1"}
    assert mocked.calls[0].request.headers["X-Mine"] == "1"


@pytest.mark.parametrize(
    ("version", "expected"),
    [(2, API.replace("v1", "v2") + "/x"), ("10", API.replace("v1", "v10") + "/x")],
)
def test_api_version_per_call(
    mocked: responses.RequestsMock, version: object, expected: str
) -> None:
    mocked.add("GET", expected, json={})
    with Client(token="T") as client:
        client.get("x", api_version=version)
    assert mocked.calls[0].request.url == expected


def test_api_version_replaces_multi_digit_segment(mocked: responses.RequestsMock) -> None:
    configuration["api_version"] = "10"
    mocked.add("GET", "http://localhost:8002/v3/x", json={})
    with Client(token="T") as client:
        assert client.url == "http://localhost:8002/v10"
        client.get("x", api_version=3)


def test_configuration_snapshot_at_creation() -> None:
    configuration["base_url"] = "http://localhost:9999"
    configuration["api_version"] = "2"
    client = Client(token="T")
    configuration["base_url"] = "http://127.0.0.1:1"
    assert client.url == "http://localhost:9999/v2"
    client.close()


def test_missing_configuration_keys_fall_back_to_defaults() -> None:
    del configuration["api_version"]
    with Client(token="T") as client:
        assert client.url == "http://localhost:8002/v1"


def test_per_client_base_url_and_version() -> None:
    with Client(token="T", base_url="https://api.example.com/", api_version=2) as client:
        assert client.url == "https://api.example.com/v2"


def test_unknown_client_setting_refused() -> None:
    with pytest.raises(exceptions.InvalidParameter, match="nonsense"):
        Client(token="T", nonsense=1)


@pytest.mark.parametrize("bad", ["ftp://x.example", "not a url", "http://host:99999"])
def test_invalid_base_url_refused(bad: str) -> None:
    with pytest.raises(exceptions.InvalidParameter):
        Client(token="T", base_url=bad)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"backoff_factor": "x"}, "backoff_factor"),
        ({"retry_after_max": True}, "retry_after_max"),
    ],
)
def test_invalid_retry_settings_refused(kwargs: dict, expected: str) -> None:
    with pytest.raises(exceptions.InvalidParameter, match=expected):
        Client(token="T", **kwargs)


def test_plain_http_to_remote_host_warns() -> None:
    with pytest.warns(exceptions.InsecureBaseURLWarning, match="plain http"):
        Client(token="T", base_url="http://api.example.com").close()


@pytest.mark.parametrize(
    "base", ["http://localhost:8002", "http://127.0.0.1:1", "http://[::1]:8", "https://x.example"]
)
def test_no_warning_for_loopback_or_https(base: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Client(token="T", base_url=base).close()


def test_absolute_url_on_api_host_is_used(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", "http://localhost:8002/v2/other", json={})
    with Client(token="T") as client:
        client.get("http://localhost:8002/v2/other")
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer T"


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/x",
        "http://localhost:9999/v1/x",
        "https://localhost:8002/v1/x",
        "HTTP://EVIL.example/x",
    ],
)
def test_absolute_url_on_other_origin_refused_before_sending(
    mocked: responses.RequestsMock, url: str
) -> None:
    with Client(token="T") as client, pytest.raises(exceptions.InvalidParameter, match="outside"):
        client.get(url)
    assert len(mocked.calls) == 0


def test_auth_refuses_other_origin_even_through_session_request(
    mocked: responses.RequestsMock,
) -> None:
    with Client(token="T") as client, pytest.raises(exceptions.InvalidParameter):
        Session.request(client, "GET", "https://evil.example/x")
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("path", ["../x", "a/../../b", "./x", "x/.."])
def test_dot_segments_refused(mocked: responses.RequestsMock, path: str) -> None:
    with Client(token="T") as client, pytest.raises(exceptions.InvalidParameter, match=r"\.\."):
        client.get(path)


def test_protocol_relative_path_stays_on_api_host(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/evil.com/x", json={})
    with Client(token="T") as client:
        client.get("//evil.com/x")


def test_colon_in_first_segment_is_a_path(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/abc:def", json={})
    with Client(token="T") as client:
        client.get("abc:def")


def test_cross_host_redirect_strips_authorization(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/r", status=302, headers={"Location": "https://other.example/landing"})
    mocked.add("GET", "https://other.example/landing", body="ok", content_type="text/plain")
    with Client(token="SECRETTOKEN") as client:
        result = client.get("r")
    assert result.text == "ok"
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer SECRETTOKEN"
    assert "Authorization" not in mocked.calls[1].request.headers


def test_same_host_redirect_keeps_authorization(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/r", status=301, headers={"Location": API + "/s"})
    mocked.add("GET", API + "/s", json={"ok": True})
    with Client(token="T") as client:
        assert client.get("r").data == {"ok": True}
    assert mocked.calls[1].request.headers["Authorization"] == "Bearer T"


def test_http_methods_and_bodies(mocked: responses.RequestsMock) -> None:
    mocked.add(
        "POST",
        API + "/f",
        json={},
        match=[matchers.urlencoded_params_matcher({"a": "1"})],
    )
    mocked.add("POST", API + "/j", json={}, match=[matchers.json_params_matcher({"a": 1})])
    mocked.add("PUT", API + "/p", json={}, match=[matchers.body_matcher("raw-bytes")])
    mocked.add("PATCH", API + "/p", json={}, match=[matchers.json_params_matcher({"n": 2})])
    mocked.add("DELETE", API + "/p", status=204)
    mocked.add("HEAD", API + "/p", status=200)
    mocked.add("OPTIONS", API + "/p", status=200)
    with Client(token="T") as client:
        client.post("f", data={"a": "1"})
        client.post("j", json={"a": 1})
        client.put("p", data=b"raw-bytes")
        client.patch("p", json={"n": 2})
        deleted = client.delete("p")
        head = client.head("p")
        opts = client.options("p")
    assert mocked.calls[0].request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert type(deleted) is kloudless.resources.Response
    assert deleted.status_code == 204
    assert type(head) is kloudless.resources.Response
    assert type(opts) is kloudless.resources.Response


def test_file_object_body_is_streamed(mocked: responses.RequestsMock, tmp_path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"content")
    mocked.add("POST", API + "/up", json={"id": "1"})
    with Client(token="T") as client, open(path, "rb") as handle:
        client.post("up", data=handle)
    assert mocked.calls[0].request.body == b"content"


def test_get_raw_response(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", json={"id": 1})
    with Client(token="T") as client:
        raw = client.get("x", get_raw_response=True)
    assert isinstance(raw, requests.Response)
    assert raw.json() == {"id": 1}


def test_context_manager_and_repr() -> None:
    with Client(token="SECRET-TOKEN") as client:
        assert repr(client) == f"<Client {API}>"
        assert repr(client.auth) == "<BearerTokenAuth Bearer [REDACTED]>"


# --- timeouts -------------------------------------------------------------------------------


def _timeout_of(mocked: responses.RequestsMock) -> object:
    return mocked.calls[-1].request.req_kwargs["timeout"]


def test_default_timeout_applied(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", json={})
    with Client(token="T") as client:
        assert client.timeout == (10, 60)
        client.get("x")
    assert _timeout_of(mocked) == (10, 60)


def test_timeout_from_configuration_client_and_call(mocked: responses.RequestsMock) -> None:
    for _ in range(4):
        mocked.add("GET", API + "/x", json={})
    configuration["timeout"] = 5
    with Client(token="T") as client:
        client.get("x")
        assert _timeout_of(mocked) == 5
        client.get("x", timeout=(1, 2))
        assert _timeout_of(mocked) == (1, 2)
        client.get("x", timeout=None)
        assert _timeout_of(mocked) is None
    with Client(token="T", timeout=7) as client:
        client.get("x")
        assert _timeout_of(mocked) == 7


def test_timeout_opt_out_per_client_and_globally(loose: responses.RequestsMock) -> None:
    loose.add("GET", API + "/x", json={})
    with Client(token="T", timeout=None) as client:
        client.get("x")
        assert _timeout_of(loose) is None
    configuration["timeout"] = None
    with Client(token="T") as client:
        client.get("x")
        assert _timeout_of(loose) is None


# --- responses -> wrappers and exceptions ----------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/vnd.api+json", True),
        ("Application/JSON", True),
        ("text/plain", False),
        ("application/jsonx", False),
        (None, False),
    ],
)
def test_is_json_content_type(content_type: object, expected: bool) -> None:
    assert is_json_content_type(content_type) is expected  # type: ignore[arg-type]


def test_vnd_api_json_is_parsed(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", body='{"a": 1}', content_type="application/vnd.api+json")
    with Client(token="T") as client:
        assert client.get("x").data == {"a": 1}


def test_invalid_json_raises_kloudless_exception(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", body="{not json", content_type="application/json")
    with Client(token="T") as client, pytest.raises(exceptions.JSONDecodeException) as info:
        client.get("x")
    assert isinstance(info.value, exceptions.KloudlessException)
    assert isinstance(info.value, ValueError)
    assert info.value.status == 200
    assert info.value.message == str(info.value)


def test_non_dict_json_is_response_json(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", json=[1, 2])
    with Client(token="T") as client:
        result = client.get("x")
    assert type(result) is kloudless.resources.ResponseJson
    assert result.data == [1, 2]


def test_empty_json_body_is_plain_response(mocked: responses.RequestsMock) -> None:
    mocked.add("POST", API + "/x", body="", content_type="application/json", status=201)
    with Client(token="T") as client:
        result = client.post("x")
    assert type(result) is kloudless.resources.Response


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, exceptions.APIException),
        (401, exceptions.AuthorizationException),
        (403, exceptions.ForbiddenException),
        (404, exceptions.NotFoundException),
        (405, exceptions.APIException),
        (409, exceptions.APIException),
        (422, exceptions.APIException),
        (429, exceptions.RateLimitException),
        (500, exceptions.ServerException),
        (501, exceptions.ServerException),
        (503, exceptions.ServerException),
    ],
)
def test_error_mapping(mocked: responses.RequestsMock, status: int, cls: type) -> None:
    mocked.add(
        "GET",
        API + "/x",
        status=status,
        json={"status_code": status, "error_code": "some_code", "message": "m", "id": "RID"},
    )
    with Client(token="T", max_retries=0) as client, pytest.raises(cls) as info:
        client.get("x")
    error = info.value
    assert type(error) is cls
    assert error.status == status
    assert error.error_code == "some_code"
    assert error.request_id == "RID"
    assert error.error_data["message"] == "m"
    assert error.response is not None and error.response.status_code == status
    assert error.message == str(error)
    assert str(error).startswith(cls.default_message + " Error data: ")
    assert str(error).count(cls.default_message) == 1
    assert str(error).endswith("[Request ID: RID]")


def test_redirect_not_followed_counts_as_success(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/r", status=302, headers={"Location": API + "/s"})
    with Client(token="T") as client:
        result = client.get("r", allow_redirects=False)
    assert result.status_code == 302


def test_handle_response_returns_ok_response() -> None:
    response = requests.Response()
    response.status_code = 200
    response.url = API
    assert handle_response(response) is response


def test_session_alone_sets_user_agent_and_no_auth(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", "http://localhost:8002/anything", json={})
    with Session() as session:
        session.request("GET", "http://localhost:8002/anything")
    assert mocked.calls[0].request.headers["User-Agent"].startswith("kloudless-python/")
    assert "Authorization" not in mocked.calls[0].request.headers


def test_network_error_is_wrapped(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", body=requests.ConnectionError("refused"))
    with Client(token="T") as client, pytest.raises(exceptions.ConnectionException) as info:
        client.get("x")
    assert isinstance(info.value, requests.ConnectionError)
    assert isinstance(info.value, requests.RequestException)
    assert isinstance(info.value.__cause__, requests.ConnectionError)


def test_timeout_error_is_wrapped(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", body=requests.ReadTimeout("slow"))
    with Client(token="T") as client, pytest.raises(exceptions.TimeoutException) as info:
        client.get("x")
    assert isinstance(info.value, requests.Timeout)
    assert not isinstance(info.value, requests.ConnectionError)


def test_connect_timeout_is_both(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", body=requests.ConnectTimeout("slow"))
    with Client(token="T") as client, pytest.raises(exceptions.ConnectTimeoutException) as info:
        client.get("x")
    assert isinstance(info.value, requests.ConnectTimeout)
    assert isinstance(info.value, exceptions.ConnectionException)
    assert isinstance(info.value, exceptions.TimeoutException)


def test_other_request_errors_pass_through(mocked: responses.RequestsMock) -> None:
    mocked.add("GET", API + "/x", body=requests.TooManyRedirects("loop"))
    with Client(token="T") as client, pytest.raises(requests.TooManyRedirects):
        client.get("x")


def test_negative_max_retries_per_call_refused(mocked: responses.RequestsMock) -> None:
    with Client(token="T") as client, pytest.raises(exceptions.InvalidParameter):
        client.get("x", max_retries=-1)


def test_connection_error_names_the_target_without_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setitem(configuration, "max_retries", 0)
    with Client(token="SECRET-TOK", base_url=f"http://127.0.0.1:{port}") as client:
        with pytest.raises(exceptions.ConnectionException) as info:
            client.get("storage/files/x", params={"access_token": "QSECRET"})
    message = str(info.value)
    assert message == (
        f"Could not connect to the Kloudless API at http://127.0.0.1:{port} (NewConnectionError)"
    )
