"""kloudless.exceptions: messages, attributes, Retry-After parsing."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests

from kloudless import exceptions
from kloudless.exceptions import parse_retry_after


def make_response(
    status: int, body: str = "", headers: dict | None = None, content_type: str = "application/json"
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers.update({"Content-Type": content_type, **(headers or {})})
    response.url = "http://localhost:8002/v1/x"
    return response


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (exceptions.InvalidParameter, "The parameter is not valid."),
        (exceptions.TokenVerificationFailed, "The token does not belong to your application."),
        (exceptions.OauthFlowFailed, "Oauth authorization flow failed."),
        (exceptions.NoNextPage, "There's no next page."),
    ],
)
def test_default_messages(cls: type, message: str) -> None:
    error = cls()
    assert str(error) == message
    assert error.message == message
    assert error.args == (message,)
    for attribute in ("status", "error_code", "request_id", "response"):
        assert getattr(error, attribute) is None
    assert error.error_data == {}


def test_base_exception_has_default_and_custom_message() -> None:
    assert str(exceptions.KloudlessException()) == exceptions.KloudlessException.default_message
    assert exceptions.KloudlessException("hi").message == "hi"


def test_no_next_page_first_argument_is_cursor() -> None:
    error = exceptions.NoNextPage("abc")
    assert error.cursor == "abc"
    assert str(error) == "There's no next page."
    assert exceptions.NoNextPage(cursor=None, message="custom").message == "custom"


def test_api_exception_defaults_for_status_messages() -> None:
    assert exceptions.APIException.default_message == "Request failed."
    assert exceptions.AuthorizationException.default_message.startswith("Authorization failed.")
    assert exceptions.ForbiddenException.default_message == (
        "Request forbidden. The action is not allowed."
    )
    assert exceptions.NotFoundException.default_message == (
        "Not found. Please make sure the url is correct."
    )
    assert exceptions.RateLimitException.default_message == (
        "Rate limiting encountered. Please try again later."
    )
    assert exceptions.ServerException.default_message.startswith("An unknown error occurred!")


def test_api_exception_message_without_request_id() -> None:
    error = exceptions.APIException(make_response(400, "plain", content_type="text/plain"))
    assert str(error) == "Request failed. Error data: plain"
    assert error.error_data == {}
    assert error.request_id is None and error.error_code is None


def test_api_exception_request_id_from_header_and_custom_message() -> None:
    error = exceptions.APIException(
        make_response(400, "[1, 2]", headers={"X-Request-Id": "HID"}), "Custom."
    )
    assert error.request_id == "HID"
    assert error.error_data == {}
    assert str(error) == "Custom. Error data: [1, 2] [Request ID: HID]"


def test_api_exception_empty_body_and_long_body() -> None:
    assert str(exceptions.ServerException(make_response(502))) == (
        exceptions.ServerException.default_message
    )
    error = exceptions.APIException(make_response(400, "x" * 5000, content_type="text/html"))
    assert len(error.message) < 1100
    assert error.message.endswith("...")


def test_error_code_is_text() -> None:
    error = exceptions.APIException(make_response(400, '{"error_code": 17, "id": 5}'))
    assert error.error_code == "17"
    assert error.request_id == "5"


def test_exceptions_can_be_caught_as_parents() -> None:
    error = exceptions.from_response(make_response(404, "{}"))
    assert isinstance(error, exceptions.NotFoundException)
    assert isinstance(error, exceptions.APIException)
    assert isinstance(error, exceptions.KloudlessException)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2.5", 2.5), ("0", 0.0), ("-3", 0.0), (" 7 ", 7.0), ("soon", None), (None, None)],
)
def test_parse_retry_after_seconds(value: object, expected: object) -> None:
    assert parse_retry_after(value) == expected  # type: ignore[arg-type]


def test_parse_retry_after_http_date() -> None:
    future = email.utils.formatdate(time.time() + 100, usegmt=True)
    seconds = parse_retry_after(future)
    assert seconds is not None and 90 <= seconds <= 101
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert parse_retry_after(past) == 0.0
    assert parse_retry_after("nan") is None
    assert parse_retry_after("inf") is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [({"Retry-After": "2.5"}, 2.5), ({}, None), ({"Retry-After": "x"}, None)],
)
def test_rate_limit_retry_after(header: dict, expected: object) -> None:
    error = exceptions.RateLimitException(make_response(429, "{}", headers=header))
    assert error.retry_after == expected


def test_rate_limit_retry_after_http_date() -> None:
    header = {"Retry-After": email.utils.formatdate(time.time() + 30, usegmt=True)}
    error = exceptions.RateLimitException(make_response(429, "{}", headers=header))
    assert error.retry_after is not None and 20 <= error.retry_after <= 31


def test_network_exceptions_are_requests_exceptions() -> None:
    request = requests.Request("GET", "http://localhost:8002").prepare()
    error = exceptions.ConnectionException(request=request)
    assert isinstance(error, requests.ConnectionError)
    assert error.request is request
    assert error.response is None
    assert error.message == str(error) == exceptions.ConnectionException.default_message
    timeout = exceptions.TimeoutException("slow")
    assert isinstance(timeout, requests.Timeout) and str(timeout) == "slow"
    both = exceptions.ConnectTimeoutException()
    assert isinstance(both, requests.ConnectTimeout)
    assert isinstance(both, exceptions.ConnectionException)
