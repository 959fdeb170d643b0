"""What several server processes share through the database, tested with two apps (two
:class:`~kloudless.server.core.Core` instances, as two processes have) on one data dir:
idempotency keys and their waits, rate limits, failed logins, the webhook queue, the sweep
lease, start-up recovery and activity cursors under concurrent writers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from werkzeug.wrappers import Response

from kloudless.server import Settings, create_app, instances, leases
from kloudless.server import webhooks as hooks
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials, bootstrap
from kloudless.server.context import RequestContext
from tests.security.conftest import LoopbackServer, Reply, Seen
from tests.server.conftest import BufferedClient

WAIT = 30.0


@pytest.fixture
def pair(tmp_path: Any) -> Iterator[tuple[ServerApp, ServerApp, Credentials]]:
    """Two apps over one data dir, like two ``--workers`` processes."""
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        workers=2,
        allow_upstream=["127.0.0.1"],
        idempotency_wait_seconds=WAIT,
    )
    first = create_app(settings)
    second = create_app(settings)
    creds = bootstrap(first.store)
    assert creds is not None
    try:
        yield first, second, creds
    finally:
        second.close()
        first.close()


def _bearer(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.token}"}


def _folder(app: ServerApp, creds: Credentials, name: str, key: str | None = None) -> Any:
    headers = _bearer(creds)
    if key is not None:
        headers["Idempotency-Key"] = key
    return BufferedClient(app).post(
        "/v1/accounts/me/storage/folders",
        headers=headers,
        json={"name": name, "parent_id": "root"},
    )


def _root_names(app: ServerApp, creds: Credentials) -> list[str]:
    answer = BufferedClient(app).get(
        "/v1/accounts/me/storage/folders/root/contents", headers=_bearer(creds)
    )
    return sorted(o["name"] for o in answer.get_json()["objects"])


def test_the_second_process_does_not_recover_under_the_first(
    pair: tuple[ServerApp, ServerApp, Credentials],
) -> None:
    first, second, _ = pair
    assert first.instance.others_at_start == 0
    assert second.instance.others_at_start == 1  # so it skipped start-up recovery
    assert instances.is_alive(first.store, second.instance_id)
    assert instances.others_alive(first.store, first.instance_id) == 1


def test_a_repeat_on_another_process_waits_for_the_first_and_replays_it(
    pair: tuple[ServerApp, ServerApp, Credentials],
) -> None:
    first, second, creds = pair
    entered, release = threading.Event(), threading.Event()

    def hold(ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
        entered.set()  # the key is claimed by the first process
        assert release.wait(WAIT)
        return call_next()

    first.handler_wrappers.insert(len(first.handler_wrappers), hold)
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(_folder(first, creds, "a", "k1")))
    thread.start()
    try:
        assert entered.wait(WAIT)
        repeat: list[Any] = []
        waiter = threading.Thread(target=lambda: repeat.append(_folder(second, creds, "a", "k1")))
        waiter.start()
        release.set()
        waiter.join(WAIT)
        assert not waiter.is_alive()
    finally:
        release.set()
        thread.join(WAIT)
    assert answers[0].status_code == 201
    assert repeat[0].status_code == 201 and repeat[0].headers["Idempotent-Replayed"] == "true"
    assert repeat[0].get_json()["id"] == answers[0].get_json()["id"]
    assert _root_names(second, creds) == ["a"]


def test_a_key_left_running_by_a_dead_process_is_taken_over(
    pair: tuple[ServerApp, ServerApp, Credentials],
) -> None:
    first, second, creds = pair
    entered, release = threading.Event(), threading.Event()

    def hold(ctx: RequestContext, call_next: Callable[[], Response]) -> Response:
        entered.set()
        assert release.wait(WAIT)
        raise RuntimeError("this process dies here")

    first.handler_wrappers.append(hold)
    thread = threading.Thread(target=lambda: _folder(first, creds, "b", "k2"))
    thread.start()
    try:
        assert entered.wait(WAIT)
        # The first process is gone: its registry row is removed, as a stop removes it (a
        # SIGKILLed process on this host is recognised by its missing pid instead).
        first.store.execute("DELETE FROM server_instances WHERE id = ?", (first.instance_id,))
        taken = _folder(second, creds, "b", "k2")
        assert taken.status_code == 201 and "Idempotent-Replayed" not in taken.headers
    finally:
        release.set()
        thread.join(WAIT)
    assert _root_names(second, creds) == ["b"]


@pytest.mark.usefixtures("still_rate_window")
def test_rate_limits_count_across_processes(tmp_path: Any) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"), workers=2, rate_limit_per_minute=4)
    apps = [create_app(settings), create_app(settings)]
    try:
        creds = bootstrap(apps[0].store)
        assert creds is not None
        statuses = [
            BufferedClient(apps[i % 2]).get("/v1/accounts/me", headers=_bearer(creds)).status_code
            for i in range(6)
        ]
    finally:
        for app in apps:
            app.close()
    # Counted in memory, each process would allow 4 (8 in all).
    assert statuses == [200, 200, 200, 200, 429, 429]


@pytest.mark.usefixtures("still_rate_window")
def test_failed_logins_count_across_processes(tmp_path: Any) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"), workers=2, auth_failures_per_minute=3)
    apps = [create_app(settings), create_app(settings)]
    try:
        bad = {"Authorization": "Bearer tok_wrong"}
        statuses = [
            BufferedClient(apps[i % 2]).get("/v1/accounts/me", headers=bad).status_code
            for i in range(5)
        ]
    finally:
        for app in apps:
            app.close()
    assert statuses == [401, 401, 401, 429, 429]


def test_one_process_holds_the_sweep_lease_at_a_time(
    pair: tuple[ServerApp, ServerApp, Credentials],
) -> None:
    first, second, _ = pair
    store = first.store
    assert leases.acquire(store, "sweep-test", first.instance_id, 60)
    assert not leases.acquire(store, "sweep-test", second.instance_id, 60)
    assert leases.acquire(store, "sweep-test", first.instance_id, 60)  # the holder renews
    leases.release(store, "sweep-test", first.instance_id)
    assert leases.acquire(store, "sweep-test", second.instance_id, 60)
    # A dead holder's lease is free at once.
    store.execute("DELETE FROM server_instances WHERE id = ?", (second.instance_id,))
    assert leases.acquire(store, "sweep-test", first.instance_id, 60)


def test_a_busy_sweep_lease_skips_the_sweep(
    pair: tuple[ServerApp, ServerApp, Credentials], caplog: pytest.LogCaptureFixture
) -> None:
    first, second, _ = pair
    first.sweeper.wait()
    second.sweeper.wait()
    assert leases.acquire(first.store, "sweep", first.instance_id, 60)
    caplog.set_level("INFO", logger="kloudless.server")
    second.sweeper._next = 0.0  # due now
    assert second.sweeper.maybe_run()
    second.sweeper.wait()
    assert "another server process is sweeping" in caplog.text


def _receiver(app_id: str, seen: list[Seen], lock: threading.Lock) -> Reply:
    def reply(request: Seen) -> tuple[int, dict[str, str], bytes]:
        with lock:
            seen.append(request)
        return 200, {}, app_id.encode()

    return reply


def test_each_webhook_notification_is_delivered_once_by_one_of_the_processes(
    pair: tuple[ServerApp, ServerApp, Credentials],
    loopback: Callable[[Reply], LoopbackServer],
) -> None:
    first, second, creds = pair
    store = first.store
    accounts = [creds.account_id] + [
        store.create_account(creds.app_id, "local", f"a{i}") for i in range(5)
    ]
    tokens = {a: store.create_token(creds.app_id, a) for a in accounts[1:]}
    tokens[creds.account_id] = creds.token
    seen: list[Seen] = []
    receiver = loopback(_receiver(creds.app_id, seen, threading.Lock()))
    hooks.configure_webhook(store, creds.app_id, receiver.url)
    for round_ in range(3):
        for i, account in enumerate(accounts):
            app = (first, second)[(i + round_) % 2]
            BufferedClient(app).post(
                "/v1/accounts/me/storage/folders",
                headers={"Authorization": f"Bearer {tokens[account]}"},
                json={"name": f"r{round_}", "parent_id": "root"},
            )
        assert first.webhooks.wait_idle(WAIT)
    notes = [s for s in seen if s.body]
    ids = [s.headers[hooks.DELIVERY_HEADER] for s in notes]
    assert len(ids) == len(set(ids))  # no notification sent twice
    for account in accounts:  # every account heard about every round
        assert sum(s.body == f"account={account}".encode() for s in notes) >= 3


def test_activity_cursors_only_grow_under_concurrent_writers(
    pair: tuple[ServerApp, ServerApp, Credentials],
) -> None:
    first, second, creds = pair
    errors: list[Any] = []

    def write(app: ServerApp, prefix: str) -> None:
        for i in range(15):
            answer = _folder(app, creds, f"{prefix}{i}")
            if answer.status_code != 201:
                errors.append(answer.get_data())

    threads = [
        threading.Thread(target=write, args=(app, f"{n}-"))
        for n, app in enumerate((first, second, first, second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)
    assert not errors and not any(t.is_alive() for t in threads)
    cursors: list[int] = []
    cursor: Any = None
    for _ in range(20):  # bounded paging
        query = {"page_size": "25"} if cursor is None else {"cursor": str(cursor)}
        page = (
            BufferedClient((first, second)[len(cursors) % 2])
            .get("/v1/accounts/me/events", headers=_bearer(creds), query_string=query)
            .get_json()
        )
        cursors += [int(e["event_id"]) for e in page["objects"]]
        cursor = page["cursor"]
        if not page["objects"]:
            break
    assert cursors == sorted(set(cursors)) and len(cursors) == 60
    names = {json.dumps(n) for n in _root_names(first, creds)}
    assert len(names) == 60
