"""Attack cases for the SDK: credentials stay with the API host, secrets stay out of logs,
messages and URLs, webhook signatures hold, and downloads never leave their folder."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import traceback
import warnings
from collections.abc import Iterator
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
import responses

from kloudless import (
    Account,
    Client,
    exceptions,
    get_authorization_url,
    get_token_from_code,
    verify_token,
    webhooks,
)
from kloudless.auth import BearerTokenAuth
from kloudless.exceptions import InsecureBaseURLWarning, InvalidParameter
from kloudless.filenames import safe_join
from kloudless.resources.base import Resource
from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings

from .conftest import LoopbackServer, RecordAll, Reply, Seen

API = "http://localhost:8002/v1"
ACC = API + "/accounts/me"
TOKEN = "tok-sdk-SECRET-0123456789"
API_KEY = "key-sdk-SECRET-9876543210"
EVIL = "http://evil.example"


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    """A ``responses`` mock that fails on any unregistered URL (so nothing can slip out)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as m:
        yield m


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


# -- credentials stay with the API origin --------------------------------------------------------
FOREIGN_URLS = [
    EVIL + "/v1/accounts/me",
    "https://localhost:8002/v1/accounts/me",  # scheme change
    "http://localhost:9999/v1/accounts/me",  # port change
    "http://127.0.0.1:8002/v1/accounts/me",  # same machine, other host name
    "http://localhost:8002@evil.example/v1/x",  # userinfo trick
    "http://localhost:8002\\@evil.example/v1/x",  # backslash + userinfo trick
    "http://localhost.evil.example:8002/v1/x",
    "HTTP://EVIL.EXAMPLE/v1/x",
]


@pytest.mark.parametrize("url", FOREIGN_URLS)
@pytest.mark.parametrize("kind", ["token", "api_key"])
def test_absolute_url_elsewhere_is_refused_before_sending(
    mock: responses.RequestsMock, url: str, kind: str
) -> None:
    creds = {"token": TOKEN} if kind == "token" else {"api_key": API_KEY, "account_id": 1}
    with Account(**creds) as account:
        for call in (account.get, account.delete, lambda u: account.post(u, json={})):
            with pytest.raises(InvalidParameter) as info:
                call(url)
            assert TOKEN not in str(info.value) and API_KEY not in str(info.value)
    assert len(mock.calls) == 0


def test_protocol_relative_and_dot_paths_stay_on_the_api(mock: responses.RequestsMock) -> None:
    mock.add("GET", ACC + "/evil.example/x", json={})
    with Account(token=TOKEN) as account:
        account.get("//evil.example/x")
        with pytest.raises(InvalidParameter):
            account.get("storage/../../../other")
    assert [c.request.url for c in mock.calls] == [ACC + "/evil.example/x"]


def test_href_to_another_host_is_not_followed(mock: responses.RequestsMock) -> None:
    hostile = {
        "id": "F1",
        "type": "file",
        "api": "storage",
        "name": "f.txt",
        "size": 3,
        "href": EVIL + "/v1/accounts/me/storage/files/F1",
    }
    mock.add("GET", ACC + "/storage/files/F1", json=hostile)
    with Account(token=TOKEN) as account:
        resource = account.get("storage/files/F1")
        assert isinstance(resource, Resource)
        resource.refresh()  # refreshes from the URL it came from, not from the href
        with pytest.raises(InvalidParameter):
            resource.get("contents")
        with pytest.raises(InvalidParameter):
            resource.delete()
        with pytest.raises(InvalidParameter):
            resource.download(os.devnull + "-never-created")
    assert [c.request.url for c in mock.calls] == [ACC + "/storage/files/F1"] * 2


def test_next_page_url_does_not_redirect_credentials(mock: responses.RequestsMock) -> None:
    listing = ACC + "/storage/folders/root/contents"
    page1 = {
        "type": "object_list",
        "api": "storage",
        "page": 1,
        "next_page": EVIL + "/steal?page=2",
        "objects": [{"id": "a", "type": "file", "api": "storage"}],
    }
    mock.add("GET", listing, json=page1)
    mock.add("GET", listing, json=dict(page1, next_page=None, page=2))
    with Account(token=TOKEN) as account:
        first = account.get("storage/folders/root/contents")
        second = first.get_next_page()
        assert second.next_page is None
    assert all(urlsplit(c.request.url).hostname == "localhost" for c in mock.calls)
    assert len(mock.calls) == 2


def test_auth_object_refuses_other_origins_even_when_used_directly() -> None:
    with Account(token=TOKEN) as account:
        auth = account.auth
        assert isinstance(auth, BearerTokenAuth)
        request = requests.Request("GET", EVIL + "/x").prepare()
        with pytest.raises(InvalidParameter):
            auth(request)
        assert "Authorization" not in request.headers
        assert TOKEN not in repr(auth) and TOKEN not in repr(account)


def _redirecting(target: Callable[[], str], status: int = 302) -> Reply:
    def reply(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        return status, {"Location": target() + seen.path}, b""

    return reply


def _json_ok(seen: Seen) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, b'{"id": "x", "api": "storage"}'


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("kind", ["token", "api_key"])
def test_real_cross_host_redirect_drops_credentials(
    loopback: Callable[[Reply], LoopbackServer], status: int, kind: str
) -> None:
    # Two real servers on different ports: the API answers with a redirect to the other one.
    other = loopback(_json_ok)
    api = loopback(_redirecting(lambda: other.url, status))
    creds = {"token": TOKEN} if kind == "token" else {"api_key": API_KEY, "account_id": 7}
    with Account(base_url=api.url, max_retries=0, **creds) as account:
        if status in (307, 308):
            account.post("storage/folders", json={"name": "n"})
        else:
            account.get("storage/files/x")
    assert len(api.seen) == 1 and api.seen[0].headers.get("Authorization")
    assert len(other.seen) == 1
    leaked = other.seen[0]
    assert "Authorization" not in leaked.headers
    everything = json.dumps(leaked.headers) + leaked.path + leaked.body.decode()
    assert TOKEN not in everything and API_KEY not in everything


def test_redirect_to_localhost_name_on_another_port_drops_credentials(
    loopback: Callable[[Reply], LoopbackServer],
) -> None:
    other = loopback(_json_ok)
    api = loopback(_redirecting(lambda: f"http://localhost:{other.port}"))
    with Account(token=TOKEN, base_url=api.url, max_retries=0) as account:
        account.get("storage/files/x")
    assert "Authorization" not in other.seen[0].headers


def test_same_origin_redirect_keeps_credentials(
    loopback: Callable[[Reply], LoopbackServer],
) -> None:
    # The control case: the test above can fail, because same-origin redirects keep the header.
    def reply(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.path.endswith("/moved"):
            return _json_ok(seen)
        return 302, {"Location": seen.path + "/moved"}, b""

    api = loopback(reply)
    with Account(token=TOKEN, base_url=api.url, max_retries=0) as account:
        account.get("storage/files/x")
    assert [s.headers.get("Authorization") for s in api.seen] == [f"Bearer {TOKEN}"] * 2


# -- plain http warnings -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "base_url",
    [
        "http://api.example.com",
        "http://10.0.0.5:8002",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io:8002",
        "http://[2001:db8::1]:8002",
    ],
)
def test_plain_http_to_a_remote_host_warns(base_url: str) -> None:
    with pytest.warns(InsecureBaseURLWarning, match="plain http"):
        Client(token=TOKEN, base_url=base_url).close()


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.example.com",
        "http://localhost:8002",
        "http://127.0.0.1:8002",
        "http://127.8.9.10",
        "http://[::1]:8002",
        "http://app.localhost",
    ],
)
def test_https_or_loopback_does_not_warn(base_url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", InsecureBaseURLWarning)
        Client(token=TOKEN, base_url=base_url).close()


# -- secrets stay out of logs, messages and URLs -------------------------------------------------
class _UrlRecorder:
    """WSGI middleware recording every request line (path and query) the server receives."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.urls: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.urls.append(environ.get("PATH_INFO", "") + "?" + environ.get("QUERY_STRING", ""))
        return self.app(environ, start_response)


@pytest.fixture
def live(tmp_path: Any) -> Iterator[tuple[ServerThread, _UrlRecorder]]:
    server = ServerThread(Settings(data_dir=str(tmp_path / "data"), host="127.0.0.1", port=0))
    recorder = _UrlRecorder(server.server.application)
    server.server.application = recorder
    server.start()
    try:
        yield server, recorder
    finally:
        server.stop()


def _oauth_code(base: str, app_id: str, redirect_uri: str, state: str) -> str:
    """Play the user's browser on the real consent page; return the code of the redirect."""
    authorize, _ = get_authorization_url(app_id, redirect_uri, state=state)
    with requests.Session() as browser:
        page = browser.get(authorize, timeout=10)
        assert page.status_code == 200
        match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert match is not None
        hidden = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', page.text))
        form = {
            k: v.replace("&amp;", "&").replace("&quot;", '"').replace("&#x27;", "'")
            for k, v in hidden.items()
        }
        form.update(csrf_token=match.group(1), decision="allow", account_id="new")
        answer = browser.post(base + "/v1/oauth", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    query = parse_qs(location.query)
    assert query["state"] == [state]
    return query["code"][0]


def test_full_flow_at_debug_never_shows_a_secret(
    live: tuple[ServerThread, _UrlRecorder], all_logs: RecordAll, tmp_path: Any
) -> None:
    import kloudless

    server, recorder = live
    assert server.credentials is not None
    app_id, api_key = server.credentials.app_id, server.credentials.api_key
    kloudless.configuration["base_url"] = server.base_url
    state = "st8-" + os.urandom(8).hex()
    redirect_uri = "http://localhost:8020/callback"

    code = _oauth_code(server.base_url, app_id, redirect_uri, state)
    token = get_token_from_code(app_id, api_key, state, redirect_uri, code=code, state=state)
    assert verify_token(app_id, token)["client_id"] == app_id
    failures: list[BaseException] = []
    with Account(token=token) as account:
        source = tmp_path / "up.txt"
        source.write_bytes(b"hello")
        uploaded = account.upload(str(source), name="up.txt")
        listing = account.get("storage/folders/root/contents", params={"page_size": 5})
        assert [o.data["name"] for o in listing] == ["up.txt"]
        saved = uploaded.download(str(tmp_path))
        assert _read(saved) == b"hello"
        folder = account.post("storage/folders", json={"name": "dir", "parent_id": "root"})
        folder.patch(json={"name": "dir2"})
        calendars = account.get("cal/calendars")
        primary = calendars[0]
        event = primary.post(
            "events",
            json={"name": "meet", "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z"},
        )
        event.delete()
        account.get("events", params={"cursor": "0"})
        for bad in ("storage/files/nope", "cal/calendars/nope"):
            with pytest.raises(exceptions.NotFoundException) as info:
                account.get(bad)
            failures.append(info.value)
    for bad_credentials in ({"token": "tok_" + "x" * 40}, {"api_key": "key_" + "y" * 40}):
        with Account(account_id=1, **bad_credentials) as intruder:
            with pytest.raises(exceptions.AuthorizationException) as denied:
                intruder.get("storage/quota")
            failures.append(denied.value)
    with pytest.raises(exceptions.APIException) as reused:
        get_token_from_code(app_id, api_key, state, redirect_uri, code=code, state=state)
    failures.append(reused.value)
    for failure in failures:
        kloudless.util.logger.debug("failure %s / %r", failure, failure)

    secrets = {
        "token": token,
        "bootstrap token": server.credentials.token,
        "api key / client_secret": api_key,
        "code": code,
        "state": state,
        "bad token": "x" * 40,
        "bad key": "y" * 40,
    }
    text = all_logs.text
    loggers = {r.name for r in all_logs.records}
    assert {"kloudless", "urllib3.connectionpool", "kloudless.server"} <= loggers, loggers
    assert len(all_logs.records) > 30
    for label, secret in secrets.items():
        assert secret not in text, label
    for failure in failures:
        shown = str(failure) + repr(failure) + "".join(traceback.format_exception_only(failure))
        for label, secret in secrets.items():
            assert secret not in shown, label
    # Credentials never travel in a URL (code and state appear only in the browser's redirect).
    sdk_urls = [u for u in recorder.urls if not u.startswith("/v1/oauth?")]
    for label in ("token", "bootstrap token", "api key / client_secret", "code", "bad token"):
        assert not any(secrets[label] in u for u in sdk_urls), label


ECHO_SECRETS = {
    "bearer": f"Bearer {TOKEN}",
    "apikey": f"APIKey {API_KEY}",
    "access_token": f'"access_token": "{TOKEN}"',
    "client_secret": f"client_secret={API_KEY}&x=1",
    "code": "invalid code=oauth-code-SECRET-123",
}


def _error_for(mock: responses.RequestsMock, body: dict[str, Any]) -> exceptions.APIException:
    """:returns: the SDK's error for a GET answered 400 with the JSON ``body``."""
    mock.add("GET", ACC + "/bad", status=400, json=body)
    with Account(token=TOKEN) as account:
        with pytest.raises(exceptions.APIException) as info:
            account.get("bad")
    return info.value


@pytest.mark.parametrize("label", sorted(ECHO_SECRETS))
def test_error_body_echoing_a_secret_is_redacted_in_logs(
    mock: responses.RequestsMock, all_logs: RecordAll, label: str
) -> None:
    body = {"message": "rejected: " + ECHO_SECRETS[label], "error_code": "x", "id": "RID"}
    error = _error_for(mock, body)
    from kloudless.util import logger

    logger.debug("failed: %s / %r", error, error)
    logger.warning("failed: %s", error.message)
    assert len(all_logs.records) >= 3
    for secret in (TOKEN, API_KEY, "oauth-code-SECRET-123"):
        assert secret not in all_logs.text


def test_error_body_with_secret_fields_is_redacted_in_logs(
    mock: responses.RequestsMock, all_logs: RecordAll
) -> None:
    fields = {"code": "c0de-SECRET-1", "client_secret": "cs-SECRET-2", "state": "st-SECRET-3"}
    error = _error_for(mock, dict(fields, access_token="at-SECRET-4"))
    from kloudless.util import logger

    logger.debug("failed: %s / %r", error, error)
    assert "[REDACTED]" in all_logs.text
    for secret in [*fields.values(), "at-SECRET-4"]:
        assert secret not in all_logs.text


def test_error_body_with_nested_json_secret_is_redacted_in_logs(
    mock: responses.RequestsMock, all_logs: RecordAll
) -> None:
    inner = json.dumps({"access_token": "nested-SECRET-abcdef"})
    error = _error_for(mock, {"message": "upstream said " + inner})
    from kloudless.util import logger

    logger.debug("failed: %s", error)
    assert "upstream said" in all_logs.text
    assert "nested-SECRET-abcdef" not in all_logs.text


@pytest.mark.parametrize("label", sorted(ECHO_SECRETS))
def test_logged_traceback_of_an_error_echoing_a_secret_is_redacted(
    mock: responses.RequestsMock, all_logs: RecordAll, label: str
) -> None:
    body = {"message": "rejected: " + ECHO_SECRETS[label], "error_code": "x", "id": "RID"}
    mock.add("GET", ACC + "/bad", status=400, json=body)
    from kloudless.util import logger

    with Account(token=TOKEN) as account:
        try:
            account.get("bad")
        except exceptions.APIException:
            logger.exception("request failed")
    assert "Traceback" in all_logs.text
    for secret in (TOKEN, API_KEY, "oauth-code-SECRET-123"):
        assert secret not in all_logs.text


@pytest.mark.parametrize("label", sorted(ECHO_SECRETS))
def test_error_body_echoing_a_secret_is_redacted_in_the_exception(
    mock: responses.RequestsMock, label: str
) -> None:
    body = {"message": "rejected: " + ECHO_SECRETS[label], "error_code": "x", "id": "RID"}
    mock.add("GET", ACC + "/bad", status=400, json=body)
    with Account(token=TOKEN) as account:
        with pytest.raises(exceptions.APIException) as info:
            account.get("bad")
    shown = str(info.value) + repr(info.value) + info.value.message
    for secret in (TOKEN, API_KEY, "oauth-code-SECRET-123"):
        assert secret not in shown


def test_sdk_never_puts_credentials_in_urls(mock: responses.RequestsMock) -> None:
    mock.add("POST", API + "/oauth/token", json={"access_token": TOKEN, "token_type": "Bearer"})
    mock.add("GET", API + "/oauth/token", json={"client_id": "APP", "account_id": 1})
    mock.add("GET", ACC + "/storage/quota", json={"id": "quota"})
    code = "code-SECRET-42"
    token = get_token_from_code(
        "APP", API_KEY, "S-123456", "http://localhost:8020/cb", code=code, state="S-123456"
    )
    verify_token("APP", token)
    with Account(token=token) as account:
        account.get("storage/quota")
    assert len(mock.calls) == 3
    for call in mock.calls:
        for secret in (TOKEN, API_KEY, code):
            assert secret not in str(call.request.url)
    exchange = mock.calls[0].request
    assert parse_qs(str(exchange.body))["code"] == [code]


# -- webhooks ------------------------------------------------------------------------------------
KEY = "whk-current-0123456789"
OLD = "whk-previous-9876543210"
BODY = b"account=42"


def _sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize(
    "tampered",
    [b"account=43", b"account=42 ", b"account=42&account=1", b"", b"ACCOUNT=42", b"account=4"],
)
def test_tampered_body_is_rejected(tampered: bytes) -> None:
    signature = _sign(BODY, KEY)
    assert webhooks.verify_signature(BODY, signature, KEY)
    assert not webhooks.verify_signature(tampered, signature, KEY)
    with pytest.raises(webhooks.InvalidSignature) as info:
        webhooks.verify_webhook(tampered, signature, KEY)
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "not base64!!",
        _sign(BODY, KEY)[:-4],
        _sign(BODY, KEY) + "AAAA",
        base64.b64encode(b"\x00" * 32).decode(),
        _sign(BODY, "wrong-key-000000"),
        base64.b64encode(hmac.new(KEY.encode(), BODY, hashlib.sha1).digest()).decode(),
        hmac.new(KEY.encode(), BODY, hashlib.sha256).hexdigest(),
    ],
)
def test_wrong_or_malformed_signatures_are_rejected(signature: str | None) -> None:
    assert webhooks.verify_signature(BODY, signature, KEY) is False


def test_key_rotation_and_every_key_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[int] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append(1)
        return real(a, b)

    monkeypatch.setattr(webhooks.hmac, "compare_digest", spy)
    assert webhooks.verify_signature(BODY, _sign(BODY, OLD), [KEY, OLD])
    assert webhooks.verify_signature(BODY, _sign(BODY, KEY), [KEY, OLD])
    assert not webhooks.verify_signature(BODY, _sign(BODY, "third-key-000"), [KEY, OLD])
    # Constant time: no early exit, every key goes through compare_digest every time.
    assert len(compared) == 6


@pytest.mark.parametrize("body", ["account=42", {"account": "42"}, ["account=42"], 42, None])
def test_non_bytes_body_is_a_clear_type_error(body: Any) -> None:
    with pytest.raises(TypeError, match="raw request body as bytes"):
        webhooks.verify_signature(body, _sign(BODY, KEY), KEY)
    with pytest.raises(TypeError, match="raw request body as bytes"):
        webhooks.verify_webhook(body, _sign(BODY, KEY), KEY)


def test_empty_key_list_is_refused() -> None:
    with pytest.raises(ValueError):
        webhooks.verify_signature(BODY, _sign(BODY, KEY), [])
    with pytest.raises(ValueError):
        webhooks.verify_signature(BODY, _sign(BODY, ""), "")


# -- downloads stay in their folder --------------------------------------------------------------
HOSTILE_NAMES = [
    "../../etc/passwd",
    "/etc/passwd",
    "..\\..\\windows\\system32\\evil.dll",
    "C:\\Windows\\win.ini",
    "C:evil.txt",
    "\\\\server\\share\\x.txt",
    "nul\x00.txt",
    "a\x00/../../b",
    "CON",
    "aux.txt",
    "LPT1",
    "..",
    ".",
    "",
    "....//....//x",
    "dir/../../../../x",
    "invoice\u202etxt.exe",
    "\u2025\u2025\u2215x",
    "x" * 1000,
    "\r\n\t",
]


def _tree(path: Any) -> set[str]:
    found = set()
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(root, name), path))
    return found


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_download_under_a_hostile_name_stays_in_the_folder(
    mock: responses.RequestsMock, tmp_path: Any, name: str
) -> None:
    target = tmp_path / "box" / "inner"
    target.mkdir(parents=True)
    before = _tree(tmp_path)
    meta = {"id": "F1", "type": "file", "api": "storage", "name": name, "size": 4}
    mock.add("GET", ACC + "/storage/files/F1", json=meta)
    mock.add("GET", ACC + "/storage/files/F1/contents", body=b"data")
    with Account(token=TOKEN) as account:
        saved = account.get("storage/files/F1").download(str(target))
    assert os.path.dirname(os.path.abspath(saved)) == str(target)
    assert _read(saved) == b"data"
    added = _tree(tmp_path) - before
    assert added == {os.path.relpath(saved, tmp_path)}
    base = os.path.basename(saved)
    assert base not in ("", ".", "..") and "\x00" not in base and len(base.encode()) <= 255
    assert safe_join(str(target), name) == saved


def test_download_replaces_a_planted_symlink_instead_of_writing_through_it(
    mock: responses.RequestsMock, tmp_path: Any
) -> None:
    outside = tmp_path / "precious"
    outside.write_bytes(b"keep me")
    folder = tmp_path / "downloads"
    folder.mkdir()
    os.symlink(outside, folder / "passwd")
    meta = {"id": "F1", "type": "file", "api": "storage", "name": "../../passwd", "size": 4}
    mock.add("GET", ACC + "/storage/files/F1", json=meta)
    mock.add("GET", ACC + "/storage/files/F1/contents", body=b"evil")
    with Account(token=TOKEN) as account:
        saved = account.get("storage/files/F1").download(str(folder))
    assert saved == str(folder / "passwd")
    assert outside.read_bytes() == b"keep me"
    assert not os.path.islink(saved) and _read(saved) == b"evil"


def test_authorization_url_carries_no_credentials() -> None:
    url, state = get_authorization_url("APP", "http://localhost:8020/cb")
    query = parse_qs(urlsplit(url).query)
    assert set(query) >= {"client_id", "redirect_uri", "state", "response_type"}
    assert not {"client_secret", "api_key", "access_token", "token"} & set(query)
    assert len(state) >= 16 and query["state"] == [state]
    assert urlencode({"state": state}) in url
