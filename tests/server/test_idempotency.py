"""Idempotency keys on the server (kloudless/server/idempotency.py), through werkzeug's test
client: replay, mismatch, in-flight, release on failure, expiry, restart, scoping, limits."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any, Callable

import pytest
from werkzeug.test import Client, TestResponse
from werkzeug.wrappers import Response

from kloudless.server import Settings, create_app, idempotency
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials, bootstrap
from kloudless.server.context import RequestContext
from kloudless.server.idempotency import MAX_KEY_LENGTH, HashingStream, IdempotencyLayer

from .conftest import BufferedClient, assert_error

S = "/v1/accounts/me/storage"
CAL = "/v1/accounts/me/cal"
WAIT = 10.0  # seconds any thread or event wait may take at most


def layer_of(app: ServerApp) -> IdempotencyLayer:
    """The app's idempotency layer (the app installs exactly one)."""
    layers = [w for w in app.handler_wrappers if isinstance(w, IdempotencyLayer)]
    assert len(layers) == 1
    return layers[0]


class Clock:
    """A settable clock for expiry tests."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def layer(app: ServerApp) -> IdempotencyLayer:
    return layer_of(app)


def post_folder(
    client: Client, auth: dict[str, str], key: str | None, name: str = "f", **query: str
) -> TestResponse:
    headers = dict(auth)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(
        f"{S}/folders",
        headers=headers,
        json={"name": name, "parent_id": "root"},
        query_string=query,
    )


def post_file(
    client: Client, auth: dict[str, str], key: str, name: str, data: bytes
) -> TestResponse:
    headers = dict(auth)
    headers["Idempotency-Key"] = key
    headers["X-Kloudless-Metadata"] = json.dumps({"name": name, "parent_id": "root"})
    return client.post(f"{S}/files", headers=headers, data=data)


def root_names(client: Client, auth: dict[str, str]) -> list[str]:
    listing = client.get(
        f"{S}/folders/root/contents", headers=auth, query_string={"page_size": 1000}
    )
    assert listing.status_code == 200
    return sorted(o["name"] for o in listing.get_json()["objects"])


def key_rows(app: ServerApp) -> int:
    row = app.store.one("SELECT COUNT(*) AS n FROM idempotency_keys")
    assert row is not None
    return int(row["n"])


def activity_count(app: ServerApp) -> int:
    row = app.store.one("SELECT COUNT(*) AS n FROM activity")
    assert row is not None
    return int(row["n"])


def assert_same_response(first: TestResponse, again: TestResponse) -> None:
    assert again.status_code == first.status_code
    assert again.get_data() == first.get_data()
    for header in ("Content-Type", "Location", "Retry-After", "ETag"):
        assert again.headers.get(header) == first.headers.get(header)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Original-Request-Id"] == first.headers["X-Request-Id"]
    assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]


# -- replay ------------------------------------------------------------------------------------
def test_folder_create_replayed_not_run_twice(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    layer_of(app)
    first = post_folder(client, auth, "key-1", conflict_if_exists="true")
    assert first.status_code == 201
    events = activity_count(app)
    again = post_folder(client, auth, "key-1", conflict_if_exists="true")
    # Without the key this repeat would be a 409 naming_conflict.
    assert_same_response(first, again)
    assert root_names(client, auth) == ["f"]
    assert activity_count(app) == events


def test_upload_replayed_with_same_body(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    layer_of(app)
    data = bytes(range(256)) * 12_000  # ~3 MB, hashed while streamed
    first = post_file(client, auth, "up-1", "a.bin", data)
    assert first.status_code == 201
    again = post_file(client, auth, "up-1", "a.bin", data)
    assert_same_response(first, again)
    # Without the key the server would have stored "a (1).bin" or similar.
    assert root_names(client, auth) == ["a.bin"]
    file_id = first.get_json()["id"]
    got = client.get(f"{S}/files/{file_id}/contents", headers=auth)
    assert hashlib.sha256(got.data).hexdigest() == hashlib.sha256(data).hexdigest()


def test_client_error_is_stored_and_replayed(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    layer = layer_of(app)
    headers = dict(auth, **{"Idempotency-Key": "bad-parent"})
    body = {"name": "x", "parent_id": "nope"}
    first = client.post(f"{S}/folders", headers=headers, json=body)
    assert 400 <= first.status_code < 500
    again = client.post(f"{S}/folders", headers=headers, json=body)
    assert_same_response(first, again)
    assert again.get_json()["id"] == first.headers["X-Request-Id"]
    assert key_rows(app) == 1 and layer.prune() == 0


def test_delete_and_patch_replayed(app: ServerApp, client: Client, auth: dict[str, str]) -> None:
    layer_of(app)
    file_id = post_file(client, auth, "u", "a.txt", b"abc").get_json()["id"]
    patch_headers = dict(auth, **{"Idempotency-Key": "p"})
    renamed = client.patch(f"{S}/files/{file_id}", headers=patch_headers, json={"name": "b.txt"})
    assert renamed.status_code == 200
    events = activity_count(app)
    assert_same_response(
        renamed, client.patch(f"{S}/files/{file_id}", headers=patch_headers, json={"name": "b.txt"})
    )
    delete_headers = dict(auth, **{"Idempotency-Key": "d"})
    deleted = client.delete(f"{S}/files/{file_id}", headers=delete_headers)
    assert deleted.status_code == 204
    # Without the key this repeat would be a 404.
    assert_same_response(deleted, client.delete(f"{S}/files/{file_id}", headers=delete_headers))
    assert activity_count(app) == events + 1


def test_event_create_replayed(app: ServerApp, client: Client, auth: dict[str, str]) -> None:
    layer_of(app)
    headers = dict(auth, **{"Idempotency-Key": "ev"})
    body = {"name": "E", "start": "2019-01-01T12:30:00Z", "end": "2019-01-01T13:30:00Z"}
    first = client.post(f"{CAL}/calendars/primary/events", headers=headers, json=body)
    assert first.status_code == 201
    again = client.post(f"{CAL}/calendars/primary/events", headers=headers, json=body)
    assert_same_response(first, again)
    listing = client.get(f"{CAL}/calendars/primary/events", headers=auth).get_json()
    assert [e["id"] for e in listing["objects"]] == [first.get_json()["id"]]


def test_me_and_numeric_account_paths_are_the_same_request(
    app: ServerApp, client: Client, auth: dict[str, str], creds: Credentials
) -> None:
    layer_of(app)
    first = post_folder(client, auth, "k")
    headers = dict(auth, **{"Idempotency-Key": "k"})
    again = client.post(
        f"/v1/accounts/{creds.account_id}/storage/folders",
        headers=headers,
        json={"name": "f", "parent_id": "root"},
    )
    assert_same_response(first, again)


def test_requests_without_key_or_with_get_are_untouched(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    layer_of(app)
    assert post_folder(client, auth, None, conflict_if_exists="true").status_code == 201
    assert_error(post_folder(client, auth, None, conflict_if_exists="true"), 409, "naming_conflict")
    headers = dict(auth, **{"Idempotency-Key": "g"})
    assert client.get(f"{S}/folders/root", headers=headers).status_code == 200
    assert key_rows(app) == 0


# -- mismatch ----------------------------------------------------------------------------------
def test_same_key_other_path_method_body_or_metadata_is_422(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    layer_of(app)
    assert post_file(client, auth, "m", "a.txt", b"one").status_code == 201
    other_body = assert_error(
        post_file(client, auth, "m", "a.txt", b"two"), 422, "invalid_parameters"
    )
    assert "different body" in other_body["message"]
    longer = assert_error(
        post_file(client, auth, "m", "a.txt", b"one" * 100_000), 422, "invalid_parameters"
    )
    assert "different body" in longer["message"]
    other_meta = assert_error(
        post_file(client, auth, "m", "b.txt", b"one"), 422, "invalid_parameters"
    )
    assert "X-Kloudless-Metadata" in other_meta["message"]
    other_path = assert_error(post_folder(client, auth, "m"), 422, "invalid_parameters")
    assert "POST /v1/accounts/" in other_path["message"]
    assert "/storage/files" in other_path["message"]
    other_query = assert_error(
        post_file_query(client, auth, "m", overwrite="true"), 422, "invalid_parameters"
    )
    assert "overwrite=true" in other_query["message"]
    headers = dict(auth, **{"Idempotency-Key": "m"})
    other_method = client.patch(f"{S}/files/x", headers=headers, json={"name": "y"})
    assert_error(other_method, 422, "invalid_parameters")
    assert root_names(client, auth) == ["a.txt"]


def post_file_query(client: Client, auth: dict[str, str], key: str, **query: str) -> TestResponse:
    headers = dict(auth)
    headers["Idempotency-Key"] = key
    headers["X-Kloudless-Metadata"] = json.dumps({"name": "a.txt", "parent_id": "root"})
    return client.post(f"{S}/files", headers=headers, data=b"one", query_string=query)


@pytest.mark.parametrize("key", ["", "   ", "x" * (MAX_KEY_LENGTH + 1), "caf\u00e9", "a\tb"])
def test_malformed_keys_are_400(
    app: ServerApp, client: Client, auth: dict[str, str], key: str
) -> None:
    layer_of(app)
    headers = dict(auth)
    headers["Idempotency-Key"] = key
    response = client.post(f"{S}/folders", headers=headers, json={"name": "f"})
    body = assert_error(response, 400, "invalid_parameters")
    assert "Idempotency-Key" in body["message"]
    assert root_names(client, auth) == []


def test_longest_key_is_accepted(app: ServerApp, client: Client, auth: dict[str, str]) -> None:
    layer_of(app)
    key = "k" * MAX_KEY_LENGTH
    assert post_folder(client, auth, key).status_code == 201
    assert post_folder(client, auth, key).headers["Idempotent-Replayed"] == "true"


# -- in flight, failures -----------------------------------------------------------------------
def test_repeat_while_running_is_409_and_runs_once(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    layer_of(app).wait_seconds = 0.0  # answer at once (the wait has its own tests below)
    first, release, results = blocked_first_request(app, auth, "busy")
    try:
        assert_refused_while_running(client, auth, "busy")
    finally:
        release.set()
        first.join(WAIT)
    assert_answered_once(first, results, client, auth, "busy")


def assert_refused_while_running(client: Client, auth: dict[str, str], key: str) -> None:
    """While the first request with ``key`` runs: the same request gets 409 with
    ``Retry-After``, another path with the same key a 422 mismatch."""
    busy = post_folder(client, auth, key)
    assert_error(busy, 409, "idempotency_key_in_use")
    assert busy.headers["Retry-After"] == "1"
    other = post_folder(client, auth, key, conflict_if_exists="true")
    assert_error(other, 422, "invalid_parameters")


def assert_answered_once(
    first: threading.Thread,
    results: list[TestResponse],
    client: Client,
    auth: dict[str, str],
    key: str,
) -> None:
    """The first request finished with 201, a retry with ``key`` gets its stored answer, and
    the folder was made once."""
    assert not first.is_alive() and results[0].status_code == 201
    assert_same_response(results[0], post_folder(client, auth, key))
    assert root_names(client, auth) == ["f"]


def blocked_first_request(
    app: ServerApp, auth: dict[str, str], key: str
) -> tuple[threading.Thread, threading.Event, list[TestResponse]]:
    """Start a keyed folder creation whose handler blocks until the returned event is set."""
    entered = threading.Event()
    release = threading.Event()

    def block(ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
        # Inside the idempotency layer, before the handler: the key is claimed and running.
        entered.set()
        release.wait(WAIT)
        return call_next()

    app.handler_wrappers.append(block)
    results: list[TestResponse] = []
    first = threading.Thread(
        target=lambda: results.append(post_folder(BufferedClient(app), auth, key))
    )
    first.start()
    assert entered.wait(WAIT)
    app.handler_wrappers.remove(block)
    return first, release, results


def test_repeat_while_running_waits_and_replays(
    app: ServerApp, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = layer_of(app)
    layer.wait_seconds = WAIT
    polling = threading.Event()
    real_sleep = idempotency.time.sleep

    def sleep(seconds: float) -> None:
        polling.set()  # the repeat is waiting for the first request now
        real_sleep(seconds)

    monkeypatch.setattr(idempotency.time, "sleep", sleep)
    first, release, results = blocked_first_request(app, auth, "wait")
    repeats: list[TestResponse] = []
    second = threading.Thread(
        target=lambda: repeats.append(post_folder(BufferedClient(app), auth, "wait"))
    )
    second.start()
    try:
        assert polling.wait(WAIT)
    finally:
        release.set()
        first.join(WAIT)
        second.join(WAIT)
    assert not first.is_alive() and not second.is_alive()
    assert results[0].status_code == 201
    assert_same_response(results[0], repeats[0])
    assert root_names(BufferedClient(app), auth) == ["f"]


def test_wait_is_bounded_then_409(
    app: ServerApp, client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = layer_of(app)
    layer.wait_seconds, layer.poll_interval = 0.1, 0.05
    slept: list[float] = []
    real_sleep = idempotency.time.sleep

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(idempotency.time, "sleep", sleep)
    first, release, results = blocked_first_request(app, auth, "slow")
    try:
        busy = post_folder(client, auth, "slow")
    finally:
        release.set()
        first.join(WAIT)
    assert_error(busy, 409, "idempotency_key_in_use")
    assert busy.headers["Retry-After"] == "1"
    assert slept[:2] == [0.05, 0.05]  # polled for the whole wait, then gave up
    assert not first.is_alive() and results[0].status_code == 201
    assert_same_response(results[0], post_folder(client, auth, "slow"))


def test_wait_settings_are_checked(app: ServerApp) -> None:
    with pytest.raises(ValueError):
        IdempotencyLayer(app.store, wait_seconds=-1)
    with pytest.raises(ValueError):
        IdempotencyLayer(app.store, poll_interval=0)


def failing_once(status: int | None) -> Callable[[RequestContext, Callable[[], Response]], Any]:
    """An inner wrapper that fails the first call (ApiError ``status`` or an exception)."""
    calls = {"n": 0}

    def wrapper(ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
        calls["n"] += 1
        if calls["n"] == 1:
            ctx.body_stream().read(2)  # part of the body was consumed before the failure
            if status is None:
                raise RuntimeError("boom")
            from kloudless.server.errors import ApiError

            raise ApiError(status, "service_not_available", "Try again.")
        return call_next()

    return wrapper


@pytest.mark.parametrize("status", [None, 500, 503])
def test_server_error_releases_the_key(
    app: ServerApp, client: Client, auth: dict[str, str], status: int | None
) -> None:
    layer_of(app)
    app.handler_wrappers.append(failing_once(status))
    failed = post_folder(client, auth, "retry-me")
    assert failed.status_code == (status or 500)
    assert key_rows(app) == 0
    again = post_folder(client, auth, "retry-me")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert post_folder(client, auth, "retry-me").headers["Idempotent-Replayed"] == "true"
    assert root_names(client, auth) == ["f"]


def test_stale_running_row_of_a_dead_process_is_taken_over(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    layer = layer_of(app)
    # As with several processes on one database (Settings.shared_state): every key is
    # claimed by a row of its own, and the first request's row is what the repeat sees.
    layer.fold = False
    entered = threading.Event()
    release = threading.Event()

    def block(ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
        entered.set()  # the key is claimed, the handler has not run yet
        release.wait(WAIT)
        return call_next()

    app.handler_wrappers.append(block)
    thread = threading.Thread(target=lambda: post_folder(BufferedClient(app), auth, "crash"))
    thread.start()
    try:
        assert entered.wait(WAIT)
        # Simulate a crash: the row now belongs to a process instance that no longer exists.
        app.store.execute("UPDATE idempotency_keys SET instance = 'dead-process'")
        app.handler_wrappers.remove(block)
        taken = post_folder(client, auth, "crash", conflict_if_exists="false")
        assert taken.status_code in (200, 201) and "Idempotent-Replayed" not in taken.headers
    finally:
        release.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert layer.instance != "dead-process"
    assert root_names(client, auth) == ["f"]


def test_streamed_response_is_not_stored(app: ServerApp, auth: dict[str, str]) -> None:
    layer = layer_of(app)

    def streamed(ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
        call_next()
        return Response(iter([b"a", b"b"]), status=200)

    app.handler_wrappers.append(streamed)
    client = BufferedClient(app)
    assert post_folder(client, auth, "s").data == b"ab"
    assert key_rows(app) == 0 and layer.prune() == 0


# -- scope -------------------------------------------------------------------------------------
def test_keys_are_scoped_per_account(
    app: ServerApp, client: Client, auth: dict[str, str], creds: Credentials
) -> None:
    layer_of(app)
    other_account = app.store.create_account(creds.app_id, "local", "other")
    other = {"Authorization": f"Bearer {app.store.create_token(creds.app_id, other_account)}"}
    assert post_folder(client, auth, "shared").status_code == 201
    second = post_folder(client, other, "shared")
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    assert second.get_json()["account"] == other_account
    # A token of one account never gets a response stored for another account.
    headers = dict(other, **{"Idempotency-Key": "shared"})
    foreign = client.post(
        f"/v1/accounts/{creds.account_id}/storage/folders",
        headers=headers,
        json={"name": "f", "parent_id": "root"},
    )
    assert_error(foreign, 404, "not_found")


# -- expiry, pruning, restart ------------------------------------------------------------------
def test_expired_key_runs_again_and_is_pruned(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    layer = layer_of(app)
    clock = Clock()
    layer.clock = clock
    assert layer.ttl >= 24 * 3600
    first = post_file(client, auth, "old", "a.txt", b"x")
    clock.now += layer.ttl - 1
    assert post_file(client, auth, "old", "a.txt", b"x").headers["Idempotent-Replayed"] == "true"
    clock.now += 2
    again = post_file(client, auth, "old", "a.txt", b"x")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert again.get_json()["id"] != first.get_json()["id"]
    assert len(root_names(client, auth)) == 2
    assert post_file(client, auth, "other", "c.txt", b"x").status_code == 201
    assert key_rows(app) == 2
    clock.now += layer.ttl + 1
    assert layer.prune() == 2
    assert key_rows(app) == 0


def test_pruning_is_bounded_and_opportunistic(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    layer = layer_of(app)
    clock = Clock()
    layer.clock = clock
    layer.prune_batch = 2
    layer.prune_interval = 60
    for n in range(5):
        assert post_folder(client, auth, f"k{n}", name=f"f{n}").status_code == 201
    clock.now += layer.ttl + 1
    assert post_folder(client, auth, "new", name="g").status_code == 201  # prunes one batch
    assert key_rows(app) == 6 - 2
    assert post_folder(client, auth, "new2", name="h").status_code == 201  # too soon to prune
    assert key_rows(app) == 5
    clock.now += 61
    assert post_folder(client, auth, "new3", name="i").status_code == 201
    assert key_rows(app) == 4  # 1 expired left + 3 new keys
    assert layer.prune() == 1
    assert key_rows(app) == 3


def test_stored_response_survives_a_restart(settings: Settings) -> None:
    first_app = create_app(settings)
    try:
        layer_of(first_app)
        creds = bootstrap(first_app.store)
        assert creds is not None
        auth = {"Authorization": f"Bearer {creds.token}"}
        first = post_folder(BufferedClient(first_app), auth, "persist", conflict_if_exists="true")
        assert first.status_code == 201
    finally:
        first_app.close()
    second_app = create_app(settings)
    try:
        layer_of(second_app)
        client = BufferedClient(second_app)
        again = post_folder(client, auth, "persist", conflict_if_exists="true")
        assert_same_response(first, again)
        assert root_names(client, auth) == ["f"]
    finally:
        second_app.close()


# -- the hashing stream ------------------------------------------------------------------------
def test_hashing_stream_hashes_what_is_read() -> None:
    import io

    data = b"line one\nline two\n" + bytes(200_000)
    stream = HashingStream(io.BytesIO(data))
    assert stream.readline() == b"line one\n"
    assert stream.read(0) == b"" and not stream.eof
    assert stream.read(5) == b"line "
    buffer = bytearray(4)
    assert stream.readinto(buffer) == 4 and bytes(buffer) == b"two\n"
    assert not stream.drain(1000)  # more than 1000 bytes left: not finished
    assert stream.drain(10**6) and stream.eof
    assert stream.size == len(data)
    assert stream.hexdigest() == hashlib.sha256(data).hexdigest()
    whole = HashingStream(io.BytesIO(data))
    assert whole.read() == data and whole.eof


def test_ttl_must_be_positive(app: ServerApp) -> None:
    with pytest.raises(ValueError):
        IdempotencyLayer(app.store, 0)


def test_ttl_comes_from_settings(settings: Settings) -> None:
    application = create_app(settings.replace(idempotency_key_ttl=90, idempotency_wait_seconds=0.5))
    try:
        assert layer_of(application).ttl == 90
        assert layer_of(application).wait_seconds == 0.5
    finally:
        application.close()
    assert Settings().idempotency_key_ttl == 24 * 60 * 60


# -- a key held in memory, stored with its answer (no other process on the store) -------------
def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def test_keys_are_held_in_memory_only_without_other_processes(settings: Settings) -> None:
    for changed, folds in (({}, not settings.shared_state), ({"workers": 2}, False)):
        application = create_app(settings.replace(**changed))
        try:
            assert layer_of(application).fold is folds
        finally:
            application.close()


@pytest.mark.only_config("sqlite-files", reason="SQLite's statement trace")
def test_a_keyed_upload_commits_once_with_its_key(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    assert layer_of(app).fold
    post_file(client, auth, "warm", "warm.bin", b"w")
    statements: list[str] = []
    app.store.conn.set_trace_callback(statements.append)
    try:
        first = post_file(client, auth, "once", "a.bin", b"x" * 4096)
    finally:
        app.store.conn.set_trace_callback(None)
    assert first.status_code == 201, first.data
    # The key's row is written once, with the answer, in the upload's one transaction.
    assert [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT")] == [
        "BEGIN IMMEDIATE",
        "COMMIT",
    ]
    keyed = [s for s in statements if "idempotency_keys" in s]
    assert [s.split()[0] for s in keyed] == ["SELECT", "INSERT"], keyed
    assert not [s for s in statements if "SAVEPOINT" in s]
    assert_same_response(first, post_file(client, auth, "once", "a.bin", b"x" * 4096))
    assert root_names(client, auth) == ["a.bin", "warm.bin"]


def test_a_held_key_has_no_row_until_its_answer(
    app: ServerApp, client: Client, auth: dict[str, str]
) -> None:
    layer = layer_of(app)
    layer.fold, layer.wait_seconds = True, 0.0
    first, release, results = blocked_first_request(app, auth, "held")
    try:
        assert key_rows(app) == 0  # no running row committed on its own
        assert_refused_while_running(client, auth, "held")
    finally:
        release.set()
        first.join(WAIT)
    assert key_rows(app) == 1
    assert_answered_once(first, results, client, auth, "held")


def test_a_key_another_process_stored_meanwhile_rolls_the_request_back(
    app: ServerApp, client: Client, auth: dict[str, str], creds: Credentials
) -> None:
    layer = layer_of(app)
    layer.fold = True
    events = activity_count(app)
    first, release, results = blocked_first_request(app, auth, "race")
    try:
        # Another process sharing the store stored an answer for the same key meanwhile.
        now = layer.clock()
        app.store.execute(
            "INSERT INTO idempotency_keys (scope, key_hash, method, path, headers_sha256,"
            " body_sha256, body_size, state, instance, claim, created, expires, status,"
            " response_headers, response_body, request_id)"
            " VALUES (?, ?, 'POST', ?, ?, ?, ?, 'done', 'other', 'c', ?, ?, 201, ?, ?, 'r1')",
            (
                f"{creds.app_id}:{creds.account_id}",
                _key_hash("race"),
                f"/v1/accounts/{creds.account_id}/storage/folders",
                hashlib.sha256(json.dumps([None, None, None]).encode()).hexdigest(),
                hashlib.sha256(json.dumps({"name": "f", "parent_id": "root"}).encode()).hexdigest(),
                len(json.dumps({"name": "f", "parent_id": "root"})),
                now,
                now + 60,
                json.dumps([["Content-Type", "application/json"]]),
                b'{"id": "elsewhere"}',
            ),
        )
    finally:
        release.set()
        first.join(WAIT)
    assert not first.is_alive()
    assert_error(results[0], 409, "idempotency_key_in_use")
    assert root_names(client, auth) == [] and activity_count(app) == events  # rolled back
    again = post_folder(client, auth, "race")
    assert again.status_code == 201 and again.get_json() == {"id": "elsewhere"}
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_running_row_of_a_dead_process_is_taken_over_by_a_held_key(
    app: ServerApp, client: Client, auth: dict[str, str], creds: Credentials
) -> None:
    layer_of(app).fold = True
    now = time.time()
    app.store.execute(
        "INSERT INTO idempotency_keys (scope, key_hash, method, path, headers_sha256, state,"
        " instance, claim, created, expires) VALUES (?, ?, 'POST', '/x', '-', 'running',"
        " 'dead-process', 'c', ?, ?)",
        (f"{creds.app_id}:{creds.account_id}", _key_hash("left"), now, now + 60),
    )
    taken = post_folder(client, auth, "left")
    assert taken.status_code == 201 and "Idempotent-Replayed" not in taken.headers
    assert_same_response(taken, post_folder(client, auth, "left"))
    assert root_names(client, auth) == ["f"]
