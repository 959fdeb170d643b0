"""The Kloudless Authenticator's popup flow in a real browser (issue #21).

A page on a second loopback origin (the application's site) runs a small script doing exactly
the Authenticator's steps: (1) open the consent page in a popup with
``redirect_uri=urn:ietf:wg:oauth:2.0:oob``, ``request_id`` and ``origin``; (2) receive
``"kloudless:" + JSON`` by ``postMessage``, checking the sender's origin and the state; (3) call
``GET /v1/oauth/token/`` and ``GET /v1/accounts/{id}/?retrieve_full=False`` from the page's
origin with ``Authorization`` and ``X-Kloudless-Source`` (CORS preflights included)."""

from __future__ import annotations

import json
from typing import Any

from kloudless.server import trusted_domains

from .conftest import AppSite, Live

PAGE = b"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>App</title></head>
<body><main><button id="connect">Connect</button><pre id="result"></pre></main>
<script src="/authenticator.js"></script></body></html>"""

# Steps 1-3 of the Authenticator, written out (BASE and APP_ID come from the page's query).
SCRIPT = b"""
(function () {
  var params = new URLSearchParams(location.search);
  var BASE = params.get("base"), APP_ID = params.get("app");
  var REQUEST_ID = "req-" + Math.random().toString(36).slice(2);
  window.received = [];
  var popup = null;
  function show(value) { document.getElementById("result").textContent = JSON.stringify(value); }
  document.getElementById("connect").addEventListener("click", function () {
    var query = new URLSearchParams({
      client_id: APP_ID, response_type: "token", redirect_uri: "urn:ietf:wg:oauth:2.0:oob",
      state: REQUEST_ID, request_id: REQUEST_ID, origin: location.origin, scope: "storage"
    });
    popup = window.open(BASE + "/v1/oauth?" + query.toString(), "kloudless",
                        "width=500,height=700");
  });
  window.addEventListener("message", function (event) {
    window.received.push({origin: event.origin, data: event.data});
    if (event.origin !== BASE || typeof event.data !== "string") return;
    if (event.data.indexOf("kloudless:") !== 0) return;
    var message = JSON.parse(event.data.slice("kloudless:".length));
    if (message.type !== "authentication" || message.id !== REQUEST_ID) return;
    var data = message.data;
    if (data.state !== REQUEST_ID) { show({error: "invalid_state"}); return; }
    if (popup) popup.close();
    if (data.error) { show(data); return; }
    var headers = {"Authorization": "Bearer " + data.access_token,
                   "X-Kloudless-Source": "authenticator"};
    fetch(BASE + "/v1/oauth/token/", {headers: headers}).then(function (r) { return r.json(); })
      .then(function (verified) {
        return fetch(BASE + "/v1/accounts/" + data.account_id + "/?retrieve_full=False",
                     {headers: headers}).then(function (r) { return r.json(); })
          .then(function (account) { show({data: data, verified: verified, account: account}); });
      })
      .catch(function (error) { show({fetch_error: String(error)}); });
  });
}());
"""


def _serve_app(site: AppSite) -> None:
    site.files["/app.html"] = ("text/html", PAGE)
    site.files["/authenticator.js"] = ("text/javascript", SCRIPT)


def _open_app(page: Any, live: Live, site: AppSite) -> None:
    page.goto(f"{site.url('/app.html')}?base={live.base_url}&app={live.creds.app_id}")


def _start_popup(context: Any, page: Any, live: Live, site: AppSite, trusted: bool) -> Any:
    """Serve the application's page, open it and press Connect. :returns: the popup."""
    _serve_app(site)
    if trusted:
        trusted_domains.add(live.store, live.creds.app_id, site.origin)
    _open_app(page, live, site)
    with context.expect_page() as opened:
        page.click("#connect")
    popup = opened.value
    popup.wait_for_load_state()
    return popup


def _result(page: Any) -> Any:
    page.wait_for_function("document.getElementById('result').textContent.length > 0")
    return json.loads(page.inner_text("#result"))


def test_popup_connects_a_local_account_and_hands_back_the_token(
    browser_context: Any, page: Any, live: Live, app_site: AppSite
) -> None:
    popup = _start_popup(browser_context, page, live, app_site, trusted=True)
    assert popup.url.startswith(live.base_url + "/v1/oauth?")
    popup.get_by_label("Account name").fill("from the popup")
    popup.get_by_role("button", name="Allow access").click()
    result = _result(page)
    assert "fetch_error" not in result, result
    data = result["data"]
    assert data["token_type"] == "Bearer" and data["scope"] == "storage"
    assert result["verified"]["client_id"] == live.creds.app_id
    assert result["verified"]["account_id"] == data["account_id"]
    assert result["account"]["id"] == data["account_id"]
    assert result["account"]["account"] == "from the popup"
    # The message came from the server's origin, and only one was sent.
    received = page.evaluate("window.received")
    assert [m["origin"] for m in received] == [live.base_url]
    assert received[0]["data"].startswith("kloudless:")


def test_denied_popup_sends_the_error(
    browser_context: Any, page: Any, live: Live, app_site: AppSite
) -> None:
    popup = _start_popup(browser_context, page, live, app_site, trusted=True)
    popup.get_by_role("button", name="Deny").click()
    assert _result(page)["error"] == "access_denied"


def test_untrusted_origin_receives_nothing(
    browser_context: Any, page: Any, live: Live, app_site: AppSite
) -> None:
    popup = _start_popup(browser_context, page, live, app_site, trusted=False)
    assert "is not a trusted domain" in popup.inner_text("main")
    assert popup.get_by_role("button", name="Allow access").count() == 0
    assert page.evaluate("window.received") == []
    assert live.store.one("SELECT COUNT(*) AS n FROM tokens")["n"] == 1  # the first-start one


def test_xhr_from_an_untrusted_origin_is_blocked(page: Any, live: Live, app_site: AppSite) -> None:
    _serve_app(app_site)
    _open_app(page, live, app_site)
    script = """([base, token]) => fetch(base + "/v1/accounts/me", {
        headers: {"Authorization": "Bearer " + token}
    }).then(r => "read " + r.status, e => "blocked: " + e.name)"""
    outcome = page.evaluate(script, [live.base_url, live.creds.token])
    assert outcome == "blocked: TypeError"
    # Once trusted, the same call from the same page can be read.
    trusted_domains.add(live.store, live.creds.app_id, app_site.origin)
    assert page.evaluate(script, [live.base_url, live.creds.token]) == "read 200"
