"""Server webhooks with real receivers on 127.0.0.1: validation ping, signed notifications,
coalescing, retries with backoff, isolation between applications, key rotation."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs

import pytest
from urllib3.exceptions import MaxRetryError

from kloudless import webhooks as sdk_webhooks
from kloudless.server import Settings, create_app
from kloudless.server import webhooks as hooks
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials, bootstrap
from kloudless.server.errors import ApiError

from .conftest import LoopbackServer, RecordAll, Reply, Seen
from .server_world import BufferedClient

WAIT = 20.0  # upper bound of every wait; the tests normally finish in milliseconds


@dataclass
class Env:
    app: ServerApp
    client: BufferedClient
    creds: Credentials
    dispatcher: hooks.WebhookDispatcher

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds.token}"}

    def upload(self, name: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token or self.creds.token}"}
        headers["X-Kloudless-Metadata"] = json.dumps({"name": name, "parent_id": "root"})
        response = self.client.post("/v1/accounts/me/storage/files", headers=headers, data=b"x")
        assert response.status_code == 201, response.get_data()

    def idle(self) -> None:
        assert self.dispatcher.wait_idle(WAIT)


def _dispatcher_of(app: ServerApp) -> hooks.WebhookDispatcher:
    """The app's own dispatcher when the app wires one, else one attached here."""
    existing = getattr(app, "webhooks", None)
    if isinstance(existing, hooks.WebhookDispatcher):
        return existing
    return hooks.attach(app)


@pytest.fixture
def env(tmp_path: Any) -> Iterator[Env]:
    # The receivers listen on 127.0.0.1, which the outbound policy refuses unless allowlisted.
    app = create_app(Settings(data_dir=str(tmp_path / "data"), allow_upstream=["127.0.0.1"]))
    dispatcher = _dispatcher_of(app)
    dispatcher.backoff_factor = 0.01
    dispatcher.backoff_max = 0.05
    dispatcher.timeout = 5.0
    creds = bootstrap(app.store)
    assert creds is not None
    try:
        yield Env(app, BufferedClient(app), creds, dispatcher)
    finally:
        dispatcher.stop()
        app.close()


def receiver_for(app_id: str, status: int = 200) -> Reply:
    """A correct receiver: answers ``status`` with the application id."""

    def reply(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "text/plain"}, app_id.encode()

    return reply


def verified(seen: Seen, key: str | list[str]) -> bool:
    return sdk_webhooks.verify_signature(seen.body, seen.headers.get("X-Kloudless-Signature"), key)


def notifications(server: LoopbackServer) -> list[Seen]:
    return [s for s in server.seen if s.body]


# -- configuration and validation ----------------------------------------------------------------
def test_validation_ping_then_signed_notification(
    env: Env, loopback: Callable[[Reply], LoopbackServer]
) -> None:
    receiver = loopback(receiver_for(env.creds.app_id))
    config, key = hooks.configure_webhook(env.app.store, env.creds.app_id, receiver.url + "/hook")
    assert key is not None and key.startswith("whsec_") and config.state == hooks.PENDING
    assert key not in repr(config)
    env.upload("a.txt")
    env.idle()
    assert [s.body for s in receiver.seen] == [b"", f"account={env.creds.account_id}".encode()]
    ping, note = receiver.seen
    for seen in (ping, note):
        assert seen.method == "POST" and seen.path == "/hook"
        assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert verified(seen, key)
        assert not verified(seen, env.creds.api_key)  # signed with the signing key only
        assert env.creds.api_key not in json.dumps(seen.headers)
    assert sdk_webhooks.is_validation_request(ping.body)
    assert sdk_webhooks.parse_notification(note.body) == str(env.creds.account_id)
    state = hooks.get_webhook(env.app.store, env.creds.app_id)
    assert state is not None and state.state == hooks.VALID


@pytest.mark.parametrize(
    "reply",
    [
        lambda app_id: (200, {}, b"not-the-app-id"),
        lambda app_id: (500, {}, app_id.encode()),
        lambda app_id: (404, {}, app_id.encode()),
        lambda app_id: (302, {"Location": "http://127.0.0.1:9/"}, app_id.encode()),
        lambda app_id: (200, {}, b""),
    ],
)
def test_failed_validation_marks_invalid_and_nothing_is_sent(
    env: Env, loopback: Callable[[Reply], LoopbackServer], reply: Any
) -> None:
    receiver = loopback(lambda seen: reply(env.creds.app_id))
    hooks.configure_webhook(env.app.store, env.creds.app_id, receiver.url)
    for index in range(3):
        env.upload(f"f{index}.txt")
    env.idle()
    assert [s.body for s in receiver.seen] == [b""]  # the ping only
    config = hooks.get_webhook(env.app.store, env.creds.app_id)
    assert config is not None and config.state == hooks.INVALID and config.error
    # Configuring again re-validates (here with a receiver that now answers correctly).
    good = loopback(receiver_for(env.creds.app_id))
    hooks.configure_webhook(env.app.store, env.creds.app_id, good.url)
    env.upload("after.txt")
    env.idle()
    assert [s.body for s in good.seen] == [b"", f"account={env.creds.account_id}".encode()]


def test_unreachable_receiver_is_invalid(env: Env) -> None:
    hooks.configure_webhook(env.app.store, env.creds.app_id, "http://127.0.0.1:9/hook")
    config = hooks.validate_webhook(
        env.app.store, env.creds.app_id, timeout=2, sender=env.dispatcher.sender
    )
    assert config.state == hooks.INVALID and "no answer" in (config.error or "")
    assert "refused" not in (config.error or "")  # allowlisted: it was tried, nothing answered


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://example.com/x",
        "/relative",
        "http://",
        "http://user:pw@example.com/",
        "http://example.com/#frag",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "http://example.com/\n",
        "javascript:alert(1)",
        "http://" + "a" * 3000,
        None,
        42,
    ],
)
def test_bad_webhook_urls_are_refused(env: Env, url: Any) -> None:
    with pytest.raises(ApiError) as info:
        hooks.configure_webhook(env.app.store, env.creds.app_id, url)
    assert info.value.status == 400
    assert hooks.get_webhook(env.app.store, env.creds.app_id) is None


def test_unknown_app_and_missing_webhook(env: Env) -> None:
    with pytest.raises(ApiError):
        hooks.configure_webhook(env.app.store, "app_nope", "http://127.0.0.1:9/")
    with pytest.raises(ApiError):
        hooks.rotate_signing_key(env.app.store, env.creds.app_id)
    with pytest.raises(ApiError):
        hooks.validate_webhook(env.app.store, env.creds.app_id)
    assert hooks.remove_webhook(env.app.store, env.creds.app_id) is False


# -- delivery ------------------------------------------------------------------------------------
def test_coalescing_and_api_requests_never_wait_for_the_receiver(
    env: Env, loopback: Callable[[Reply], LoopbackServer]
) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.body:
            entered.set()
            release.wait(WAIT)
        return 200, {}, env.creds.app_id.encode()

    receiver = loopback(slow)
    hooks.configure_webhook(env.app.store, env.creds.app_id, receiver.url)
    env.upload("first.txt")
    assert entered.wait(WAIT)
    # The receiver is stuck on the first notification: the API keeps answering meanwhile.
    for index in range(20):
        env.upload(f"more-{index}.txt")
    assert not release.is_set()
    release.set()
    env.idle()
    # 21 changes: the first notification plus one for everything that happened meanwhile.
    assert len(notifications(receiver)) == 2
    assert all(verified(s, _key(env)) for s in receiver.seen)


def _key(env: Env) -> str:
    config = hooks.get_webhook(env.app.store, env.creds.app_id)
    assert config is not None
    return config.signing_key


def test_retries_with_backoff_then_success(
    env: Env, loopback: Callable[[Reply], LoopbackServer]
) -> None:
    answers = iter([503, 500, 429, 200])

    def flaky(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        status = next(answers) if seen.body else 200
        return status, {}, env.creds.app_id.encode()

    receiver = loopback(flaky)
    hooks.configure_webhook(env.app.store, env.creds.app_id, receiver.url)
    env.upload("a.txt")
    env.idle()
    sent = notifications(receiver)
    assert len(sent) == 4 and len({s.body for s in sent}) == 1
    assert all(verified(s, _key(env)) for s in sent)


def test_retries_are_bounded(env: Env, loopback: Callable[[Reply], LoopbackServer]) -> None:
    def down(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        return (503 if seen.body else 200), {}, env.creds.app_id.encode()

    receiver = loopback(down)
    env.dispatcher.max_retries = 3
    hooks.configure_webhook(env.app.store, env.creds.app_id, receiver.url)
    env.upload("a.txt")
    env.idle()
    assert len(notifications(receiver)) == 4  # the first attempt and 3 retries


def test_refusals_are_not_retried(env: Env, loopback: Callable[[Reply], LoopbackServer]) -> None:
    def refuse(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        return (403 if seen.body else 200), {}, env.creds.app_id.encode()

    receiver = loopback(refuse)
    hooks.configure_webhook(env.app.store, env.creds.app_id, receiver.url)
    env.upload("a.txt")
    env.idle()
    assert len(notifications(receiver)) == 1


def test_backoff_doubles_and_is_capped(env: Env) -> None:
    dispatcher = hooks.WebhookDispatcher(
        env.app.store, backoff_factor=0.5, backoff_max=3.0, max_retries=6
    )
    retry = dispatcher._new_retry()
    delays = []
    for _ in range(6):
        retry = retry.increment(method="POST", url="http://x", error=hooks._DeliveryFailed("x"))
        delays.append(min(max(0.5, retry.get_backoff_time()), 3.0))
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    with pytest.raises(MaxRetryError):
        retry.increment(method="POST", url="http://x", error=hooks._DeliveryFailed("x"))


def test_redirects_are_not_followed(env: Env, loopback: Callable[[Reply], LoopbackServer]) -> None:
    elsewhere = loopback(receiver_for(env.creds.app_id))

    def redirect(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if not seen.body:
            return 200, {}, env.creds.app_id.encode()
        return 307, {"Location": elsewhere.url + "/stolen"}, b""

    receiver = loopback(redirect)
    hooks.configure_webhook(env.app.store, env.creds.app_id, receiver.url)
    env.upload("a.txt")
    env.idle()
    assert elsewhere.seen == [] and len(notifications(receiver)) == 1


def test_each_app_hears_only_about_its_own_accounts(
    env: Env, loopback: Callable[[Reply], LoopbackServer]
) -> None:
    store = env.app.store
    other_app, _ = store.create_app("other")
    other_account = store.create_account(other_app, "local", "o")
    other_token = store.create_token(other_app, other_account)
    mine = loopback(receiver_for(env.creds.app_id))
    theirs = loopback(receiver_for(other_app))
    _, my_key = hooks.configure_webhook(store, env.creds.app_id, mine.url)
    _, their_key = hooks.configure_webhook(store, other_app, theirs.url)
    assert my_key and their_key and my_key != their_key
    env.upload("mine.txt")
    env.upload("theirs.txt", token=other_token)
    env.idle()
    assert [s.body for s in notifications(mine)] == [f"account={env.creds.account_id}".encode()]
    assert [s.body for s in notifications(theirs)] == [f"account={other_account}".encode()]
    assert all(verified(s, my_key) and not verified(s, their_key) for s in mine.seen)
    assert all(verified(s, their_key) for s in theirs.seen)


def test_key_rotation(env: Env, loopback: Callable[[Reply], LoopbackServer]) -> None:
    receiver = loopback(receiver_for(env.creds.app_id))
    _, old = hooks.configure_webhook(env.app.store, env.creds.app_id, receiver.url)
    env.upload("a.txt")
    env.idle()
    new = hooks.rotate_signing_key(env.app.store, env.creds.app_id)
    assert old and new != old
    env.upload("b.txt")
    env.idle()
    last = notifications(receiver)[-1]
    assert verified(last, [new, old]) and verified(last, new) and not verified(last, old)
    # Changing the URL keeps the key (no new key is shown) but validates again.
    _, again = hooks.configure_webhook(env.app.store, env.creds.app_id, receiver.url + "/v2")
    assert again is None and _key(env) == new


def test_removed_webhook_gets_nothing(
    env: Env, loopback: Callable[[Reply], LoopbackServer]
) -> None:
    receiver = loopback(receiver_for(env.creds.app_id))
    hooks.configure_webhook(env.app.store, env.creds.app_id, receiver.url)
    assert hooks.remove_webhook(env.app.store, env.creds.app_id)
    env.upload("a.txt")
    env.idle()
    assert receiver.seen == []


def test_stop_is_prompt_and_keeps_the_queue(env: Env) -> None:
    sent: list[str] = []
    called = threading.Event()

    def sender(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any:
        sent.append(body.decode())
        called.set()
        return hooks.DeliveryResult(503)

    dispatcher = hooks.WebhookDispatcher(env.app.store, sender=sender, backoff_factor=30)
    hooks.configure_webhook(env.app.store, env.creds.app_id, "http://127.0.0.1:9/")
    env.app.store.execute("UPDATE webhooks SET state = 'valid'")
    dispatcher.notify(env.creds.account_id, 1)
    assert called.wait(WAIT)
    assert not dispatcher.wait_idle(0)  # the retry is 30 s away
    dispatcher.stop(timeout=WAIT)
    assert sent == [f"account={env.creds.account_id}"]
    dispatcher.notify(env.creds.account_id, 2)  # queued for the next process, not sent
    assert len(sent) == 1
    # The retry stays queued in the database for the next process (or another one).
    row = env.app.store.one("SELECT attempts, holder FROM webhook_queue")
    assert row is not None and row["attempts"] == 1 and row["holder"] is None


def test_the_notification_commits_with_the_change(
    tmp_path: Any, loopback: Callable[[Reply], LoopbackServer]
) -> None:
    """A process that dies right after a commit (its after-commit work never runs) leaves the
    notification queued: the next process sharing the database delivers it."""
    settings = Settings(data_dir=str(tmp_path / "data"), allow_upstream=["127.0.0.1"])
    first = create_app(settings)
    creds = bootstrap(first.store)
    assert creds is not None
    receiver = loopback(receiver_for(creds.app_id))
    hooks.configure_webhook(first.store, creds.app_id, receiver.url)
    first.webhooks.stop()  # no delivery from this process
    first.activity_listeners.clear()  # as if it died right after the commit
    env = Env(first, BufferedClient(first), creds, first.webhooks)
    env.upload("a.txt")
    row = first.store.one("SELECT account_id, seq FROM webhook_queue")
    assert row is not None and row["account_id"] == creds.account_id
    first.close()
    assert receiver.seen == []
    second = create_app(settings)
    try:
        assert second.webhooks.wait_idle(WAIT)
        assert [s.body for s in notifications(receiver)] == [f"account={creds.account_id}".encode()]
    finally:
        second.close()


def test_a_rolled_back_change_queues_nothing(env: Env) -> None:
    hooks.configure_webhook(env.app.store, env.creds.app_id, "http://127.0.0.1:9/")
    env.dispatcher.stop()
    store = env.app.store
    with pytest.raises(RuntimeError), store.unit_of_work():
        env.app.activity.record(env.creds.account_id, "add", {"id": "x"})
        assert store.one("SELECT 1 FROM webhook_queue") is not None  # inside the unit
        raise RuntimeError("the change fails after its event was recorded")
    assert store.one("SELECT 1 FROM webhook_queue") is None
    assert store.one("SELECT 1 FROM activity WHERE object_id = 'x'") is None


def test_signing_key_and_api_key_stay_out_of_logs(
    env: Env, loopback: Callable[[Reply], LoopbackServer], all_logs: RecordAll
) -> None:
    receiver = loopback(lambda seen: (500, {}, b"nope"))
    _, key = hooks.configure_webhook(env.app.store, env.creds.app_id, receiver.url)
    env.upload("a.txt")
    env.idle()
    assert "failed validation" in all_logs.text
    assert key and key not in all_logs.text and env.creds.api_key not in all_logs.text
    signature = receiver.seen[0].headers["X-Kloudless-Signature"]
    assert signature not in all_logs.text
    assert parse_qs(receiver.seen[0].body.decode()) == {}


# -- configuration through the meta API and the command line -------------------------------------
def test_meta_api_webhook_field(env: Env, loopback: Callable[[Reply], LoopbackServer]) -> None:
    receiver = loopback(receiver_for(env.creds.app_id))
    key_auth = {"Authorization": f"APIKey {env.creds.api_key}"}
    url = f"/v1/meta/applications/{env.creds.app_id}"
    patched = env.client.patch(url, headers=key_auth, json={"webhook_url": receiver.url})
    assert patched.status_code == 200, patched.get_data()
    body = patched.get_json()
    key = body["webhook_signing_key"]
    assert body["webhook_url"] == receiver.url and body["webhook_status"] == "valid"
    assert [s.body for s in receiver.seen] == [b""] and verified(receiver.seen[0], key)
    shown = env.client.get(url, headers=key_auth).get_json()
    assert shown["webhook_status"] == "valid" and "webhook_signing_key" not in shown
    assert key not in env.client.get("/v1/meta/applications", headers=key_auth).get_data(True)
    # Changing the URL shows no key; rotating shows the new one once.
    again = env.client.patch(url, headers=key_auth, json={"webhook_url": receiver.url + "/x"})
    assert "webhook_signing_key" not in again.get_json()
    rotated = env.client.patch(url, headers=key_auth, json={"rotate_webhook_signing_key": True})
    assert rotated.get_json()["webhook_signing_key"] not in (key, None)
    # A bad URL changes nothing, not even the name sent with it.
    bad = env.client.patch(url, headers=key_auth, json={"name": "x", "webhook_url": "ftp://x"})
    assert bad.status_code == 400 and bad.get_json()["error_code"] == "invalid_parameters"
    assert env.client.get(url, headers=key_auth).get_json()["name"] != "x"
    assert env.client.patch(url, headers=env.auth, json={"webhook_url": None}).status_code == 403
    removed = env.client.patch(url, headers=key_auth, json={"webhook_url": None}).get_json()
    assert removed["webhook_url"] is None and removed["webhook_status"] is None


def test_cli_webhook_commands(
    tmp_path: Any, loopback: Callable[[Reply], LoopbackServer], capsys: pytest.CaptureFixture[str]
) -> None:
    from kloudless.cli import main
    from kloudless.server import Settings, create_app

    data = str(tmp_path / "cli-data")
    create_app(Settings(data_dir=data)).close()  # admin commands need an existing store
    assert main(["apps", "show", "--data-dir", data]) == 0
    app_id = re.search(r"KLOUDLESS_APP_ID=(\S+)", capsys.readouterr().out)
    assert app_id is not None
    receiver = loopback(receiver_for(app_id.group(1)))
    allow = ["--allow-upstream", "127.0.0.1"]  # the receivers listen on loopback
    assert main(["apps", "webhook", "set", receiver.url, "--data-dir", data, *allow]) == 0
    out = capsys.readouterr().out
    key = re.search(r"(whsec_\S+)", out)
    assert key is not None and "valid" in out and verified(receiver.seen[0], key.group(1))
    assert main(["apps", "webhook", "show", "--data-dir", data]) == 0
    shown = capsys.readouterr().out
    assert receiver.url in shown and "whsec_" not in shown
    assert main(["apps", "webhook", "rotate-key", "--data-dir", data]) == 0
    assert "whsec_" in capsys.readouterr().out
    broken = loopback(lambda seen: (500, {}, b""))
    assert main(["apps", "webhook", "set", broken.url, "--data-dir", data, *allow]) == 1
    assert "invalid" in capsys.readouterr().out
    assert main(["apps", "webhook", "set", "not a url", "--data-dir", data]) == 2
    assert main(["apps", "webhook", "remove", "--data-dir", data]) == 0
    assert "removed" in capsys.readouterr().out


def test_cli_webhook_set_with_a_chosen_signing_key(
    tmp_path: Any,
    loopback: Callable[[Reply], LoopbackServer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from kloudless.cli import main
    from kloudless.server import Settings, create_app

    data = str(tmp_path / "cli-key")
    create_app(Settings(data_dir=data)).close()
    assert main(["apps", "show", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    app_id = re.search(r"KLOUDLESS_APP_ID=(\S+)", out)
    api_key = re.search(r"KLOUDLESS_API_KEY=(\S+)", out)
    assert app_id is not None and api_key is not None
    receiver = loopback(receiver_for(app_id.group(1)))
    monkeypatch.setattr("sys.stdin", io.StringIO(api_key.group(1) + "\n"))
    argv = ["apps", "webhook", "set", receiver.url, "--signing-key-stdin", "--data-dir", data]
    assert main([*argv, "--allow-upstream", "127.0.0.1"]) == 0
    printed = capsys.readouterr().out
    assert "valid" in printed and "whsec_" not in printed and api_key.group(1) not in printed
    assert verified(receiver.seen[0], api_key.group(1))
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main([*argv, "--allow-upstream", "127.0.0.1"]) == 2
