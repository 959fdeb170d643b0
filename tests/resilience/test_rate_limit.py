"""The server's rate limit (``Settings.rate_limit_per_minute``, off by default) seen by the SDK:
it backs off and succeeds; when its retries run out it raises ``RateLimitException``.

The limiter counts requests in one-minute windows of ``time.time()``. The tests replace the clock
the server module reads with one that advances 7 seconds per reading (the limiter reads it once
per request), so which request is refused, and with which ``Retry-After``, is deterministic.
"""

from __future__ import annotations

import logging
import threading
import time
import types
from collections.abc import Iterator

import pytest

import kloudless.server.ratelimit as ratelimit
from kloudless import exceptions
from kloudless.server.settings import Settings

from .conftest import Server, account, start_server

LIMIT = 5
STEP = 7.0


class SteppingClock:
    """``time()`` returns 60000, 60007, 60014, ... (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 60_000.0 - STEP

    def __call__(self) -> float:
        with self._lock:
            self._now += STEP
            return self._now


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(str(tmp_path_factory.mktemp("limited")), rate_limit_per_minute=LIMIT)
    try:
        yield srv
    finally:
        srv.thread.stop()


@pytest.fixture
def clock(limited_server: Server, monkeypatch: pytest.MonkeyPatch) -> SteppingClock:
    stepping = SteppingClock()
    fake_time = types.SimpleNamespace(time=stepping, monotonic=time.monotonic)
    monkeypatch.setattr(ratelimit, "time", fake_time)
    # A fresh limiter: every test starts at the beginning of an empty window.
    limited_server.thread.app.rate_limiter = ratelimit.RateLimiter(LIMIT)
    return stepping


def test_rate_limit_is_off_by_default() -> None:
    assert Settings().rate_limit_per_minute == 0


def test_sdk_backs_off_and_succeeds(
    limited_server: Server, clock: SteppingClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kloudless")
    with account(limited_server.base_url, limited_server.creds.token, max_retries=6) as acc:
        for _ in range(LIMIT):  # readings at +0, +7, ... +28 s: inside the first window
            assert acc.get("storage/folders/root").data["id"] == "root"
        # The sixth request is refused at +35, +42, +49 and +56 s (Retry-After 25, 18, 11, 4,
        # each capped to the client's retry_after_max), and passes at +63 s in the next window.
        # A 429 means "not processed", so even a POST without an idempotency key is retried.
        created = acc.post(
            "storage/folders",
            json={"name": "after-429", "parent_id": "root"},
            idempotency_key=False,
        )
    assert created.data["name"] == "after-429"
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert len(retries) == 4
    assert all("after status 429" in message for message in retries)
    assert all(" in 0.05 s " in message for message in retries)  # Retry-After capped


def test_retries_exhausted_raise_rate_limit_exception(
    limited_server: Server, clock: SteppingClock
) -> None:
    with account(limited_server.base_url, limited_server.creds.token, max_retries=1) as acc:
        for _ in range(LIMIT):
            acc.get("storage/folders/root")
        # Refused at +35 s, retried once, refused again at +42 s: Retry-After 18.
        with pytest.raises(exceptions.RateLimitException) as info:
            acc.get("storage/folders/root")
    error = info.value
    assert error.status == 429 and error.request_id
    assert error.retry_after == 18.0
    assert error.error_code == "too_many_requests"
