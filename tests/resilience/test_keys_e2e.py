"""Idempotency keys end to end (SDK -> fault proxy -> server): a POST or PATCH whose answer was
lost after the server processed it is retried with the same key and replayed, not run twice.
Without a key the SDK must not retry it, so the caller sees the error (and the object exists)."""

from __future__ import annotations

import io
import json
import threading
from typing import Any, Callable

import pytest
import requests

from kloudless import exceptions
from kloudless.server.idempotency import IdempotencyLayer

from .conftest import Server, account
from .faults import FaultProxy


def first_only(fault: str, method: str = "POST") -> Callable[[str, str], str | None]:
    """An override injecting ``fault`` into the first ``method`` request only."""
    state = {"done": False}

    def override(request_method: str, target: str) -> str | None:
        if request_method == method and not state["done"]:
            state["done"] = True
            return fault
        return None

    return override


def names_in_root(server: Server) -> list[str]:
    with account(server.base_url, server.creds.token) as direct:
        listing = direct.get("storage/folders/root/contents", params={"page_size": 1000})
        return [o["name"] for o in listing.data["objects"]]


def upload_headers(name: str) -> dict[str, str]:
    return {"X-Kloudless-Metadata": json.dumps({"name": name, "parent_id": "root"})}


def test_processed_post_without_key_is_not_retried(server: Server, proxy: FaultProxy) -> None:
    proxy.override = first_only("drop_after")
    with account(proxy.base_url, server.creds.token) as acc:
        with pytest.raises(exceptions.ConnectionException) as info:
            acc.post(
                "storage/files",
                data=b"no key",
                headers=upload_headers("no-key.txt"),
                idempotency_key=False,
            )
    assert isinstance(info.value, requests.ConnectionError)  # old except clauses still work
    posts = [s for s in proxy.log if s.method == "POST"]
    assert len(posts) == 1 and "idempotency-key" not in posts[0].headers
    # The server did create the file: a blind retry would have made a second one.
    assert names_in_root(server).count("no-key.txt") == 1


@pytest.mark.parametrize("fault", ["drop_after", "drop_before", "503", "429"])
def test_keyed_post_is_retried_and_runs_once(server: Server, proxy: FaultProxy, fault: str) -> None:
    name = f"keyed-{fault}.txt"
    proxy.override = first_only(fault)
    with account(proxy.base_url, server.creds.token) as acc:
        created = acc.post("storage/files", data=b"with key", headers=upload_headers(name))
    posts = [s for s in proxy.log if s.method == "POST"]
    assert [s.fault for s in posts] == [fault, "pass"]
    keys = {s.headers["idempotency-key"] for s in posts}
    assert len(keys) == 1  # every attempt carried the same key
    replayed = created.response.headers.get("Idempotent-Replayed")
    assert replayed == ("true" if fault == "drop_after" else None)
    assert created.data["name"] == name
    assert names_in_root(server).count(name) == 1


def test_keyed_upload_helper_and_rename_survive_lost_answers(
    server: Server, proxy: FaultProxy
) -> None:
    proxy.override = first_only("drop_after")
    with account(proxy.base_url, server.creds.token) as acc:
        resource = acc.upload(io.BytesIO(b"helper"), name="helper.txt")
        proxy.override = first_only("drop_after", "PATCH")
        renamed = acc.patch(f"storage/files/{resource.data['id']}", json={"name": "renamed.txt"})
    assert renamed.response.headers["Idempotent-Replayed"] == "true"
    names = names_in_root(server)
    assert "helper.txt" not in names and names.count("renamed.txt") == 1


# -- truncated JSON answers: Session.send retries a body cut after the headers ----------------
def cut_first_response(proxy: FaultProxy, method: str) -> None:
    proxy.plan.cut_align = 1
    proxy.plan.cut_if = lambda m, target: True
    proxy.override = first_only("cut", method)


def test_truncated_json_answer_to_get_is_retried(server: Server, proxy: FaultProxy) -> None:
    cut_first_response(proxy, "GET")
    with account(proxy.base_url, server.creds.token) as acc:
        assert acc.get("storage/folders/root").data["id"] == "root"
    assert [s.fault for s in proxy.log if s.method == "GET"] == ["cut", "pass"]


def test_truncated_json_answer_to_keyed_post_is_retried(server: Server, proxy: FaultProxy) -> None:
    cut_first_response(proxy, "POST")
    with account(proxy.base_url, server.creds.token) as acc:
        created = acc.post("storage/files", data=b"cut", headers=upload_headers("cut.txt"))
    posts = [s for s in proxy.log if s.method == "POST"]
    assert [s.fault for s in posts] == ["cut", "pass"]
    assert len({s.headers["idempotency-key"] for s in posts}) == 1
    assert created.response.headers["Idempotent-Replayed"] == "true"
    assert names_in_root(server).count("cut.txt") == 1


def test_truncated_json_answer_raises_an_sdk_exception(server: Server, proxy: FaultProxy) -> None:
    cut_first_response(proxy, "GET")
    error: Any = None
    with account(proxy.base_url, server.creds.token, max_retries=0) as acc:
        try:
            acc.get("storage/folders/root")
        except requests.RequestException as exc:
            error = exc
    assert isinstance(error, exceptions.ConnectionException), type(error)
    assert [s.fault for s in proxy.log] == ["cut"]  # max_retries=0: not sent again


# -- a retry that arrives while the first attempt still runs --------------------------------------
def test_retry_after_read_timeout_waits_for_the_running_attempt(server: Server) -> None:
    from kloudless.server.context import RequestContext
    from kloudless.server.errors import ApiError

    app = server.thread.app
    busy = threading.Event()
    release = threading.Event()
    refused = threading.Event()

    def slow(ctx: RequestContext, call_next: Callable[[], Any]) -> Any:
        # Inside the idempotency layer, before the first attempt's handler: its key is running.
        if not busy.is_set():
            busy.set()
            release.wait(10)
        return call_next()

    def observe(ctx: RequestContext, call_next: Callable[[], Any]) -> Any:
        try:
            return call_next()
        except ApiError as exc:
            if exc.status == 409:
                refused.set()
                release.set()  # the retry was refused: let the first attempt finish now
            raise

    # The server first waits for the running attempt (polling), then answers 409: keep that
    # wait shorter than the SDK's read timeout here so the retry hears the 409.
    layer = next(w for w in app.handler_wrappers if isinstance(w, IdempotencyLayer))
    saved_wait, layer.wait_seconds = layer.wait_seconds, 0.1
    app.handler_wrappers.append(slow)
    app.handler_wrappers.insert(0, observe)
    try:
        with account(
            server.base_url, server.creds.token, timeout=(5, 0.3), retry_after_max=2.0
        ) as acc:
            created = acc.post("storage/files", data=b"slow", headers=upload_headers("slow.txt"))
    finally:
        release.set()
        layer.wait_seconds = saved_wait
        app.handler_wrappers.remove(observe)
        app.handler_wrappers.remove(slow)
    assert busy.is_set() and refused.is_set()
    assert created.response.headers["Idempotent-Replayed"] == "true"
    assert names_in_root(server).count("slow.txt") == 1


def test_concurrent_attempts_with_one_key_run_once(server: Server) -> None:
    key = "concurrent-key"
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8, timeout=10)

    def attempt() -> None:
        with account(server.base_url, server.creds.token, max_retries=0) as acc:
            start.wait()
            try:
                created = acc.post(
                    "storage/files",
                    data=b"x" * 100_000,
                    headers=upload_headers("concurrent.txt"),
                    idempotency_key=key,
                )
                replayed = created.response.headers.get("Idempotent-Replayed") == "true"
                result = "replayed" if replayed else "ran"
            except exceptions.APIException as exc:
                result = f"{exc.status} {exc.error_code}"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert len(outcomes) == 8
    assert outcomes.count("ran") == 1
    assert set(outcomes) <= {"ran", "replayed", "409 idempotency_key_in_use"}
    assert names_in_root(server).count("concurrent.txt") == 1
