"""The consent page in a real browser: the whole flow from an application's authorize URL to
its redirect, the default rule for existing accounts, the WebDAV form, denial, expired and
changed requests, keyboard-only use, an axe-core accessibility check, no secret in any page or
URL, and the screenshots of the authentication guide (``docs/_static/screenshots``)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from kloudless.server import invitations

from .conftest import (
    ACTION_TIMEOUT_MS,
    BROWSER_ARGS,
    SCREENSHOTS,
    AppSite,
    Live,
    find_browser,
)

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def authorize_url(live: Live, site: AppSite, **params: str) -> str:
    query = {
        "client_id": live.creds.app_id,
        "response_type": "code",
        "redirect_uri": site.url("/cb"),
        "scope": "storage",
        "state": "st-123",
    }
    query.update(params)
    return f"{live.base_url}/v1/oauth?{urlencode(query)}"


def redirected(page: Any, site: AppSite) -> dict[str, list[str]]:
    """Wait for the redirect to the application; :returns: its query (or fragment)."""
    page.wait_for_url(site.url("/cb") + "*")
    parts = urlsplit(page.url)
    return parse_qs(parts.query or parts.fragment)


def exchange(live: Live, site: AppSite, code: str) -> dict[str, Any]:
    answer = requests.post(
        live.base_url + "/v1/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": site.url("/cb"),
            "client_id": live.creds.app_id,
            "client_secret": live.creds.api_key,
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def account_of(live: Live, token: str) -> dict[str, Any]:
    me = requests.get(
        live.base_url + "/v1/accounts/me", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert me.status_code == 200, me.text
    body: dict[str, Any] = me.json()
    return body


def shoot(page: Any, name: str) -> None:
    """Write the page at desktop and phone widths into the docs' screenshots folder."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        path = SCREENSHOTS / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
        assert path.stat().st_size > 5000  # a real picture, not an empty page
    page.set_viewport_size(DESKTOP)


def serious_violations(page: Any) -> list[str]:
    """:returns: axe-core's serious and critical findings on the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def count_accounts(live: Live) -> int:
    return len(live.store.list_accounts())


def test_new_local_account_from_authorize_url_to_code(
    page: Any, live: Live, app_site: AppSite
) -> None:
    page.goto(authorize_url(live, app_site))
    assert page.title() == "Connect an account to Local application"
    heading = page.get_by_role("heading", level=1)
    assert heading.inner_text() == "Local application wants to connect to your account"
    assert page.get_by_text("See, add, change and delete your files and folders").is_visible()
    assert page.get_by_label("A new account on this server").is_checked()
    shoot(page, "consent-local")
    page.get_by_label("Account name").fill("Alice's files")
    page.get_by_role("button", name="Allow access").click()
    query = redirected(page, app_site)
    assert query["state"] == ["st-123"]
    token = exchange(live, app_site, query["code"][0])
    assert account_of(live, token["access_token"])["account"] == "Alice's files"


def test_existing_account_needs_an_invitation(page: Any, live: Live, app_site: AppSite) -> None:
    """The attack of issue #24 in a browser, and the invited owner's way in."""
    url = authorize_url(live, app_site, response_type="token", redirect_uri=app_site.url("/cb"))
    # The app's site is a loopback address, so the token flow may redirect there.
    page.goto(url)
    assert page.locator(f'input[name="account_id"][value="{live.creds.account_id}"]').count() == 0
    # Forge the old choice into the form, as an attacker would, and press Allow.
    page.evaluate(
        """id => {
            const radio = document.querySelector('input[name="account_id"]');
            radio.value = String(id); radio.checked = true;
        }""",
        live.creds.account_id,
    )
    page.get_by_role("button", name="Allow access").click()
    page.wait_for_load_state()
    assert page.url.startswith(live.base_url) and "access_token" not in page.url
    assert "invitation code" in page.inner_text("main")
    assert not any("/cb" in r for r in app_site.requests)

    code = invitations.create(live.store, live.creds.account_id)
    page.goto(url)
    page.get_by_label("An account I was invited to connect").check()
    page.get_by_label("Invitation code").fill(code)
    page.get_by_role("button", name="Allow access").click()
    fragment = redirected(page, app_site)
    assert fragment["account_id"] == [str(live.creds.account_id)]
    assert account_of(live, fragment["access_token"][0])["id"] == live.creds.account_id


@pytest.fixture
def webdav(tmp_path: Path) -> Any:
    from tests.dav.servers import PASSWORD, USERNAME, DavServer, ServerThread, webdav_app

    root = tmp_path / "webdav"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hi")
    runner = ServerThread(webdav_app(root))
    url = f"http://127.0.0.1:{runner.port}/dav/"
    runner.start(url, (USERNAME, PASSWORD))
    try:
        yield DavServer(url=url, username=USERNAME, password=PASSWORD, data_dir=root)
    finally:
        runner.stop()


def test_webdav_form_wrong_password_then_right(
    page: Any, live: Live, app_site: AppSite, webdav: Any
) -> None:
    extra = json.dumps({"domain": webdav.url})
    page.goto(authorize_url(live, app_site, scope="webdav.storage", extra_data=extra))
    assert page.get_by_label("Server URL").input_value() == webdav.url
    shoot(page, "consent-webdav")
    before = count_accounts(live)
    page.get_by_label("User name").fill(webdav.username)
    page.get_by_label("Password").fill("wrong-Passw0rd")
    page.get_by_role("button", name="Allow access").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "That did not work" in alert.inner_text()
    assert page.get_by_label("Password").input_value() == ""
    assert page.get_by_label("User name").input_value() == webdav.username
    assert "wrong-Passw0rd" not in page.content()
    assert count_accounts(live) == before
    shoot(page, "consent-error")

    page.get_by_label("Password").fill(webdav.password)
    page.get_by_role("button", name="Allow access").click()
    token = exchange(live, app_site, redirected(page, app_site)["code"][0])
    assert account_of(live, token["access_token"])["service"] == "webdav"
    assert count_accounts(live) == before + 1


def test_deny(page: Any, live: Live, app_site: AppSite) -> None:
    page.goto(authorize_url(live, app_site))
    page.get_by_role("button", name="Deny").click()
    query = redirected(page, app_site)
    assert query["error"] == ["access_denied"] and "code" not in query
    assert query["state"] == ["st-123"]


def test_expired_and_changed_requests(page: Any, live: Live, app_site: AppSite) -> None:
    page.goto(authorize_url(live, app_site))
    live.settings.oauth_page_ttl = -1
    try:
        page.get_by_role("button", name="Allow access").click()
        page.get_by_role("heading", name="This page has expired").wait_for()
    finally:
        live.settings.oauth_page_ttl = 3600
    shoot(page, "consent-expired")
    page.goto(authorize_url(live, app_site))
    page.evaluate(
        """url => { document.querySelector('input[name="redirect_uri"]').value = url; }""",
        app_site.url("/elsewhere"),
    )
    page.get_by_role("button", name="Allow access").click()
    page.wait_for_load_state()
    assert "changed after it was shown" in page.inner_text("main")
    assert not any(r.startswith(("/cb", "/elsewhere")) for r in app_site.requests)


def test_keyboard_only(page: Any, live: Live, app_site: AppSite) -> None:
    page.goto(authorize_url(live, app_site))
    focused = ""
    for _ in range(30):  # bounded: the field is a few Tab presses away
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
        if focused == "f-new":
            break
    assert focused == "f-new"
    page.keyboard.press("Control+A")
    page.keyboard.type("typed")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Allow access":
            break
    # The focused button shows a visible focus ring.
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    token = exchange(live, app_site, redirected(page, app_site)["code"][0])
    assert account_of(live, token["access_token"])["account"] == "typed"


def test_works_without_javascript(live: Live, app_site: AppSite) -> None:
    from playwright.sync_api import sync_playwright

    executable = find_browser()
    assert executable is not None
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=BROWSER_ARGS,
            java_script_enabled=False,
        )
        try:
            context.set_default_timeout(ACTION_TIMEOUT_MS)
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(authorize_url(live, app_site))
            page.get_by_role("button", name="Allow access").click()
            assert "code" in redirected(page, app_site)
        finally:
            context.close()


def test_accessibility(page: Any, live: Live, app_site: AppSite, webdav: Any) -> None:
    found: dict[str, list[str]] = {}
    page.goto(authorize_url(live, app_site))
    found["consent"] = serious_violations(page)
    page.goto(authorize_url(live, app_site, scope="webdav caldav"))
    page.get_by_role("button", name="Allow access").click()
    page.get_by_role("alert").wait_for()
    found["consent error"] = serious_violations(page)
    page.goto(f"{live.base_url}/v1/oauth?client_id=nope&redirect_uri=x")
    found["error page"] = serious_violations(page)
    page.goto(live.base_url + "/")
    found["home"] = serious_violations(page)
    assert found == {name: [] for name in found}


def test_no_secret_in_pages_or_urls(
    browser_context: Any, page: Any, live: Live, app_site: AppSite
) -> None:
    urls: list[str] = []
    bodies: list[str] = []
    browser_context.on("request", lambda r: urls.append(r.url))

    def keep(response: Any) -> None:
        if (
            response.url.startswith(live.base_url)
            and response.status < 300
            and "text/html" in (response.headers.get("content-type") or "")
        ):
            bodies.append(response.text())

    browser_context.on("response", keep)
    code = invitations.create(live.store, live.creds.account_id)
    url = authorize_url(live, app_site, response_type="token")
    page.goto(url)
    page.get_by_label("An account I was invited to connect").check()
    page.get_by_label("Invitation code").fill(code + "x")  # mistyped first
    page.get_by_role("button", name="Allow access").click()
    page.get_by_role("alert").wait_for()
    assert page.get_by_label("Invitation code").input_value() == ""
    page.get_by_label("Invitation code").fill(code)
    page.get_by_role("button", name="Allow access").click()
    fragment = redirected(page, app_site)
    token = fragment["access_token"][0]
    history = page.evaluate("history.length")
    assert history >= 2
    for secret in (code, code + "x", token):
        assert not any(secret in body for body in bodies), "a secret in a page of the server"
    for secret in (code, code + "x"):
        assert not any(secret in u for u in urls), "an invitation code in a URL"
    # The token travels only in the redirect's fragment, which no server receives.
    assert token in urlsplit(page.url).fragment
    assert not any(token in r for r in app_site.requests)
    assert not any(token in urlsplit(u).path + urlsplit(u).query for u in urls)


def test_home_page(page: Any, live: Live) -> None:
    page.goto(live.base_url + "/")
    assert page.get_by_role("heading", level=1).inner_text().startswith("This is a Kloudless")
    assert page.get_by_role("link", name="/v1/openapi.json").get_attribute("href") == (
        "/v1/openapi.json"
    )
    shoot(page, "home")
