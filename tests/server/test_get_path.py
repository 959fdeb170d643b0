"""What a small download costs the server in statements, and that its shortcuts answer as the
general path does: a ``GET`` of file contents makes two indexed reads and no write, one once
its token is remembered (:mod:`kloudless.server.credential_cache`), with one process or with
several sharing the database (rate limits and the failed-login guard counted in batches, see
:mod:`kloudless.server.ratelimit`)."""

from __future__ import annotations

import types
import uuid
from collections.abc import Iterator
from typing import Any, Callable

import pytest

import kloudless.server.ratelimit as ratelimit
from kloudless.server import Settings, create_app
from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import bootstrap
from kloudless.server.ratelimit import AuthGuard, RateLimiter
from kloudless.server.responses import new_request_id
from kloudless.server.store import Store

from .conftest import BufferedClient, upload

BODY = b"k" * 4096


class Clock:
    """A wall clock fixed in the middle of a minute and a monotonic clock the test moves."""

    def __init__(self) -> None:
        self.moment = 1000.0

    def time(self) -> float:
        return 60_000.0 + 30.0

    def monotonic(self) -> float:
        return self.moment


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fixed = Clock()
    monkeypatch.setattr(
        ratelimit, "time", types.SimpleNamespace(time=fixed.time, monotonic=fixed.monotonic)
    )
    return fixed


class Statements:
    """The SQL statements this thread's connection of a store runs, while recording."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: list[str] = []

    def __enter__(self) -> list[str]:
        self.store.conn.set_trace_callback(self.seen.append)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        self.store.conn.set_trace_callback(None)


def _writes(statements: list[str]) -> list[str]:
    words = ("INSERT", "UPDATE", "DELETE", "BEGIN", "REPLACE")
    return [s for s in statements if s.lstrip().upper().startswith(words)]


@pytest.fixture(params=[1, 2], ids=["one-process", "shared"])
def served(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], clock: Clock
) -> Iterator[Any]:
    """An app (``workers=2``: its counters are shared through the database) with a 4 KiB file;
    rate limit on."""
    settings = make_settings(workers=request.param, rate_limit_per_minute=1000)
    app = create_app(settings)
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        auth = {"Authorization": f"Bearer {creds.token}"}
        client = BufferedClient(app)
        file_id = upload(client, auth, "small.bin", BODY).get_json()["id"]
        url = f"/v1/accounts/{creds.account_id}/storage/files/{file_id}/contents"
        yield types.SimpleNamespace(app=app, client=client, auth=auth, url=url)
    finally:
        app.close()


@pytest.mark.only_config("sqlite-files", reason="counts statements with SQLite's tracing")
def test_a_download_makes_two_reads_and_no_write(served: Any, clock: Clock) -> None:
    app: ServerApp = served.app
    assert app.store.token_cache is not None
    app.store.token_cache.clear()
    with Statements(app.store) as seen:
        first = served.client.get(served.url, headers=served.auth)
    assert first.status_code == 200 and first.data == BODY
    # The token with its account, then the file's row.
    assert len(seen) == 2 and "token_hash" in seen[0], seen
    with Statements(app.store) as seen:
        for _ in range(20):
            answer = served.client.get(served.url, headers=served.auth)
            assert answer.status_code == 200 and answer.data == BODY
    assert _writes(seen) == []
    # The file's row (the token is remembered); no quota lookup for a read.
    assert len(seen) == 20 and not [s for s in seen if "token_hash" in s], seen[:8]
    assert not [s for s in seen if "account_quotas" in s or "rate_windows" in s]


@pytest.mark.only_config("sqlite-files", reason="counts statements with SQLite's tracing")
def test_shared_counters_are_written_in_batches(served: Any, clock: Clock) -> None:
    app: ServerApp = served.app
    with Statements(app.store) as seen:
        for _ in range(100):
            assert served.client.get(served.url, headers=served.auth).status_code == 200
        clock.moment += ratelimit.REFRESH_SECONDS  # others' counts are read again
        assert served.client.get(served.url, headers=served.auth).status_code == 200
    counted = [s for s in _writes(seen) if "rate_windows" in s]
    if app.settings.shared_state:
        # 1000 per minute: a batch is 1/16 of what is left (at most 64), so a few writes
        # for 101 requests instead of 101; the window's count in the database is exact after
        # the refresh.
        assert 1 <= len(counted) <= 6, counted
        row = app.store.one("SELECT SUM(count) AS n FROM rate_windows WHERE key LIKE 'requests:%'")
        assert row is not None and 60 <= row["n"] <= 102
    else:
        assert counted == []


def test_plain_and_conditional_answers_have_the_same_headers(served: Any) -> None:
    plain = served.client.get(served.url, headers=served.auth)
    # An If-Modified-Since long ago takes werkzeug's conditional path and answers 200 too.
    general = served.client.get(
        served.url,
        headers={**served.auth, "If-Modified-Since": "Thu, 01 Jan 1970 00:00:01 GMT"},
    )
    assert plain.status_code == general.status_code == 200
    assert plain.data == general.data == BODY

    def comparable(answer: Any) -> dict[str, str]:
        return {k: v for k, v in answer.headers.items() if k not in ("Date", "X-Request-Id")}

    assert comparable(plain) == comparable(general)
    assert plain.headers["Accept-Ranges"] == "bytes"
    assert plain.headers["Content-Length"] == "4096"
    assert plain.headers["Content-Disposition"] == 'attachment; filename="small.bin"'
    assert plain.headers["X-Content-Type-Options"] == "nosniff"
    assert plain.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    etag = plain.headers["ETag"]
    unchanged = served.client.get(served.url, headers={**served.auth, "If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.data == b""
    part = served.client.get(served.url, headers={**served.auth, "Range": "bytes=10-19"})
    assert part.status_code == 206 and part.data == BODY[10:20]
    assert part.headers["Content-Range"] == "bytes 10-19/4096"
    stale = served.client.get(
        served.url, headers={**served.auth, "Range": "bytes=10-19", "If-Range": '"other"'}
    )
    assert stale.status_code == 200 and stale.data == BODY
    beyond = served.client.get(served.url, headers={**served.auth, "Range": "bytes=5000-"})
    assert beyond.status_code == 416


def test_request_ids_are_version_4_uuids() -> None:
    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in ids:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


# -- the shared counters themselves (two limiters over one store: two processes) ---------------
@pytest.fixture
def store(make_settings: Callable[..., Settings]) -> Iterator[Store]:
    app = create_app(make_settings())
    try:
        yield app.store
    finally:
        app.close()


def test_below_two_batches_every_request_is_counted_exactly(store: Store, clock: Clock) -> None:
    limit = 2 * ratelimit.BATCH_SHARE - 1
    processes = [RateLimiter(limit, store), RateLimiter(limit, store)]
    answers = [processes[i % 2].check("k") for i in range(limit + 4)]
    assert answers[:limit] == [None] * limit
    assert all(wait is not None and 1 <= wait <= 60 for wait in answers[limit:])


@pytest.mark.parametrize("limit", [64, 600, 5000])
@pytest.mark.only_config("sqlite-files", reason="counts statements with SQLite's tracing")
def test_batched_limits_overshoot_within_the_documented_bound(
    store: Store, clock: Clock, limit: int
) -> None:
    processes = [RateLimiter(limit, store), RateLimiter(limit, store)]
    allowed = 0
    for number in range(2 * limit + 200):
        if processes[number % 2].check("k") is None:
            allowed += 1
    # At least the limit, at most one batch more per process (module docstring).
    assert limit <= allowed <= limit + 2 * min(ratelimit.MAX_BATCH, limit // ratelimit.BATCH_SHARE)
    # Then both refuse without asking the database.
    with Statements(store) as seen:
        assert all(p.check("k") is not None for p in processes for _ in range(10))
    assert seen == []


@pytest.mark.only_config("sqlite-files", reason="counts statements with SQLite's tracing")
def test_the_guard_reads_nothing_per_request_for_a_clean_address(
    store: Store, clock: Clock
) -> None:
    guard = AuthGuard(20, store)
    with Statements(store) as seen:
        for _ in range(50):
            guard.check("127.0.0.1")
    assert len(seen) == 1  # the keys others filled up, once per REFRESH_SECONDS
    clock.moment += ratelimit.REFRESH_SECONDS
    with Statements(store) as seen:
        guard.check("127.0.0.1")
        guard.check("127.0.0.2")
    assert len(seen) == 1


def test_an_address_blocked_elsewhere_is_refused_after_the_refresh(
    store: Store, clock: Clock
) -> None:
    here, elsewhere = AuthGuard(3, store), AuthGuard(3, store)
    here.check("10.0.0.9")  # this process has read the (empty) list of blocked keys
    for _ in range(3):
        elsewhere.note_failure("10.0.0.9")
    with pytest.raises(Exception) as refused:
        elsewhere.check("10.0.0.9")
    assert getattr(refused.value, "status", None) == 429
    here.check("10.0.0.9")  # within REFRESH_SECONDS: what it read still counts
    clock.moment += ratelimit.REFRESH_SECONDS
    with pytest.raises(Exception) as later:
        here.check("10.0.0.9")
    assert getattr(later.value, "status", None) == 429
    here.check("10.0.0.10")  # other addresses are not affected


def test_one_more_failure_here_shows_the_block_at_once(store: Store, clock: Clock) -> None:
    here, elsewhere = AuthGuard(3, store), AuthGuard(3, store)
    here.check("10.0.0.7")
    for _ in range(3):
        elsewhere.note_failure("10.0.0.7")
    here.note_failure("10.0.0.7")  # the one failed attempt the stale view let in
    with pytest.raises(Exception) as refused:
        here.check("10.0.0.7")
    assert getattr(refused.value, "status", None) == 429
    row = store.one("SELECT count FROM rate_windows WHERE key = 'failed:addr:10.0.0.7'")
    assert row is not None and row["count"] == 3  # a refused count adds nothing


def test_limiters_sharing_a_database_keep_their_keys_apart(store: Store, clock: Clock) -> None:
    requests, guard = RateLimiter(2, store, "requests:"), AuthGuard(2, store)
    for _ in range(3):
        requests.check("addr:10.0.0.5")  # unauthenticated requests of the address
    guard.check("10.0.0.5")  # not failed logins
    assert guard.failures.blocked("addr:10.0.0.5") is None


@pytest.mark.parametrize(
    ("method", "status", "extra", "as_is"),
    [
        ("GET", 200, [], True),
        ("GET", 206, [("Content-Range", "bytes 0-9/4096")], True),
        ("HEAD", 200, [], False),
        ("GET", 304, [], False),
        ("GET", 200, [("Location", "/v1/elsewhere")], False),
        ("GET", 200, [("content-location", "/v1/elsewhere")], False),
    ],
)
def test_file_answers_are_sent_as_werkzeug_sends_them(
    method: str, status: int, extra: list[tuple[str, str]], as_is: bool
) -> None:
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Response

    from kloudless.server.app import _as_is

    environ = EnvironBuilder("/v1/x", method=method).get_environ()
    headers = [("Content-Type", "text/plain"), ("Content-Length", "10"), *extra]
    body = iter([b"0123456789"])
    response = Response(body, status=status, headers=headers, direct_passthrough=True)
    sent = _as_is(response, environ)
    assert (sent is not None) == as_is
    if sent is not None:
        app_iter, line, expected = response.get_wsgi_response(environ)
        assert sent == expected and app_iter is body and line == response.status
    no_length = Response(iter([b"x"]), headers=[("Content-Type", "a")], direct_passthrough=True)
    assert _as_is(no_length, environ) is None
    assert _as_is(Response(b"x", status=200), environ) is None  # not direct_passthrough


def test_idle_workers_are_woken_newest_first() -> None:
    import threading
    import time

    from kloudless.server.serving import Dispatcher, NewestFirst

    lock = threading.Lock()
    condition = NewestFirst(lock)
    woken: list[int] = []
    go = [False, False, False]

    def wait(number: int) -> None:
        with lock:
            while not go[number]:
                assert condition.wait(30)
            woken.append(number)

    threads = []
    for number in range(3):
        thread = threading.Thread(target=wait, args=(number,), daemon=True)
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 30
        while len(condition._waiters) < number + 1:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the thread did not begin to wait"
            time.sleep(0.005)
    with lock:
        go[2] = True
        condition.notify()  # the thread that began waiting last
    threads[2].join(30)
    assert woken == [2]
    with lock:
        go[0] = go[1] = True
        condition.notify_all()
    for thread in threads:
        thread.join(30)
    assert sorted(woken) == [0, 1, 2]
    assert isinstance(Dispatcher().queue_cv, NewestFirst)


# -- small file answers and remembered routes: the same answers as the general path ---------
def _comparable(answer: Any) -> tuple[int, dict[str, str], Any]:
    """Status, headers (without the per-request ``Date`` and ``X-Request-Id``) and body (a JSON
    error without its request id) of an answer."""
    headers = {k: v for k, v in answer.headers.items() if k not in ("Date", "X-Request-Id")}
    body: Any = answer.data
    if answer.mimetype == "application/json" and body:
        body = {k: v for k, v in answer.get_json().items() if k != "id"}
    return answer.status_code, headers, body


def _download_requests(url: str, auth: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    return [
        ("GET", auth),
        ("HEAD", auth),
        ("GET", {**auth, "Range": "bytes=10-19"}),
        ("GET", {**auth, "Range": "bytes=0-1,5-6"}),
        ("GET", {**auth, "Range": "bytes=5000-"}),
        ("GET", {**auth, "If-None-Match": "*"}),
        ("GET", {**auth, "Origin": "https://untrusted.example"}),
        ("GET", {}),
        ("GET", {"Authorization": "Bearer tok_nonesuch"}),
    ]


def test_small_files_are_answered_as_bytes_like_streamed_ones(
    served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kloudless.server.api.storage as storage

    requests = _download_requests(served.url, served.auth)

    def answers() -> list[Any]:
        return [
            _comparable(served.client.open(served.url, method=method, headers=headers))
            for method, headers in requests
        ]

    small = answers()
    monkeypatch.setattr(storage, "SMALL_ANSWER", -1)  # every file through the file wrapper
    streamed = answers()
    assert small == streamed
    assert small[0][0] == 200 and small[0][2] == BODY
    assert small[1][0] == 200 and small[1][2] == b""  # HEAD
    assert small[2][0] == 206 and small[2][2] == BODY[10:20]


@pytest.mark.only_config("sqlite-files", reason="blobs in S3 are streamed by a worker, never read")
def test_a_small_answer_is_one_chunk_and_holds_its_slot_until_closed(
    make_settings: Callable[..., Settings],
) -> None:
    from werkzeug.test import EnvironBuilder

    from kloudless.server.api.storage import SMALL_ANSWER, SmallBody

    app = create_app(make_settings(transfers_per_credential=1))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        auth = {"Authorization": f"Bearer {creds.token}"}
        client = BufferedClient(app)
        small_id = upload(client, auth, "small.bin", BODY).get_json()["id"]
        big = b"b" * (SMALL_ANSWER + 1)
        big_id = upload(client, auth, "big.bin", big).get_json()["id"]
        base = f"/v1/accounts/{creds.account_id}/storage/files"
        started: list[str] = []

        def call(file_id: str, method: str = "GET") -> Any:
            environ = EnvironBuilder(
                f"{base}/{file_id}/contents", method=method, headers=auth
            ).get_environ()
            return app(environ, lambda status, headers, exc_info=None: started.append(status))

        body = call(small_id)
        assert isinstance(body, SmallBody) and list(body) == [BODY]
        # The slot is the download's until the server closes the body: a second one waits.
        assert client.get(f"{base}/{small_id}/contents", headers=auth).status_code == 429
        body.close()
        assert client.get(f"{base}/{small_id}/contents", headers=auth).status_code == 200
        streamed = call(big_id)  # larger files are streamed by the server's file wrapper
        assert not isinstance(streamed, SmallBody) and b"".join(streamed) == big
        streamed.close()
        head = call(small_id, "HEAD")  # nothing to send: not read
        assert not isinstance(head, SmallBody)
        head.close()
        assert started == ["200 OK"] * 3
        assert not app.transfer_limits._counts  # every slot released
    finally:
        app.close()


def test_remembered_routes_answer_as_werkzeug_matches(served: Any) -> None:
    app: ServerApp = served.app
    url, auth = served.url, served.auth
    account_url = url.split("/storage/")[0]
    requests = [
        *[(url, method, headers) for method, headers in _download_requests(url, auth)],
        (url + "/", "GET", auth),  # trailing slashes are optional
        (url.replace("/v1/", "/v2/", 1), "GET", auth),
        (url, "DELETE", auth),  # 405 with Allow
        (url, "OPTIONS", {"Origin": "https://x.example", "Access-Control-Request-Method": "GET"}),
        (url, "GET", {**auth, "Connection": "Upgrade", "Upgrade": "websocket"}),
        (url, "GET", {**auth, "Host": "elsewhere.example"}),  # unknown host: 400
        (f"{account_url}/storage/files/a%00b/contents", "GET", auth),  # NUL: 404
        (f"{account_url}/storage/files/%C3%A9t%C3%A9/contents", "GET", auth),  # UTF-8 id
        (f"{account_url}/storage/nonesuch", "GET", auth),  # 404
        (f"{account_url}/storage/folders/root/contents?page=1", "GET", auth),
        (f"{account_url}/storage/folders/root/contents?page=x", "GET", auth),
        (url, "GET", auth),
    ]

    def answers() -> list[Any]:
        return [
            _comparable(served.client.open(path, method=method, headers=headers))
            for path, method, headers in requests
        ]

    app._matched.cache_clear()
    first = answers()
    again = answers()  # what was matched before now comes from the cache
    info = app._matched.cache_info()
    assert info.hits >= 12, info
    cached = app._matched
    app._matched = app._match_inputs  # type: ignore[method-assign]  # werkzeug every time
    try:
        uncached = answers()
    finally:
        app._matched = cached  # type: ignore[method-assign]
    assert first == again == uncached
    statuses = [answer[0] for answer in first]
    assert statuses[:9] == [200, 200, 206, 200, 416, 304, 200, 401, 401]
    assert statuses[9:] == [200, 200, 405, 204, 400, 400, 404, 404, 404, 200, 400, 200]
    assert first[11][1]["Allow"] == "GET, HEAD"


def test_only_matches_are_remembered(served: Any) -> None:
    app: ServerApp = served.app
    app._matched.cache_clear()
    missing = served.url.replace("/contents", "/nonesuch")
    for _ in range(3):
        assert served.client.get(missing, headers=served.auth).status_code == 404
        assert served.client.delete(served.url, headers=served.auth).status_code == 405
    assert app._matched.cache_info().currsize == 0
    assert served.client.get(served.url, headers=served.auth).status_code == 200
    assert served.client.get(served.url + "?x=1", headers=served.auth).status_code == 200
    # The query string is no input of the match: one entry for both.
    assert app._matched.cache_info().currsize == 1


def test_a_query_is_parsed_for_nul_only_when_it_could_hold_one(served: Any) -> None:
    for query in ("q=a%00", "%00=1", "x=1&y=%00z", "q=a\x00"):
        answer = served.client.get(
            served.url, headers=served.auth, environ_overrides={"QUERY_STRING": query}
        )
        assert answer.status_code == 400, query
        assert answer.get_json()["error_code"] == "invalid_parameters"
    for query in ("", "q=%2500", "q=a%20b", "%C3%A9=1"):  # no NUL once decoded
        answer = served.client.get(
            served.url, headers=served.auth, environ_overrides={"QUERY_STRING": query}
        )
        assert answer.status_code == 200 and answer.data == BODY, query


def test_the_request_log_formatter_writes_the_standard_lines() -> None:
    import logging

    from kloudless.server.request_log import LOG_FORMAT, RequestLogFormatter

    ours, standard = RequestLogFormatter(LOG_FORMAT), logging.Formatter(LOG_FORMAT)
    dated = RequestLogFormatter(LOG_FORMAT, "%H:%M")
    base = 1_780_000_000.0
    # Within a second, across seconds, back to an earlier second, milliseconds at the edges.
    for offset in (0.0, 0.0004, 0.9995, 1.0, 1.5, 61.25, 0.25, 3600.999):
        record = logging.LogRecord("kloudless.server", logging.INFO, "f", 1, "GET %s", ("/",), None)
        record.created = base + offset
        record.msecs = (record.created - int(record.created)) * 1000
        assert ours.format(record) == standard.format(record), offset
        assert dated.format(record) == logging.Formatter(LOG_FORMAT, "%H:%M").format(record)


def test_configure_logging_leaves_configured_logging_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import logging

    from kloudless.server.request_log import RequestLogFormatter, configure_logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))  # restored afterwards
    configure_logging(str(tmp_path / "log"))
    try:
        (handler,) = root.handlers
        assert isinstance(handler, logging.FileHandler)
        assert isinstance(handler.formatter, RequestLogFormatter) and root.level == logging.INFO
        # What LOG_FORMAT never shows is not gathered for every record.
        assert logging._srcfile is None
        assert not (logging.logThreads or logging.logProcesses or logging.logMultiprocessing)
        record = logging.getLogger("kloudless.server").makeRecord(
            "kloudless.server", logging.INFO, "f", 1, "GET %s", ("/",), None
        )
        assert record.thread is None and record.process is None
        configure_logging()  # already configured: nothing added
        assert root.handlers == [handler]
        logging.getLogger("kloudless.server").info("GET / 200")
        handler.flush()
        assert (tmp_path / "log").read_text().endswith(" kloudless.server GET / 200\n")
    finally:
        for added in root.handlers:
            added.close()


# -- what every request touches, made cheaper: the same results -------------------------------
@pytest.mark.parametrize(
    "pairs",
    [
        [("Content-Type", "text/plain"), ("Content-Length", "10"), ("ETag", '"x"')],
        [("X-A", "1"), ("x-a", "2"), ("Content-Disposition", 'attachment; filename="a b"')],
        [],
    ],
)
def test_checked_headers_are_werkzeugs_headers(pairs: list[tuple[str, str]]) -> None:
    from werkzeug.datastructures import Headers

    from kloudless.server.responses import checked_headers

    built, expected = checked_headers(list(pairs)), Headers(pairs)
    assert built.to_wsgi_list() == expected.to_wsgi_list() == pairs
    assert built == expected and isinstance(built, Headers)
    built.add("X-Request-Id", "r")  # still werkzeug's own, changed as usual
    assert built["x-request-id"] == "r" and len(built) == len(pairs) + 1


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "\r\n", "text/plain\n"])
def test_checked_headers_refuse_line_breaks_as_werkzeug_does(value: str) -> None:
    from werkzeug.datastructures import Headers

    from kloudless.server.responses import checked_headers

    pairs = [("Content-Type", "text/plain"), ("X-Name", value)]
    with pytest.raises(ValueError) as ours:
        checked_headers(list(pairs))
    with pytest.raises(ValueError) as theirs:
        Headers(pairs)
    assert str(ours.value) == str(theirs.value)


def test_bearer_tokens_are_read_in_one_loop_with_the_same_results(served: Any) -> None:
    from kloudless.server.auth import authenticate
    from kloudless.server.errors import ApiError

    store: Store = served.app.store
    token = served.auth["Authorization"].split(" ", 1)[1]
    one = authenticate(store, f"Bearer {token}")
    account_id = one.account_id
    assert account_id is not None and one.kind == "bearer" and one.scope == "all"
    assert one.account_ids == () and one.scopes == ("all",)
    assert list(one.account_rows) == [account_id]
    other_account = store.create_account(one.app_id, "local", "second")
    second = store.create_token(one.app_id, other_account, "storage")
    app_token = store.create_token(one.app_id, None)
    both = authenticate(store, f"Bearer {token} , {second},")  # spaces and an empty entry
    assert (both.account_id, both.scope) == (account_id, "all")
    assert both.account_ids == (account_id, other_account)
    assert both.scopes == ("all", "storage")
    assert sorted(both.account_rows) == sorted([account_id, other_account])
    with_app = authenticate(store, f"Bearer {app_token},{token}")
    assert with_app.account_id is None and with_app.account_ids == (account_id,)
    assert list(with_app.account_rows) == [account_id]
    assert with_app.scopes == ("all", "all")
    for header in ("Bearer nope", "Bearer ,,", f"Bearer {token},nope", f"Bearer nope,{token}"):
        with pytest.raises(ApiError) as refused:
            authenticate(store, header)
        assert refused.value.status == 401, header
        assert refused.value.message == "The Bearer token is invalid or revoked.", header


# -- a serving process ----------------------------------------------------------------------
def test_a_serving_process_freezes_its_start_up_objects() -> None:
    import gc

    from kloudless.server.runner import freeze_heap

    try:
        freeze_heap()
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()  # collections go on, for what is made afterwards
    finally:
        gc.unfreeze()
