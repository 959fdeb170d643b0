"""OAuth redirect rules (issue #25, finding 5).

The attacks: while an application had no registered redirect URI, the code flow accepted any
scheme (``302 Location: javascript:...?code=...``) and Deny redirected to any URI (an open
redirect for phishing)."""

from __future__ import annotations

import json
import re

import pytest
from werkzeug.test import Client, TestResponse

from kloudless.server.app import ServerApp
from kloudless.server.bootstrap import Credentials
from kloudless.server.redirect_uris import is_loopback, problem

HOSTILE = [
    "javascript:alert(document.domain)//",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "blob:https://example.com/uuid",
    "https://evil.example/phish",
    "http://evil.example:8020/callback",
    "//evil.example/cb",
]


def params(creds: Credentials, uri: str, response_type: str = "code") -> dict[str, str]:
    return {
        "client_id": creds.app_id,
        "response_type": response_type,
        "redirect_uri": uri,
        "scope": "storage",
        "state": "s",
    }


def allow(client: Client, creds: Credentials, uri: str, response_type: str) -> TestResponse:
    query = params(creds, uri, response_type)
    page = client.get("/v1/oauth", query_string=query)
    assert page.status_code == 200, page.get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.get_data(as_text=True))
    assert csrf is not None
    form = dict(query, csrf_token=csrf.group(1), decision="allow")
    return client.post("/v1/oauth", data=dict(form, account_id="new"))


def refused(response: TestResponse) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "Location" not in response.headers
    assert response.get_json()["error_code"] == "invalid_parameters"


@pytest.mark.parametrize("uri", HOSTILE)
@pytest.mark.parametrize("response_type", ["code", "token"])
def test_unregistered_hostile_redirects_get_an_error_page(
    world: tuple[ServerApp, Client, Credentials], uri: str, response_type: str
) -> None:
    _, client, creds = world
    refused(client.get("/v1/oauth", query_string=params(creds, uri, response_type)))
    # Allow and Deny posts (no CSRF needed to be refused: the redirect is checked first).
    for decision in ("allow", "deny"):
        form = dict(params(creds, uri, response_type), decision=decision, account_id="1")
        refused(client.post("/v1/oauth", data=form))


@pytest.mark.parametrize(
    "uri",
    ["http://localhost:8020/cb", "http://127.0.0.1/cb", "http://127.0.0.2:9/", "http://[::1]/"],
)
def test_loopback_redirects_work_without_registration(
    world: tuple[ServerApp, Client, Credentials], uri: str
) -> None:
    _, client, creds = world
    for response_type in ("code", "token"):
        done = allow(client, creds, uri, response_type)
        assert done.status_code == 302 and done.headers["Location"].startswith(uri)


def test_registered_app_schemes_work_and_deny_goes_only_there(
    world: tuple[ServerApp, Client, Credentials],
) -> None:
    app, client, creds = world
    registered = [
        "com.example.app:/oauth",
        "ktester://kloudless/callback",
        "https://app.example/cb",
    ]
    app.store.execute("UPDATE apps SET redirect_uris = ?", (json.dumps(registered),))
    for uri in registered:
        done = allow(client, creds, uri, "code")
        assert done.status_code == 302 and done.headers["Location"].startswith(uri + "?code=")
    refused(client.get("/v1/oauth", query_string=params(creds, "https://evil.example/")))
    refused(client.get("/v1/oauth", query_string=params(creds, "http://localhost:8020/cb")))
    deny = dict(params(creds, "https://evil.example/"), decision="deny")
    refused(client.post("/v1/oauth", data=deny))


def test_a_registered_javascript_uri_is_still_refused(
    world: tuple[ServerApp, Client, Credentials],
) -> None:
    app, client, creds = world
    uri = "javascript:alert(1)"  # registered before these rules, say
    app.store.execute("UPDATE apps SET redirect_uris = ?", (json.dumps([uri]),))
    refused(client.get("/v1/oauth", query_string=params(creds, uri)))


def test_the_command_line_refuses_hostile_registrations(
    world: tuple[ServerApp, Client, Credentials], capsys: pytest.CaptureFixture[str]
) -> None:
    from kloudless.cli import main

    app, _, _ = world
    data = ["--data-dir", app.settings.data_dir]
    for uri in ("javascript:alert(1)", "data:text/html,x", "https://x.example/#frag"):
        assert main(["apps", "redirect-uri", "add", uri, *data]) == 2
        assert "redirect_uri" in capsys.readouterr().err
    assert main(["apps", "redirect-uri", "add", "com.example.app:/oauth", *data]) == 0
    assert main(["apps", "redirect-uri", "list", *data]) == 0
    assert capsys.readouterr().out.split()[-1] == "com.example.app:/oauth"


@pytest.mark.parametrize(
    ("uri", "word"),
    [
        ("", "absolute"),
        ("x" * 2001, "absolute"),
        ("javascript:alert(1)", "javascript"),
        (" javascript:alert(1)", "spaces"),
        ("java\tscript:alert(1)", "spaces"),
        ("https://a.example/\n", "spaces"),
        ("https://a.example/cb#x", "fragment"),
        ("https://user:pw@a.example/cb", "user name"),
        ("https:///cb", "host"),
        ("https://a.example:99999/", "valid"),
        ("/relative/cb", "scheme"),
        ("1http://a.example/", "scheme"),
    ],
)
def test_problem_rules(uri: str, word: str) -> None:
    reason = problem(uri)
    assert reason is not None and word in reason


@pytest.mark.parametrize(
    "uri",
    ["https://app.example/cb?x=1", "com.example.app:/oauth", "urn:ietf:wg:oauth:2.0:oob"],
)
def test_acceptable_uris(uri: str) -> None:
    assert problem(uri) is None


def test_loopback_rule() -> None:
    assert is_loopback("http://LOCALHOST./cb") and is_loopback("https://127.9.9.9:1/")
    assert is_loopback("http://[::1]:8020/")
    assert not is_loopback("http://localhost.evil.example/")
    assert not is_loopback("http://127.0.0.1.nip.io/")
    assert not is_loopback("com.example.app://localhost/cb")
