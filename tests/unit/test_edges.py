"""Edge cases: auth objects, odd URLs, sentinels, concurrency of per-call options."""

from __future__ import annotations

import threading

import pytest
import requests
import responses
from urllib3.exceptions import ProtocolError

from kloudless import Account, Client, exceptions, retry
from kloudless.auth import APIKeyAuth, BaseAuth, BearerTokenAuth
from kloudless.resources import Resource, ResourceList
from kloudless.resources.base import empty

API = "http://localhost:8002/v1"
ACC = API + "/accounts/me"


def test_auth_without_origin_sets_header_anywhere() -> None:
    request = requests.Request("GET", "https://anywhere.example/x").prepare()
    assert APIKeyAuth("k")(request).headers["Authorization"] == "APIKey k"
    assert BearerTokenAuth("t").auth_header == "Bearer t"
    with pytest.raises(NotImplementedError):
        BaseAuth("x").auth_header  # noqa: B018


def test_auth_refuses_unparsable_url() -> None:
    auth = BearerTokenAuth("t", allowed_origin=("http", "localhost", 8002))
    request = requests.Request("GET", "http://localhost:8002/x").prepare()
    request.url = "http://localhost:99999/x"
    with pytest.raises(exceptions.InvalidParameter):
        auth(request)


def test_client_refuses_unparsable_absolute_url(mocked: responses.RequestsMock) -> None:
    with Client(token="T") as client, pytest.raises(exceptions.InvalidParameter):
        client.get("http://localhost:99999/x")


def test_empty_sentinel() -> None:
    assert bool(empty) is False
    assert repr(empty) == "empty"


def test_storage_object_without_id_or_account_prefix() -> None:
    with Client(token="T") as client:
        no_id = Resource(data={"api": "storage", "type": "file"}, url=ACC + "/x", client=client)
        app_level = Resource(
            data={"api": "storage", "type": "file", "id": "F"}, url=API + "/files", client=client
        )
    assert no_id.url == ACC + "/x"
    assert app_level.url == API + "/files/F"


def test_repeated_page_refused_without_request(mocked: responses.RequestsMock) -> None:
    with Client(token="T") as client:
        page = ResourceList(
            data={"type": "object_list", "objects": [{"id": 1}], "next_page": "P"},
            url=ACC + "/l?page=P",
            client=client,
        )
        with pytest.raises(exceptions.NoNextPage):
            page.get_next_page()
    assert len(mocked.calls) == 0


def test_retry_log_with_unbounded_total(caplog: pytest.LogCaptureFixture) -> None:
    policy = retry.KloudlessRetry(total=None, connect=2)
    caplog.set_level("INFO", logger="kloudless")
    policy.increment("GET", "/x", error=ProtocolError("drop"))
    assert "of ?" in caplog.text


def test_one_client_shared_by_threads_keeps_per_call_options(
    loose: responses.RequestsMock,
) -> None:
    """Per-call retry options live in a context variable: threads do not see each other's."""
    for _ in range(40):
        loose.add("GET", ACC + "/flaky", status=503, json={})
    loose.add("GET", ACC + "/ok", json={"id": 1})
    results: dict[str, object] = {}
    with Account(token="T") as account:

        def no_retry() -> None:
            calls = 0
            for _ in range(10):
                try:
                    account.get("flaky", max_retries=0)
                except exceptions.ServerException:
                    calls += 1
            results["no_retry"] = calls

        def fetch() -> None:
            results["ok"] = [account.get("ok").data for _ in range(10)]

        threads = [threading.Thread(target=no_retry), threading.Thread(target=fetch)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert results["no_retry"] == 10
    assert results["ok"] == [{"id": 1}] * 10
    flaky_calls = [c for c in loose.calls if c.request.url.endswith("/flaky")]
    assert len(flaky_calls) == 10
