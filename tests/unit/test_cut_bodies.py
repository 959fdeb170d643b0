"""Response bodies that break after the headers (``KloudlessAdapter.send``) and the keyed ``409``
``idempotency_key_in_use`` retry (``KloudlessRetry.is_retry``), with ``responses`` mocks.

A cut body is a ``responses`` body whose reads return the first bytes and then fail the way a
dropped connection does (``http.client.IncompleteRead``, a socket timeout), so requests raises
``ChunkedEncodingError`` (or ``ConnectionError``) while it reads it, after urllib3's ``Retry``
has finished.
"""

from __future__ import annotations

import http.client
import io
import logging
import socket
import uuid
from typing import Any

import pytest
import requests
import responses
from requests.adapters import HTTPAdapter

from kloudless import Account, exceptions, retry

API = "http://localhost:8002/v1"
ACC = API + "/accounts/me"
JSON = {"Content-Type": "application/json"}


class BrokenStream(io.RawIOBase):
    """Returns ``data``, then raises ``error`` on the next read."""

    def __init__(self, data: bytes, error: Exception) -> None:
        super().__init__()
        self._data = data
        self._error = error
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.reads += 1
        if not self._data:
            raise self._error
        size = min(len(buffer), len(self._data))
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


def cut_body(data: bytes = b'{"id": "o', error: Exception | None = None) -> io.BufferedReader:
    """A response body cut after ``data``."""
    return io.BufferedReader(BrokenStream(data, error or http.client.IncompleteRead(b"", 100)))


def add_cut(mock: responses.RequestsMock, method: str, url: str, count: int = 1) -> None:
    for _ in range(count):
        mock.add(method, url, status=200, headers=JSON, body=cut_body())


def add_ok(mock: responses.RequestsMock, method: str, url: str, status: int = 200) -> None:
    mock.add(method, url, status=status, json={"id": "ok"})


# --- cut bodies: what is retried ------------------------------------------------------------


def test_get_with_cut_body_is_retried_and_succeeds(mocked: responses.RequestsMock) -> None:
    add_cut(mocked, "GET", ACC + "/x")
    add_ok(mocked, "GET", ACC + "/x")
    with Account(token="T") as account:
        assert account.get("x").data == {"id": "ok"}
    assert len(mocked.calls) == 2


def test_keyed_post_with_cut_body_is_retried_with_the_same_key(
    mocked: responses.RequestsMock,
) -> None:
    add_cut(mocked, "POST", ACC + "/x", count=2)
    add_ok(mocked, "POST", ACC + "/x", status=201)
    with Account(token="T") as account:
        created = account.post("x", json={"name": "n"})
    assert created.status_code == 201
    keys = {c.request.headers["Idempotency-Key"] for c in mocked.calls}
    assert len(mocked.calls) == 3 and len(keys) == 1
    assert uuid.UUID(keys.pop()).version == 4
    assert {c.request.body for c in mocked.calls} == {b'{"name": "n"}'}


def test_unkeyed_post_with_cut_body_is_not_retried(mocked: responses.RequestsMock) -> None:
    add_cut(mocked, "POST", ACC + "/x")
    with Account(token="T") as account:
        with pytest.raises(exceptions.ConnectionException) as info:
            account.post("x", json={}, idempotency_key=False)
    assert isinstance(info.value, requests.ConnectionError)  # old except clauses still work
    assert "broke while the response was read" in str(info.value)
    assert isinstance(info.value.__cause__, requests.exceptions.ChunkedEncodingError)
    assert len(mocked.calls) == 1


def test_unkeyed_post_is_retried_when_asked(mocked: responses.RequestsMock) -> None:
    add_cut(mocked, "POST", ACC + "/x")
    add_ok(mocked, "POST", ACC + "/x", status=201)
    with Account(token="T") as account:
        assert account.post("x", idempotency_key=False, retry=True).status_code == 201
    assert len(mocked.calls) == 2


@pytest.mark.parametrize("options", [{"max_retries": 0}, {"retry": False}])
def test_disabled_retries_are_not_used(
    mocked: responses.RequestsMock, options: dict[str, Any]
) -> None:
    add_cut(mocked, "GET", ACC + "/x")
    with Account(token="T") as account, pytest.raises(exceptions.ConnectionException):
        account.get("x", **options)
    assert len(mocked.calls) == 1


def test_client_max_retries_zero_is_not_retried(mocked: responses.RequestsMock) -> None:
    add_cut(mocked, "PUT", ACC + "/x")
    with Account(token="T", max_retries=0) as account:
        with pytest.raises(exceptions.ConnectionException):
            account.put("x", data=b"body")
    assert len(mocked.calls) == 1


def test_non_rewindable_body_is_not_retried(mocked: responses.RequestsMock) -> None:
    add_cut(mocked, "PUT", ACC + "/x")

    def chunks() -> Any:
        yield b"a"
        yield b"b"

    with Account(token="T") as account, pytest.raises(exceptions.ConnectionException):
        account.put("x", data=chunks())
    assert len(mocked.calls) == 1


def test_exhausted_retries_raise_connection_exception(mocked: responses.RequestsMock) -> None:
    add_cut(mocked, "GET", ACC + "/x", count=4)
    add_cut(mocked, "GET", ACC + "/y", count=2)
    with Account(token="T") as account:
        with pytest.raises(exceptions.ConnectionException) as info:
            account.get("x")  # the default budget: 3 retries
        with pytest.raises(exceptions.ConnectionException):
            account.get("y", max_retries=1)
    assert not isinstance(info.value, exceptions.TimeoutException)
    assert [c.request.url for c in mocked.calls] == [ACC + "/x"] * 4 + [ACC + "/y"] * 2


def test_undecodable_body_is_retried(mocked: responses.RequestsMock) -> None:
    gzip = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    mocked.add("GET", ACC + "/x", status=200, headers=gzip, body=b"not gzip at all")
    add_ok(mocked, "GET", ACC + "/x")
    mocked.add("GET", ACC + "/y", status=200, headers=gzip, body=b"not gzip at all")
    with Account(token="T") as account:
        assert account.get("x").data == {"id": "ok"}
        with pytest.raises(exceptions.ConnectionException) as info:
            account.get("y", max_retries=0)
    assert isinstance(info.value.__cause__, requests.exceptions.ContentDecodingError)
    assert len(mocked.calls) == 3


def test_body_read_timeout_is_retried_then_timeout_exception(
    mocked: responses.RequestsMock,
) -> None:
    for _ in range(2):
        mocked.add("GET", ACC + "/x", headers=JSON, body=cut_body(error=socket.timeout("slow")))
    mocked.add("POST", ACC + "/y", headers=JSON, body=cut_body(error=socket.timeout("slow")))
    with Account(token="T", max_retries=1) as account:
        with pytest.raises(exceptions.TimeoutException) as info:
            account.get("x")
        with pytest.raises(exceptions.TimeoutException):
            account.post("y", idempotency_key=False)  # a read error: not for an unkeyed POST
    assert isinstance(info.value, requests.Timeout)
    assert len(mocked.calls) == 3


def test_streamed_responses_are_left_to_the_caller(mocked: responses.RequestsMock) -> None:
    add_cut(mocked, "GET", ACC + "/x")
    with Account(token="T") as account:
        response = account.get("x", stream=True, get_raw_response=True)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            response.content  # noqa: B018 - the body is read by the caller, who sees the cut
    assert len(mocked.calls) == 1


def test_other_adapters_are_not_retried(mocked: responses.RequestsMock) -> None:
    add_cut(mocked, "GET", ACC + "/x")
    with Account(token="T") as account:
        account.mount("http://localhost:8002/", HTTPAdapter())
        with pytest.raises(exceptions.ConnectionException):
            account.get("x")
    assert len(mocked.calls) == 1


def test_cut_body_retry_is_logged_with_backoff(
    mocked: responses.RequestsMock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    add_cut(mocked, "GET", ACC + "/x", count=2)
    add_ok(mocked, "GET", ACC + "/x")
    caplog.set_level(logging.INFO, logger="kloudless")
    with Account(token="T", backoff_factor=0.5, backoff_jitter=0) as account:
        account.get("x", params={"access_token": "LEAK"})
    messages = [r.getMessage() for r in caplog.records if "Retrying" in r.getMessage()]
    assert len(messages) == 2
    assert "retry 1 of 3" in messages[0] and "after ProtocolError" in messages[0]
    assert "retry 2 of 3" in messages[1]
    assert slept == [0.5, 1.0]  # the adapter Retry's own exponential backoff
    assert "LEAK" not in caplog.text


# --- 409 idempotency_key_in_use -------------------------------------------------------------


def add_in_use(mock: responses.RequestsMock, method: str, url: str, retry_after: bool) -> None:
    headers = {"Retry-After": "0"} if retry_after else {}
    mock.add(
        method,
        url,
        status=409,
        headers=headers,
        json={"error_code": "idempotency_key_in_use", "id": "R409"},
    )


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_keyed_409_with_retry_after_is_retried(mocked: responses.RequestsMock, method: str) -> None:
    add_in_use(mocked, method, ACC + "/x", retry_after=True)
    add_in_use(mocked, method, ACC + "/x", retry_after=True)
    add_ok(mocked, method, ACC + "/x")
    with Account(token="T") as account:
        assert account.request(method, "x", json={"a": 1}).status_code == 200
    assert len(mocked.calls) == 3
    assert len({c.request.headers["Idempotency-Key"] for c in mocked.calls}) == 1


def test_keyed_raw_409_with_retry_after_is_retried(mocked: responses.RequestsMock) -> None:
    add_in_use(mocked, "POST", ACC + "/raw", retry_after=True)
    add_ok(mocked, "POST", ACC + "/raw")
    with Account(token="T") as account:
        assert account.raw("POST", "/upstream").status_code == 200
    assert len(mocked.calls) == 2


def test_unkeyed_409_with_retry_after_is_not_retried(mocked: responses.RequestsMock) -> None:
    add_in_use(mocked, "POST", ACC + "/x", retry_after=True)
    add_in_use(mocked, "GET", ACC + "/y", retry_after=True)
    with Account(token="T") as account:
        with pytest.raises(exceptions.APIException) as info:
            account.post("x", idempotency_key=False)
        with pytest.raises(exceptions.APIException):
            account.get("y")
    assert info.value.status == 409 and info.value.error_code == "idempotency_key_in_use"
    assert len(mocked.calls) == 2


def test_keyed_409_without_retry_after_is_not_retried(mocked: responses.RequestsMock) -> None:
    add_in_use(mocked, "POST", ACC + "/x", retry_after=False)
    with Account(token="T") as account, pytest.raises(exceptions.APIException) as info:
        account.post("x")
    assert info.value.status == 409
    assert len(mocked.calls) == 1


def test_keyed_409_exhausted_or_disabled_gives_the_409(mocked: responses.RequestsMock) -> None:
    for _ in range(3):
        add_in_use(mocked, "POST", ACC + "/x", retry_after=True)
    with Account(token="T") as account:
        with pytest.raises(exceptions.APIException) as info:
            account.post("x", max_retries=1)
        with pytest.raises(exceptions.APIException):
            account.post("x", max_retries=0)
    assert info.value.request_id == "R409"
    assert len(mocked.calls) == 3


def test_is_retry_409_rule() -> None:
    policy = retry.build_retry(3, 0.5, 30.0, 0.0, 60.0)
    keyed = policy.new()
    keyed.keyed = True
    assert keyed.new().keyed is True
    assert keyed.is_retry("POST", 409, has_retry_after=True) is True
    assert keyed.is_retry("POST", 409, has_retry_after=False) is False
    assert policy.is_retry("POST", 409, has_retry_after=True) is False
    assert policy.is_retry("GET", 409, has_retry_after=True) is False
    ignoring = keyed.new(respect_retry_after_header=False)
    assert ignoring.is_retry("POST", 409, has_retry_after=True) is False


def test_adapter_marks_keyed_requests() -> None:
    adapter = retry.KloudlessAdapter(retry.build_retry(3, 0.5, 30.0, 0.0, 60.0))
    try:
        plain = requests.Request("POST", "http://localhost:8002/x", data=b"1").prepare()
        keyed = requests.Request(
            "POST", "http://localhost:8002/x", data=b"1", headers={"Idempotency-Key": "k"}
        ).prepare()
        assert adapter.retry_for(plain).keyed is False
        assert adapter.retry_for(keyed).keyed is True
        assert adapter.retry_for(keyed) is adapter.retry_for(keyed)  # built once, shared
    finally:
        adapter.close()
