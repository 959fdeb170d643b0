"""The plain download (``ServerApp._plain_download``): a whole small file kept in the database,
answered without the generic dispatch. Every case runs both ways, the plain path allowed and
not, and must give the same answer: status, headers, body, error, log line, counts."""

from __future__ import annotations

import dataclasses
import io
import logging
import sqlite3
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import pytest
from werkzeug.test import EnvironBuilder, TestResponse

from kloudless.server import app as app_module
from kloudless.server import create_app
from kloudless.server.bootstrap import Credentials, bootstrap
from kloudless.server.settings import Settings
from kloudless.server.transfer_limits import DOWNLOAD, credential_key

from .conftest import BufferedClient, upload

SMALL = b"plain bytes " * 40
BIG = b"b" * (Settings.inline_file_bytes + 1)


class Served:
    """An app, its credentials and files, and a count of the answers the plain path gave."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        creds = bootstrap(self.app.store)
        assert creds is not None
        self.creds: Credentials = creds
        self.client = BufferedClient(self.app)
        self.auth = {"Authorization": f"Bearer {creds.token}"}
        self.plain_answers = 0
        generic = self.app._plain_download

        def counting(environ: Any, start_response: Any) -> Any:
            answer = generic(environ, start_response)
            self.plain_answers += answer is not None
            return answer

        self.app._plain_download = counting  # type: ignore[method-assign]
        self.small = self._upload("small.txt", SMALL)
        self.big = self._upload("big.bin", BIG)

    def _upload(self, name: str, data: bytes) -> str:
        made = upload(self.client, self.auth, name, data)
        assert made.status_code == 201, made.get_data(as_text=True)
        return str(made.get_json()["id"])

    def url(self, file_id: str | None = None, account: str | int | None = None) -> str:
        account = self.creds.account_id if account is None else account
        return f"/v1/accounts/{account}/storage/files/{file_id or self.small}/contents"

    def close(self) -> None:
        self.app.close()


@pytest.fixture
def both(make_settings: Callable[..., Settings], tmp_path: Any) -> Any:
    """``both(**settings) -> (plain, generic)``: two installations alike, the plain path
    allowed in the first only."""
    made: list[Served] = []

    def build(**overrides: Any) -> tuple[Served, Served]:
        index = len(made)
        plain = Served(make_settings(tmp_path / f"plain{index}", **overrides))
        generic = Served(make_settings(tmp_path / f"generic{index}", **overrides))
        generic.app.plain_downloads = False
        made.extend((plain, generic))
        # The same ids in both: the second installation's files are renamed to the first's.
        for old, new in ((generic.small, plain.small), (generic.big, plain.big)):
            generic.app.store.execute("UPDATE objects SET id = ? WHERE id = ?", (new, old))
        generic.small, generic.big = plain.small, plain.big
        return plain, generic

    yield build
    for served in made:
        served.close()


def _same_second(name: str, value: str) -> str:
    """A ``Date`` header (a 304 carries one) as a placeholder once it parses: the two
    installations answer a moment apart and may straddle a second."""
    if name != "Date":
        return value
    assert parsedate_to_datetime(value).tzinfo is not None
    return "<date>"


def _answer(response: TestResponse) -> tuple[int, list[tuple[str, str]], Any]:
    """:returns: what must be the same both ways: status, headers (less the request id),
    body (a JSON error less its id)."""
    headers = [(k, _same_second(k, v)) for k, v in response.headers.items() if k != "X-Request-Id"]
    if response.mimetype == "application/json":
        body = dict(response.get_json())
        assert body.pop("id") == response.headers["X-Request-Id"]
        return response.status_code, headers, body
    return response.status_code, headers, response.get_data()


def _same(
    plain: Served,
    generic: Served,
    call: Callable[[Served], TestResponse],
    answered: bool | None,
) -> TestResponse:
    """Run ``call`` on both; assert the answers are the same and whether the plain path gave
    one (None: either). :returns: the plain installation's answer."""
    before = plain.plain_answers
    mine, theirs = call(plain), call(generic)
    assert _answer(mine) == _answer(theirs)
    if answered is not None:
        assert plain.plain_answers - before == int(answered)
    assert generic.plain_answers == 0
    return mine


def test_a_small_file_takes_the_plain_path_with_the_same_answer(both: Any) -> None:
    plain, generic = both()
    answer = _same(plain, generic, lambda s: s.client.get(s.url(), headers=s.auth), True)
    assert answer.status_code == 200 and answer.get_data() == SMALL
    names = [name for name, _ in answer.headers.items()]
    assert names == [
        "Content-Type", "Content-Disposition", "X-Content-Type-Options",
        "Content-Security-Policy", "Referrer-Policy", "Cross-Origin-Opener-Policy",
        "Content-Length", "ETag", "Accept-Ranges", "X-Request-Id",
    ]  # fmt: skip
    assert answer.headers["Content-Length"] == str(len(SMALL))


@pytest.mark.parametrize(
    "case",
    ["range", "if-none-match", "origin", "query", "as-user", "idempotency-key", "two tokens",
     "me", "blob file", "head", "api key", "bad token", "unknown host", "folder", "missing",
     "bad id"],
)  # fmt: skip
def test_everything_else_takes_the_generic_path(both: Any, case: str) -> None:
    plain, generic = both()

    def call(s: Served) -> TestResponse:
        headers = dict(s.auth)
        url, method, extra = s.url(), "GET", {}
        if case == "range":
            headers["Range"] = "bytes=2-5"
        elif case == "if-none-match":
            etag = s.client.head(url, headers=s.auth).headers["ETag"]  # HEAD: generic
            headers["If-None-Match"] = etag
        elif case == "origin":
            headers["Origin"] = "https://app.example"
        elif case == "query":
            url += "?x=1"
        elif case == "as-user":
            headers["X-Kloudless-As-User"] = "someone"
        elif case == "idempotency-key":
            headers["Idempotency-Key"] = "key-1"
        elif case == "two tokens":
            headers["Authorization"] = f"Bearer {s.creds.token},{s.creds.token}"
        elif case == "me":
            url = s.url(account="me")
        elif case == "blob file":
            url = s.url(s.big)
        elif case == "head":
            method = "HEAD"
        elif case == "api key":
            headers["Authorization"] = f"APIKey {s.creds.api_key}"
        elif case == "bad token":
            headers["Authorization"] = "Bearer tok_" + "x" * 40
        elif case == "unknown host":
            extra["base_url"] = "http://evil.example/"
        elif case == "folder":
            url = s.url("root")
        elif case == "missing":
            url = s.url("file_doesnotexist")
        elif case == "bad id":
            url = s.url("a.b")
        return s.client.open(url, method=method, headers=headers, **extra)

    answer = _same(plain, generic, call, False)
    expected = {
        "range": 206, "if-none-match": 304, "origin": 200, "query": 200, "as-user": 403,
        "idempotency-key": 200, "two tokens": 200, "me": 200, "blob file": 200, "head": 200,
        "api key": 200, "bad token": 401, "unknown host": 400, "folder": 404, "missing": 404,
        "bad id": 404,
    }  # fmt: skip
    assert answer.status_code == expected[case], answer.get_data(as_text=True)[:300]


@pytest.mark.parametrize("case", ["trailing slash", "scheme in lower case", "other headers"])
def test_variants_the_router_and_authentication_accept_take_the_plain_path(
    both: Any, case: str
) -> None:
    plain, generic = both()

    def call(s: Served) -> TestResponse:
        headers = dict(s.auth)
        url = s.url()
        if case == "trailing slash":
            url += "/"  # the routing map does not insist on slashes
        elif case == "scheme in lower case":
            headers["Authorization"] = f"bearer {s.creds.token}"
        elif case == "other headers":
            headers.update({"Accept": "*/*", "Accept-Encoding": "gzip", "Cookie": "a=b"})
        return s.client.get(url, headers=headers)

    answer = _same(plain, generic, call, True)
    assert answer.status_code == 200 and answer.get_data() == SMALL


@pytest.mark.parametrize(
    "case", ["other account", "other app", "scope", "trashed", "revoked", "unknown service"]
)
def test_refusals_are_the_generic_paths(both: Any, case: str) -> None:
    plain, generic = both()

    def prepare(s: Served) -> dict[str, str]:
        store = s.app.store
        if case == "other account":
            other = store.create_account(s.creds.app_id)
            return {"Authorization": f"Bearer {store.create_token(s.creds.app_id, other)}"}
        if case == "other app":
            app_id, _ = store.create_app("other")
            other = store.create_account(app_id)
            return {"Authorization": f"Bearer {store.create_token(app_id, other)}"}
        if case == "scope":
            token = store.create_token(s.creds.app_id, s.creds.account_id, "calendar")
            return {"Authorization": f"Bearer {token}"}
        if case == "trashed":
            store.execute("UPDATE objects SET trashed = 1 WHERE id = ?", (s.small,))
        if case == "unknown service":
            store.execute(
                "UPDATE accounts SET service = 'nosuchservice' WHERE id = ?", (s.creds.account_id,)
            )
        if case == "revoked":
            assert s.client.get(s.url(), headers=s.auth).status_code == 200  # cached first
            assert store.revoke_token(s.creds.token)
        return s.auth

    headers = {id(s): prepare(s) for s in (plain, generic)}
    answer = _same(plain, generic, lambda s: s.client.get(s.url(), headers=headers[id(s)]), False)
    expected = {
        "other account": 404,
        "other app": 404,
        "scope": 403,
        "trashed": 404,
        "revoked": 401,
        "unknown service": 501,
    }
    assert answer.status_code == expected[case]


def test_failed_logins_are_counted_once(both: Any) -> None:
    """A refused token is counted by the generic path only; the guard then refuses the address
    on both paths alike, a valid token included."""
    plain, generic = both(auth_failures_per_minute=3)
    bad = {"Authorization": "Bearer tok_" + "y" * 40}
    for _ in range(3):
        _same(plain, generic, lambda s: s.client.get(s.url(), headers=bad), False)
    answer = _same(plain, generic, lambda s: s.client.get(s.url(), headers=s.auth), False)
    assert answer.status_code == 429


def test_the_rate_limit_counts_plain_downloads(both: Any) -> None:
    plain, generic = both(rate_limit_per_minute=8)
    # The uploads of the set-up were counted too: the same number on both.
    statuses = []
    for _ in range(8):
        answer = _same(plain, generic, lambda s: s.client.get(s.url(), headers=s.auth), None)
        statuses.append(answer.status_code)
    assert statuses.count(429) >= 1 and statuses[0] == 200
    assert statuses[-1] == 429 and "Retry-After" in answer.headers


def test_a_plain_download_holds_and_frees_a_transfer_slot(both: Any) -> None:
    plain, generic = both(transfers_per_credential=1)
    releases = []
    for s in (plain, generic):
        key = credential_key(s.auth["Authorization"])
        releases.append(s.app.transfer_limits.acquire(DOWNLOAD, key, None))
    answer = _same(plain, generic, lambda s: s.client.get(s.url(), headers=s.auth), True)
    assert answer.status_code == 429
    for release in releases:
        release()
    answer = _same(plain, generic, lambda s: s.client.get(s.url(), headers=s.auth), True)
    assert answer.status_code == 200
    # The body was closed: its slot is free again.
    assert not plain.app.transfer_limits._counts


def test_another_handler_wrapper_turns_the_plain_path_off(both: Any) -> None:
    plain, generic = both()
    seen = []

    def wrapper(ctx: Any, call_next: Any) -> Any:
        seen.append(ctx.request.path)
        return call_next()

    for s in (plain, generic):
        s.app.handler_wrappers.append(wrapper)
    _same(plain, generic, lambda s: s.client.get(s.url(), headers=s.auth), False)
    assert len(seen) == 2


def test_the_log_lines_are_the_same(both: Any, caplog: pytest.LogCaptureFixture) -> None:
    plain, generic = both()
    lines = []
    for s in (plain, generic):
        caplog.clear()
        with caplog.at_level(logging.INFO, "kloudless.server"):
            answer = s.client.get(s.url(), headers=s.auth)
        (record,) = [r for r in caplog.records if "request_id=" in r.getMessage()]
        assert isinstance(record.args, tuple)
        method, path, status, ms, rid = record.args
        assert rid == answer.headers["X-Request-Id"] and 0 <= float(str(ms)) < 60_000
        lines.append((method, path, status))
    assert plain.plain_answers == 1
    assert lines[0] == lines[1] == ("GET", plain.url(), 200)


def test_a_failing_read_of_the_token_is_the_generic_paths_500(
    both: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, generic = both()
    for s in (plain, generic):

        def locked(token: str) -> Any:
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(s.app.store, "lookup_token_account", locked)
    answer = _same(plain, generic, lambda s: s.client.get(s.url(), headers=s.auth), False)
    assert answer.status_code == 500 and answer.get_json()["error_code"] == "internal_error"


def test_a_failure_after_the_slot_is_taken_frees_it(
    both: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read error becomes the generic 500; a failing ``start_response`` still frees the slot."""
    plain, _ = both(transfers_per_credential=1)

    class Failing(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError(5, "Input/output error")

    real = app_module.open_inline_contents

    def failing_open(*args: Any) -> Any:
        opened = real(*args)
        return None if opened is None else dataclasses.replace(opened, stream=Failing())

    with monkeypatch.context() as patch:
        patch.setattr(app_module, "open_inline_contents", failing_open)
        answer = plain.client.get(plain.url(), headers=plain.auth)
    assert answer.status_code == 500 and plain.plain_answers == 1
    assert not plain.app.transfer_limits._counts

    environ = EnvironBuilder(
        path=plain.url(), headers=plain.auth, base_url="http://127.0.0.1/"
    ).get_environ()

    def broken_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        raise RuntimeError("the connection is gone")

    with pytest.raises(RuntimeError):
        plain.app(environ, broken_start_response)
    assert not plain.app.transfer_limits._counts
