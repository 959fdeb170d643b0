"""A client resolves proxies, ``NO_PROXY`` and the CA bundle once, for its one origin.

Behaviour must be what ``requests`` does with ``trust_env`` at the time the client is created
(compared value by value, and over real loopback servers: a recording HTTP server that also acts
as a proxy, and an HTTPS server with a certificate from a throw-away CA), and environment changes
after that need a new client.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import trustme

from kloudless import Account
from kloudless.exceptions import ConnectionException
from tests.unit.threaded import serving

ENV_NAMES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "requests_ca_bundle",
    "curl_ca_bundle",
    "netrc",
)


class Recorder(ThreadingHTTPServer):
    """Answers every GET with a small JSON object and records the request target and headers."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str | None]] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"id": "root", "type": "folder", "target": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy, CA bundle or netrc variable from the machine running the tests."""
    for name in list(os.environ):
        if name.lower() in ENV_NAMES:
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    with serving(Recorder()) as server:
        yield server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_recorder(ca: trustme.CA) -> Iterator[Recorder]:
    server = Recorder()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with serving(server):
        yield server


@pytest.fixture
def dead_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _account(base_url: str) -> Account:
    return Account(token="env-test-token", base_url=base_url, max_retries=0, timeout=30)


@pytest.mark.parametrize(
    ("base_url", "env"),
    [
        ("http://api.example.com", {}),
        ("http://api.example.com", {"HTTP_PROXY": "http://proxy.example.com:3128"}),
        ("http://api.example.com", {"http_proxy": "http://lower.example.com:3128"}),
        ("https://api.example.com", {"HTTPS_PROXY": "http://proxy.example.com:3128"}),
        ("https://api.example.com", {"HTTP_PROXY": "http://only-http.example.com:3128"}),
        ("https://api.example.com", {"ALL_PROXY": "socks5://proxy.example.com:1080"}),
        (
            "https://api.example.com",
            {"HTTPS_PROXY": "http://p.example.com:1", "NO_PROXY": "example.com"},
        ),
        (
            "https://api.example.com",
            {"HTTPS_PROXY": "http://p.example.com:1", "NO_PROXY": "other.org,.example.com"},
        ),
        ("https://api.example.com:8443", {"HTTPS_PROXY": "http://p:1", "no_proxy": "*"}),
        (
            "https://api.example.com:8443",
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.example.com:8443"},
        ),
        ("https://api.example.com", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.example.org"}),
        ("https://10.1.2.3", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"}),
        ("https://api.example.com", {"REQUESTS_CA_BUNDLE": "/etc/ssl/custom.pem"}),
        ("https://api.example.com", {"CURL_CA_BUNDLE": "/etc/ssl/curl.pem"}),
        (
            "https://api.example.com",
            {"REQUESTS_CA_BUNDLE": "/etc/ssl/a.pem", "CURL_CA_BUNDLE": "/etc/ssl/b.pem"},
        ),
    ],
)
@pytest.mark.filterwarnings("ignore::kloudless.exceptions.InsecureBaseURLWarning")
def test_the_client_merges_the_same_settings_as_requests(
    monkeypatch: pytest.MonkeyPatch, base_url: str, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    account = _account(base_url)
    bare = requests.Session()
    for path in ("storage/folders/root", "storage/files/x/contents?a=1"):
        url = f"{account.url}/{path}"
        for verify in (None, True, False, "/explicit.pem"):
            ours = account.merge_environment_settings(url, {}, None, verify, None)
            theirs = bare.merge_environment_settings(url, {}, None, verify, None)
            assert ours == theirs, (url, verify)
    # Resolved once: what requests sees after a change is not what the client uses.
    monkeypatch.setenv("HTTPS_PROXY", "http://changed.example.com:9")
    monkeypatch.setenv("HTTP_PROXY", "http://changed.example.com:9")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/changed.pem")
    url = f"{account.url}/storage/folders/root"
    ours = account.merge_environment_settings(url, {}, None, None, None)
    assert "changed.example.com" not in str(ours["proxies"])
    assert ours["verify"] != "/changed.pem"
    assert _account(base_url).merge_environment_settings(url, {}, None, None, None) == (
        bare.merge_environment_settings(url, {}, None, None, None)
    )


def test_per_call_proxies_and_other_origins_take_the_requests_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    account = _account("https://api.example.com")
    monkeypatch.setenv("HTTPS_PROXY", "http://later.example.com:3128")
    elsewhere = "https://cdn.example.net/file"
    assert account.merge_environment_settings(elsewhere, {}, None, None, None)["proxies"] == {
        "https": "http://later.example.com:3128"
    }
    per_call = account.merge_environment_settings(
        f"{account.url}/x", {"https": "http://mine:1"}, None, None, None
    )
    assert per_call["proxies"]["https"] == "http://mine:1"
    # A URL that only starts like the origin is another origin.
    lookalike = "https://api.example.com.evil.org/v1/x"
    assert account.merge_environment_settings(lookalike, {}, None, None, None)["proxies"] == {
        "https": "http://later.example.com:3128"
    }


@pytest.mark.filterwarnings("ignore::kloudless.exceptions.InsecureBaseURLWarning")
def test_requests_go_through_the_proxy_named_when_the_client_was_created(
    monkeypatch: pytest.MonkeyPatch, recorder: Recorder, dead_port: int
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{recorder.port}")
    # .invalid never resolves: the request can only succeed through the proxy.
    account = _account("http://api.invalid:8080")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port}")
    recorder.seen.clear()
    response = account.get("storage/folders/root")
    assert response.data["id"] == "root"
    assert recorder.seen == [
        ("http://api.invalid:8080/v1/accounts/me/storage/folders/root", "Bearer env-test-token")
    ]
    with pytest.raises(ConnectionException):  # a new client reads the new (dead) proxy
        _account("http://api.invalid:8080").get("storage/folders/root")


def test_no_proxy_sends_the_requests_directly(
    monkeypatch: pytest.MonkeyPatch, recorder: Recorder, dead_port: int
) -> None:
    base_url = f"http://127.0.0.1:{recorder.port}"
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port}")
    with pytest.raises(ConnectionException):  # the proxy variable is honoured...
        _account(base_url).get("storage/folders/root")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    account = _account(base_url)
    monkeypatch.delenv("NO_PROXY")
    recorder.seen.clear()
    assert account.get("storage/folders/root").data["id"] == "root"  # ...unless NO_PROXY says so
    assert recorder.seen == [("/v1/accounts/me/storage/folders/root", "Bearer env-test-token")]


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_the_ca_bundle_variable_is_trusted(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    ca: trustme.CA,
    tls_recorder: Recorder,
    variable: str,
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    base_url = f"https://127.0.0.1:{tls_recorder.port}"
    without = _account(base_url)
    with pytest.raises(ConnectionException):  # the system store does not know the test CA
        without.get("storage/folders/root")
    monkeypatch.setenv(variable, str(bundle))
    with pytest.raises(ConnectionException):  # set after that client was created
        without.get("storage/folders/root")
    account = _account(base_url)
    monkeypatch.delenv(variable)
    assert account.get("storage/folders/root").data["id"] == "root"
    assert account.get("storage/folders/root", verify=False).data["id"] == "root"


def test_netrc_credentials_never_replace_the_clients_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, recorder: Recorder
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1\nlogin someone\npassword netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    base_url = f"http://127.0.0.1:{recorder.port}"
    recorder.seen.clear()
    requests.get(f"{base_url}/v1/storage/folders/root", timeout=30)  # requests reads the file...
    account = _account(base_url)
    account.get("storage/folders/root")  # ...the client sends its own credentials
    basic, ours = recorder.seen
    assert basic[1] is not None and basic[1].startswith("Basic ")
    assert ours == ("/v1/accounts/me/storage/folders/root", "Bearer env-test-token")
