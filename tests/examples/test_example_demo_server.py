"""examples/demo_server.py: the three-legged OAuth flow against the local server's consent page."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from example_helpers import consent

TIMEOUT = 10


def start_flow(browser: requests.Session, demo: Any, path: str = "/storage") -> str:
    """Visit the demo's start page; return the authorization URL it redirects to."""
    started = browser.get(demo.url + path, allow_redirects=False, timeout=TIMEOUT)
    assert started.status_code == 302
    assert started.headers["Cache-Control"].startswith("no-store")
    assert "kloudless_demo_session" in browser.cookies
    return started.headers["Location"]


def test_storage_flow(example_server: Any, creds: Any) -> None:
    demo = example_server("demo_server", [creds.app_id, creds.api_key, "--port", "0"], creds)
    with requests.Session() as browser:
        home = browser.get(demo.url + "/", timeout=TIMEOUT)
        assert home.status_code == 200 and "/storage" in home.text

        authorize = start_flow(browser, demo)
        assert authorize.startswith(creds.base_url + "/v1/oauth?")
        query = parse_qs(urlsplit(authorize).query)
        assert query["client_id"] == [creds.app_id] and query["scope"] == ["storage"]
        # The callback URL uses the host name the browser used.
        assert query["redirect_uri"] == [demo.url + "/callback"]

        callback = consent(browser, authorize)
        assert callback.startswith(query["redirect_uri"][0] + "?")
        result = browser.get(callback, timeout=TIMEOUT)
        assert result.status_code == 200, result.text
        data = result.json()
        assert data["msg"] == "Account connected."
        assert data["account"]["type"] == "account"
        assert isinstance(data["root_folder_contents"], list)
        assert "tok_" not in result.text  # the token is never shown

        # The state is good for one callback only.
        replay = browser.get(callback, timeout=TIMEOUT)
        assert replay.status_code == 400
        assert replay.json()["error"] == "no_pending_authorization"
    demo.stop()
    # Neither the code nor the state reach the log.
    code = parse_qs(urlsplit(callback).query)["code"][0]
    assert "/callback" in demo.stderr and code not in demo.stderr and "code=" not in demo.stderr


def test_calendar_flow_and_parallel_sessions(example_server: Any, creds: Any) -> None:
    demo = example_server("demo_server", [creds.app_id, creds.api_key, "--port", "0"], creds)
    with requests.Session() as alice, requests.Session() as bob:
        alice_url = start_flow(alice, demo, "/calendar")
        bob_url = start_flow(bob, demo, "/storage")
        # Bob finishes first; Alice's pending state is untouched by Bob's.
        bob_result = bob.get(consent(bob, bob_url), timeout=TIMEOUT)
        alice_result = alice.get(consent(alice, alice_url), timeout=TIMEOUT)
        assert bob_result.status_code == 200 and "root_folder_contents" in bob_result.json()
        assert alice_result.status_code == 200, alice_result.text
        assert isinstance(alice_result.json()["primary_calendar_events"], list)


def test_errors_are_answered_not_crashed(example_server: Any, creds: Any) -> None:
    demo = example_server("demo_server", [creds.app_id, creds.api_key, "--port", "0"], creds)
    with requests.Session() as browser:
        # The user denies access: OauthFlowFailed becomes a 400.
        denied = browser.get(consent(browser, start_flow(browser, demo), "deny"), timeout=TIMEOUT)
        assert denied.status_code == 400
        assert denied.json()["error"] == "oauth_flow_failed"
        assert "access_denied" in denied.json()["message"]

        # A forged state is refused.
        start_flow(browser, demo)
        forged = browser.get(demo.url + "/callback?code=abc&state=forged", timeout=TIMEOUT)
        assert forged.status_code == 400 and "state" in forged.json()["message"]

        # The right state with a made-up code: the API's error is passed on.
        authorize = start_flow(browser, demo)
        state = parse_qs(urlsplit(authorize).query)["state"][0]
        bad_code = browser.get(
            demo.url + f"/callback?code=not-a-code&state={state}", timeout=TIMEOUT
        )
        assert 400 <= bad_code.status_code < 500
        assert bad_code.json()["error"] and bad_code.json()["message"]

        # An error the SDK reports as KeyError (no error_description) is handled too.
        authorize = start_flow(browser, demo)
        state = parse_qs(urlsplit(authorize).query)["state"][0]
        odd = browser.get(demo.url + f"/callback?error=oops&state={state}", timeout=TIMEOUT)
        assert odd.status_code == 400

        # No session at all, as HTML for a browser.
        with requests.Session() as stranger:
            lost = stranger.get(
                demo.url + "/callback?code=x&state=y",
                headers={"Accept": "text/html"},
                timeout=TIMEOUT,
            )
        assert lost.status_code == 400 and lost.headers["Content-Type"].startswith("text/html")
        assert "no_pending_authorization" in lost.text

        assert browser.get(demo.url + "/nothing-here", timeout=TIMEOUT).status_code == 404
    # The server is still up after all that.
    assert requests.get(demo.url + "/", timeout=TIMEOUT).status_code == 200
    assert demo.process.poll() is None


def test_binds_loopback_only(example_server: Any, creds: Any) -> None:
    demo = example_server("demo_server", [creds.app_id, creds.api_key, "--port", "0"], creds)
    import psutil

    process = psutil.Process(demo.process.pid)
    # psutil >= 6 names it net_connections; 5.x has connections.
    connections = getattr(process, "net_connections", None) or process.connections
    listening = [c.laddr for c in connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
