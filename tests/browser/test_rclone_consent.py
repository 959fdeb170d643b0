"""The consent page's SFTP form (an rclone service) in a real browser, against a real SFTP server
(``rclone serve sftp`` on loopback): a wrong password, then the right one, an axe-core check of
the form and of its error state, no secret in any page or URL, and the screenshot of the rclone
guide (``docs/_static/screenshots/consent-sftp-*.png``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rclone.servers import PASSWORD, USER, Upstream, Upstreams

from .conftest import AppSite, Live
from .test_consent_page import (
    account_of,
    authorize_url,
    count_accounts,
    exchange,
    redirected,
    serious_violations,
    shoot,
)


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[Upstream]:
    (tmp_path / "upstreams").mkdir()
    servers = Upstreams(tmp_path / "upstreams")
    try:
        yield servers.make("sftp")
    finally:
        servers.stop()


def test_sftp_form_wrong_password_then_right(
    browser_context: Any, page: Any, live: Live, app_site: AppSite, sftp: Upstream
) -> None:
    urls: list[str] = []
    bodies: list[str] = []
    browser_context.on("request", lambda r: urls.append(r.url))

    def keep(response: Any) -> None:
        if response.url.startswith(live.base_url) and "text/html" in (
            response.headers.get("content-type") or ""
        ):
            bodies.append(response.text())

    browser_context.on("response", keep)
    page.goto(authorize_url(live, app_site, scope="sftp"))
    assert page.get_by_label("Connect your SFTP server").is_checked()
    page.get_by_label("Server name or address").fill("127.0.0.1")
    page.get_by_label("Port (default 22)").fill(str(sftp.options["port"]))
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Folder (optional)").fill(sftp.path)
    shoot(page, "consent-sftp")
    violations = {"form": serious_violations(page)}
    before = count_accounts(live)

    page.get_by_label("Password", exact=True).fill("wrong-Passw0rd-88")
    page.get_by_role("button", name="Allow access").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Could not connect your SFTP server" in alert.inner_text()
    assert page.get_by_label("Password", exact=True).input_value() == ""
    assert page.get_by_label("User name").input_value() == USER
    assert count_accounts(live) == before
    violations["error"] = serious_violations(page)

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Allow access").click()
    token = exchange(live, app_site, redirected(page, app_site)["code"][0])
    account = account_of(live, token["access_token"])
    assert (account["service"], account["account"]) == ("sftp", f"{USER}@127.0.0.1")
    assert count_accounts(live) == before + 1
    assert violations == {"form": [], "error": []}
    for secret in (PASSWORD, "wrong-Passw0rd-88"):
        assert not any(secret in body for body in bodies), "a password in a page"
        assert not any(secret in url for url in urls), "a password in a URL"
