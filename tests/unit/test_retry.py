"""Retry policy (kloudless.retry) and idempotency keys, with ``responses`` mocks."""

from __future__ import annotations

import email.utils
import io
import logging
import time
import uuid
from typing import Any

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.response import HTTPResponse

from kloudless import Account, configuration, exceptions, retry

API = "http://localhost:8002/v1"
ACC = API + "/accounts/me"


def add_statuses(mock: responses.RequestsMock, method: str, url: str, *statuses: int) -> None:
    for status in statuses:
        if method == "HEAD":
            mock.add(method, url, status=status)
        elif status < 400:
            mock.add(method, url, status=status, json={"id": "ok"})
        else:
            mock.add(method, url, status=status, json={"error_code": "e", "id": f"R{status}"})


# --- which statuses and methods --------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "OPTIONS"])
def test_safe_methods_retry_statuses(
    mocked: responses.RequestsMock, method: str, status: int
) -> None:
    add_statuses(mocked, method, ACC + "/x", status, 200)
    with Account(token="T") as account:
        result = account.request(method, "x")
    assert result.status_code == 200
    assert len(mocked.calls) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 500, 501])
def test_other_statuses_not_retried(mocked: responses.RequestsMock, status: int) -> None:
    add_statuses(mocked, "GET", ACC + "/x", status)
    with Account(token="T") as account, pytest.raises(exceptions.APIException):
        account.get("x")
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_post_and_patch_with_key_retry_and_reuse_key(
    mocked: responses.RequestsMock, method: str, status: int
) -> None:
    add_statuses(mocked, method, ACC + "/x", status, status, 201)
    with Account(token="T") as account:
        account.request(method, "x", json={"a": 1})
    keys = [c.request.headers["Idempotency-Key"] for c in mocked.calls]
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert uuid.UUID(keys[0]).version == 4


def test_each_call_gets_a_new_key(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "POST", ACC + "/x", 201, 201)
    with Account(token="T") as account:
        account.post("x")
        account.post("x")
    assert (
        mocked.calls[0].request.headers["Idempotency-Key"]
        != (mocked.calls[1].request.headers["Idempotency-Key"])
    )


def test_caller_key_per_call_and_in_headers(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "POST", ACC + "/x", 503, 201, 201)
    add_statuses(mocked, "PATCH", ACC + "/x", 200)
    with Account(token="T") as account:
        account.post("x", idempotency_key="my-key")
        account.post("x", headers={"idempotency-key": "hdr-key"})
        account.headers["Idempotency-Key"] = "session-key"
        account.patch("x")
    keys = [c.request.headers.get("Idempotency-Key") for c in mocked.calls]
    assert keys == ["my-key", "my-key", "hdr-key", "session-key"]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_post_without_key_not_retried_on_5xx(mocked: responses.RequestsMock, status: int) -> None:
    add_statuses(mocked, "POST", ACC + "/x", status)
    with Account(token="T") as account, pytest.raises(exceptions.ServerException):
        account.post("x", idempotency_key=False)
    assert len(mocked.calls) == 1
    assert "Idempotency-Key" not in mocked.calls[0].request.headers


def test_post_without_key_retried_on_429(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "POST", ACC + "/x", 429, 201)
    with Account(token="T") as account:
        assert account.post("x", idempotency_key=False).status_code == 201
    assert len(mocked.calls) == 2


def test_get_and_delete_carry_no_key(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "GET", ACC + "/x", 200)
    add_statuses(mocked, "DELETE", ACC + "/x", 200)
    add_statuses(mocked, "PUT", ACC + "/x", 200)
    with Account(token="T") as account:
        account.get("x")
        account.delete("x")
        account.put("x")
    assert all("Idempotency-Key" not in c.request.headers for c in mocked.calls)


# --- counts: global, per client, per call ---------------------------------------------------


def test_default_count_is_three_then_typed_exception(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "GET", ACC + "/x", 503, 503, 503, 503)
    with Account(token="T") as account, pytest.raises(exceptions.ServerException) as info:
        account.get("x")
    assert len(mocked.calls) == 4
    assert info.value.status == 503
    assert info.value.request_id == "R503"


def test_exhausted_429_gives_rate_limit_with_retry_after(mocked: responses.RequestsMock) -> None:
    for _ in range(2):
        mocked.add("GET", ACC + "/x", status=429, headers={"Retry-After": "0"}, json={})
    date = email.utils.formatdate(time.time() + 120, usegmt=True)
    mocked.add("GET", ACC + "/x", status=429, headers={"Retry-After": date}, json={})
    with Account(token="T", max_retries=2) as account:
        with pytest.raises(exceptions.RateLimitException) as info:
            account.get("x")
    assert len(mocked.calls) == 3
    assert info.value.retry_after is not None and 100 < info.value.retry_after <= 120


def test_global_count(mocked: responses.RequestsMock) -> None:
    configuration["max_retries"] = 1
    add_statuses(mocked, "GET", ACC + "/x", 503, 503)
    with Account(token="T") as account, pytest.raises(exceptions.ServerException):
        account.get("x")
    assert len(mocked.calls) == 2


def test_client_count_and_per_call_override(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "GET", ACC + "/x", 503)
    add_statuses(mocked, "GET", ACC + "/y", 503, 503, 503, 503, 503, 200)
    with Account(token="T", max_retries=0) as account:
        with pytest.raises(exceptions.ServerException):
            account.get("x")
        assert account.get("y", max_retries=5).status_code == 200
    assert len(mocked.calls) == 7


def test_per_call_zero_disables(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "GET", ACC + "/x", 429)
    with Account(token="T") as account, pytest.raises(exceptions.RateLimitException):
        account.get("x", max_retries=0)
    assert len(mocked.calls) == 1


def test_retry_false_disables_and_retry_true_forces(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "GET", ACC + "/x", 503)
    add_statuses(mocked, "POST", ACC + "/y", 503, 201)
    with Account(token="T") as account:
        with pytest.raises(exceptions.ServerException):
            account.get("x", retry=False)
        assert account.post("y", idempotency_key=False, retry=True).status_code == 201
    assert len(mocked.calls) == 3


# --- bodies ---------------------------------------------------------------------------------


def test_generator_body_is_never_retried(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "PUT", ACC + "/x", 503)
    add_statuses(mocked, "POST", ACC + "/y", 429)

    def chunks() -> Any:
        yield b"a"
        yield b"b"

    with Account(token="T") as account:
        with pytest.raises(exceptions.ServerException):
            account.put("x", data=chunks())
        with pytest.raises(exceptions.RateLimitException):
            account.post("y", data=iter([b"z"]))
    assert len(mocked.calls) == 2


def test_seekable_file_body_is_replayed(mocked: responses.RequestsMock, tmp_path: Any) -> None:
    add_statuses(mocked, "POST", ACC + "/storage/files", 503, 201)
    path = tmp_path / "f.bin"
    path.write_bytes(b"file-body")
    with Account(token="T") as account, open(path, "rb") as handle:
        account.post("storage/files", data=handle)
    assert [c.request.body for c in mocked.calls] == [b"file-body", b"file-body"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, True),
        (b"x", True),
        ("x", True),
        (bytearray(b"x"), True),
        (io.BytesIO(b"x"), True),
        (iter([b"x"]), False),
        (object(), False),
    ],
)
def test_body_is_rewindable(body: object, expected: bool) -> None:
    assert retry.body_is_rewindable(body) is expected


def test_non_seekable_streams_are_not_rewindable() -> None:
    class Pipe(io.RawIOBase):
        def seekable(self) -> bool:
            return False

    class Broken(io.RawIOBase):
        def seekable(self) -> bool:
            raise OSError("closed")

    class NoSeekable:
        def seek(self, *args: Any) -> int:
            return 0

        def tell(self) -> int:
            return 0

    assert retry.body_is_rewindable(Pipe()) is False
    assert retry.body_is_rewindable(Broken()) is False
    assert retry.body_is_rewindable(NoSeekable()) is True


# --- pass-through ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw_method", ["GET", "head", "OPTIONS", "PUT", "DELETE"])
def test_raw_safe_methods_retried(mocked: responses.RequestsMock, raw_method: str) -> None:
    add_statuses(mocked, "POST", ACC + "/raw", 503, 200)
    with Account(token="T") as account:
        assert account.raw(raw_method, "/x").status_code == 200
    assert len(mocked.calls) == 2


@pytest.mark.parametrize("raw_method", ["POST", "PATCH"])
def test_raw_unsafe_methods_not_retried_on_5xx(
    mocked: responses.RequestsMock, raw_method: str
) -> None:
    add_statuses(mocked, "POST", ACC + "/raw", 503)
    with Account(token="T") as account, pytest.raises(exceptions.ServerException):
        account.raw(raw_method, "/x")
    assert len(mocked.calls) == 1
    assert "Idempotency-Key" in mocked.calls[0].request.headers


def test_raw_unsafe_method_retried_on_429(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "POST", ACC + "/raw", 429, 200)
    with Account(token="T") as account:
        assert account.raw("POST", "/x").status_code == 200


def test_raw_unsafe_method_retried_when_asked(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "POST", ACC + "/raw", 503, 200, 503, 503, 200)
    with Account(token="T") as account:
        assert account.raw("POST", "/x", retry=True).status_code == 200
        assert account.raw("POST", "/x", max_retries=2).status_code == 200
    assert len(mocked.calls) == 5


def test_raw_safe_method_retry_false(mocked: responses.RequestsMock) -> None:
    add_statuses(mocked, "POST", ACC + "/raw", 503)
    with Account(token="T") as account, pytest.raises(exceptions.ServerException):
        account.raw("GET", "/x", retry=False)


# --- logging --------------------------------------------------------------------------------


def test_each_retry_is_logged_without_secrets(
    mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    add_statuses(mocked, "GET", ACC + "/x", 503, 429, 200)
    caplog.set_level(logging.INFO, logger="kloudless")
    with Account(token="SUPER-SECRET-TOKEN") as account:
        account.get("x", params={"access_token": "LEAK"})
    messages = [r.getMessage() for r in caplog.records if "Retrying" in r.getMessage()]
    assert len(messages) == 2
    assert "retry 1 of 3" in messages[0] and "status 503" in messages[0]
    assert "retry 2 of 3" in messages[1] and "status 429" in messages[1]
    assert all(" in 0.00 s" in m for m in messages)
    text = caplog.text
    assert "SUPER-SECRET-TOKEN" not in text and "LEAK" not in text


# --- KloudlessRetry itself ------------------------------------------------------------------


def make_retry(**kwargs: Any) -> retry.KloudlessRetry:
    settings = {
        "max_retries": 3,
        "backoff_factor": 0.5,
        "backoff_max": 30.0,
        "backoff_jitter": 0.0,
        "retry_after_max": 60.0,
    }
    settings.update(kwargs)
    return retry.build_retry(**settings)  # type: ignore[arg-type]


def urllib3_response(status: int, headers: dict | None = None) -> HTTPResponse:
    return HTTPResponse(body=b"", status=status, headers=headers or {}, preload_content=True)


def test_retry_after_seconds_date_and_cap() -> None:
    policy = make_retry(retry_after_max=10)
    assert policy.get_retry_after(urllib3_response(429, {"Retry-After": "3"})) == 3.0
    assert policy.get_retry_after(urllib3_response(429, {"Retry-After": "3600"})) == 10.0
    date = email.utils.formatdate(time.time() + 5, usegmt=True)
    seconds = policy.get_retry_after(urllib3_response(503, {"Retry-After": date}))
    assert seconds is not None and 3 <= seconds <= 5.01
    assert policy.get_retry_after(urllib3_response(503, {"Retry-After": "garbage"})) is None
    assert policy.get_retry_after(urllib3_response(503)) is None


def test_backoff_exponential_capped_with_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = make_retry(max_retries=10, backoff_factor=1, backoff_max=5, backoff_jitter=0.5)
    monkeypatch.setattr(retry.random, "uniform", lambda a, b: b)
    assert policy.get_backoff_time() == 0.0
    delays = []
    for _ in range(4):
        policy = policy.increment("GET", "/x", error=ProtocolError("drop"))
        delays.append(policy.get_backoff_time())
    assert delays == [1.5, 2.5, 4.5, 5.0]


def test_increment_plans_retry_after_and_sleep_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    policy = make_retry(retry_after_max=2)
    new = policy.increment("POST", "/x", response=urllib3_response(429, {"Retry-After": "9"}))
    assert new.planned_delay == 2.0
    new.sleep(urllib3_response(429, {"Retry-After": "9"}))
    assert slept == [2.0]
    backoff = new.increment("GET", "/x", error=ProtocolError("drop"))
    assert backoff.planned_delay == 1.0  # second retry: 0.5 * 2
    backoff.sleep()
    assert slept == [2.0, 1.0]
    fresh = make_retry(backoff_factor=0)
    fresh.sleep()
    assert slept == [2.0, 1.0]


def test_new_keeps_extra_settings() -> None:
    policy = make_retry(backoff_max=7, backoff_jitter=0.25, retry_after_max=3)
    copy = policy.new(total=1)
    assert (copy.max_backoff, copy.jitter, copy.retry_after_cap, copy.total) == (7, 0.25, 3, 1)


def test_is_retry_rules() -> None:
    policy = make_retry()
    assert policy.is_retry("POST", 429) is True
    assert policy.is_retry("POST", 503) is False
    assert policy.is_retry("GET", 503) is True
    assert policy.is_retry("GET", 500) is False
    with_post = policy.new(allowed_methods=frozenset({"GET", "POST"}))
    assert with_post.is_retry("POST", 503) is True


def test_read_errors_retried_only_for_allowed_methods() -> None:
    policy = make_retry()
    error = ReadTimeoutError(None, "/x", "read timed out")  # type: ignore[arg-type]
    assert len(policy.increment("GET", "/x", error=error).history) == 1
    with pytest.raises(ReadTimeoutError):
        policy.increment("POST", "/x", error=error)


def test_exhaustion_raises_max_retry_error() -> None:
    policy = make_retry(max_retries=0)
    with pytest.raises(MaxRetryError):
        policy.increment("GET", "/x", error=ProtocolError("drop"))


def test_adapter_chooses_retry_per_request() -> None:
    adapter = retry.KloudlessAdapter(make_retry())
    try:
        get = requests.Request("GET", "http://localhost:8002/x").prepare()
        post = requests.Request("POST", "http://localhost:8002/x", data=b"1").prepare()
        keyed = requests.Request(
            "POST", "http://localhost:8002/x", data=b"1", headers={"Idempotency-Key": "k"}
        ).prepare()
        assert "GET" in adapter.retry_for(get).allowed_methods
        assert "POST" not in adapter.retry_for(post).allowed_methods
        assert "POST" in adapter.retry_for(keyed).allowed_methods
        token = retry.call_policy.set(retry.CallPolicy(max_retries=9, key_allows_retry=False))
        try:
            chosen = adapter.retry_for(keyed)
        finally:
            retry.call_policy.reset(token)
        assert chosen.total == 9 and "POST" not in chosen.allowed_methods
        assert adapter.max_retries.total == 3
    finally:
        adapter.close()
