"""Local stand-ins for a cloud provider, on loopback: an OAuth 2.0 authorization server built
on oauthlib's server classes (authorization code with PKCE, refresh tokens, optional refresh
token rotation, revocation), and an upstream API that checks the bearer token against it and
records every request.

They follow the published OAuth 2.0 (RFC 6749, RFC 7636) and provider API conventions the
server relies on; they are not the providers (see "Connecting cloud accounts").
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode

from oauthlib.oauth2 import RequestValidator, WebApplicationServer
from werkzeug.wrappers import Request, Response

from tests.dav.servers import ServerThread

from .graph_standin import GraphApp, GraphState

#: The Graph paths the calendar stand-in answers.
GRAPH_CALENDAR_PATHS = ("/v1.0/me/calendar",)

CLIENT_ID = "standin-client"
CLIENT_SECRET = "standin-client-secret-0123456789"
USER = {"id": "user-42", "email": "ada@example.com"}


@dataclass
class Grant:
    """What the authorization server issued for one user."""

    access: dict[str, float] = field(default_factory=dict)  # access token -> expiry
    refresh: set[str] = field(default_factory=set)
    #: access or refresh token -> the scopes granted with it
    scopes: dict[str, list[str]] = field(default_factory=dict)


class _Client:
    client_id = CLIENT_ID


class Validator(RequestValidator):  # type: ignore[misc]
    """oauthlib's validator over in-memory state: one confidential client, one user."""

    def __init__(self, state: AuthServerState) -> None:
        self.state = state

    # -- clients -------------------------------------------------------------------------------
    def client_authentication_required(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        return True

    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        ok = request.client_id == CLIENT_ID and request.client_secret == CLIENT_SECRET
        if ok:
            request.client = _Client()
        return ok

    def authenticate_client_id(self, client_id: str, request: Any, *a: Any, **k: Any) -> bool:
        return False

    def validate_client_id(self, client_id: str, request: Any, *a: Any, **k: Any) -> bool:
        return client_id == CLIENT_ID

    def validate_redirect_uri(
        self, client_id: str, uri: str, request: Any, *a: Any, **k: Any
    ) -> bool:
        return uri.endswith("/v1/oauth/callback")

    def get_default_redirect_uri(self, client_id: str, request: Any, *a: Any, **k: Any) -> None:
        return None

    def validate_response_type(
        self, client_id: str, rtype: str, client: Any, request: Any, *a: Any, **k: Any
    ) -> bool:
        return rtype == "code"

    def validate_scopes(
        self, client_id: str, scopes: Any, client: Any, request: Any, *a: Any, **k: Any
    ) -> bool:
        return True

    def get_default_scopes(self, client_id: str, request: Any, *a: Any, **k: Any) -> list[str]:
        return ["files"]

    def validate_grant_type(
        self, client_id: str, grant: str, client: Any, request: Any, *a: Any, **k: Any
    ) -> bool:
        return grant in ("authorization_code", "refresh_token")

    # -- codes and PKCE --------------------------------------------------------------------------
    def save_authorization_code(
        self, client_id: str, code: dict[str, Any], request: Any, *a: Any, **k: Any
    ) -> None:
        self.state.codes[code["code"]] = {
            "redirect_uri": request.redirect_uri,
            "scopes": request.scopes,
            "challenge": request.code_challenge,
            "method": request.code_challenge_method,
            "expires": time.time() + 60,
        }

    def validate_code(
        self, client_id: str, code: str, client: Any, request: Any, *a: Any, **k: Any
    ) -> bool:
        found = self.state.codes.get(code)
        if found is None or found["expires"] < time.time():
            return False
        request.user = USER["id"]
        request.scopes = found["scopes"]
        return True

    def confirm_redirect_uri(
        self, client_id: str, code: str, uri: str, client: Any, request: Any, *a: Any, **k: Any
    ) -> bool:
        found = self.state.codes.get(code)
        return found is not None and found["redirect_uri"] == uri

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: Any, *a: Any, **k: Any
    ) -> None:
        self.state.codes.pop(code, None)

    def is_pkce_required(self, client_id: str, request: Any) -> bool:
        return self.state.require_pkce

    def get_code_challenge(self, code: str, request: Any) -> str | None:
        found = self.state.codes.get(code)
        return found["challenge"] if found else None

    def get_code_challenge_method(self, code: str, request: Any) -> str | None:
        found = self.state.codes.get(code)
        return found["method"] if found else None

    def get_authorization_code_scopes(
        self, client_id: str, code: str, uri: str, request: Any
    ) -> list[str]:
        found = self.state.codes.get(code)
        return list(found["scopes"]) if found else []

    def get_authorization_code_nonce(
        self, client_id: str, code: str, uri: str, request: Any
    ) -> None:
        return None

    # -- tokens ------------------------------------------------------------------------------
    def save_bearer_token(self, token: dict[str, Any], request: Any, *a: Any, **k: Any) -> None:
        grant = self.state.grant
        grant.access[token["access_token"]] = time.time() + float(token.get("expires_in", 3600))
        granted = list(request.scopes or [])
        grant.scopes[token["access_token"]] = granted
        if "refresh_token" in token:
            if self.state.rotate and request.refresh_token:
                grant.refresh.discard(request.refresh_token)
            grant.refresh.add(token["refresh_token"])
            grant.scopes[token["refresh_token"]] = granted
        self.state.issued.append(request.grant_type)

    def validate_refresh_token(
        self, refresh_token: str, client: Any, request: Any, *a: Any, **k: Any
    ) -> bool:
        if refresh_token in self.state.grant.refresh:
            request.user = USER["id"]
            return True
        return False

    def get_original_scopes(self, refresh_token: str, request: Any, *a: Any, **k: Any) -> list[str]:
        return self.state.grant.scopes.get(refresh_token) or ["files"]

    def is_within_original_scope(
        self, scopes: Any, refresh_token: str, request: Any, *a: Any, **k: Any
    ) -> bool:
        return True

    def rotate_refresh_token(self, request: Any) -> bool:
        return self.state.rotate

    def validate_bearer_token(self, token: str, scopes: Any, request: Any) -> bool:
        expiry = self.state.grant.access.get(token or "")
        return self.state.accept_tokens and expiry is not None and expiry > time.time()


@dataclass
class AuthServerState:
    """The authorization server's state and the knobs tests turn."""

    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    grant: Grant = field(default_factory=Grant)
    issued: list[str] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    token_answers: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    require_pkce: bool = True
    rotate: bool = True
    expires_in: int = 3600
    #: False: the API refuses every token (a provider that keeps answering 401).
    accept_tokens: bool = True
    #: What /authorize does: "approve", or an OAuth error code to send back (access_denied).
    decision: str = "approve"
    #: Seconds /token waits before it answers (a slow provider: lets refreshes overlap).
    token_delay: float = 0.0

    def revoke(self) -> None:
        """The user revokes the application's access at the provider."""
        self.grant = Grant()

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (the provider's side of a 401)."""
        for token in self.grant.access:
            self.grant.access[token] = 0.0


def _url(request: Request) -> str:
    # The stand-in listens on plain loopback HTTP, as if behind a TLS-terminating proxy;
    # oauthlib's server classes insist on https URIs.
    return "https://" + request.url[len("http://") :]


def _headers(request: Request) -> dict[str, str]:
    return dict(request.headers.items())


def auth_server_app(state: AuthServerState) -> Callable[..., Any]:
    """:returns: the authorization server (``/authorize``, ``/token``) as a WSGI app."""
    server = WebApplicationServer(Validator(state), token_expires_in=lambda _r: state.expires_in)

    @Request.application  # type: ignore[misc]
    def app(request: Request) -> Response:
        try:
            return answer(request)
        except Exception as exc:  # a stand-in bug: say which, in the test's output
            state.failures.append(repr(exc))
            raise

    def answer(request: Request) -> Response:
        if request.path == "/authorize":
            if state.decision != "approve":
                uri = request.args.get("redirect_uri", "")
                query = {"error": state.decision, "state": request.args.get("state", "")}
                return Response(status=302, headers={"Location": f"{uri}?{urlencode(query)}"})
            scopes, _info = server.validate_authorization_request(
                _url(request), request.method, None, _headers(request)
            )
            headers, body, status = server.create_authorization_response(
                _url(request), request.method, None, _headers(request), scopes, {"user": USER["id"]}
            )
            return Response(body, status=status, headers=headers)
        if request.path == "/token" and request.method == "POST":
            body = request.get_data(as_text=True)
            state.token_requests.append(dict(request.form.items()))
            time.sleep(state.token_delay)
            headers, text, status = server.create_token_response(
                _url(request), "POST", body, _headers(request)
            )
            state.token_answers.append(text)
            return Response(text, status=status, headers=headers)
        return Response("not found", status=404)

    return app


@dataclass
class Recorded:
    """A request the upstream API received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


def upstream_app(
    state: AuthServerState, log: list[Recorded], graph: GraphApp | None = None
) -> Callable[..., Any]:
    """:returns: an upstream API: checks the bearer token with the authorization server's
    validator, records every request, answers the identity calls of each provider, echoes
    anything under ``/echo`` (JSON of what it received, or the raw body with ``/echo/raw``),
    and hands Microsoft Graph's calendar paths to ``graph`` (:mod:`.graph_standin`)."""
    validator = Validator(state)

    @Request.application  # type: ignore[misc]
    def app(request: Request) -> Response:
        body = request.get_data()
        log.append(
            Recorded(
                request.method, request.path, request.query_string.decode(), _headers(request), body
            )
        )
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not validator.validate_bearer_token(token, None, None):
            return Response(
                json.dumps({"error": "invalid_token"}),
                status=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                content_type="application/json",
            )
        identities = {
            "/drive/v3/about": {
                "user": {"permissionId": USER["id"], "emailAddress": USER["email"]}
            },
            "/v1.0/me": {"id": USER["id"], "mail": USER["email"]},
            "/v1.0/me/drive": {"id": "drive-7", "driveType": "business"},
            "/2/users/get_current_account": {"account_id": USER["id"], "email": USER["email"]},
            "/2.0/users/me": {"id": USER["id"], "login": USER["email"]},
        }
        if graph is not None and request.path.startswith(GRAPH_CALENDAR_PATHS):
            return graph.handle(request)
        if request.path in identities:
            return Response(json.dumps(identities[request.path]), content_type="application/json")
        if request.path.startswith("/echo/raw"):
            return Response(
                body,
                status=int(request.args.get("status", "200")),
                headers={"X-Upstream": "yes", "Connection": "close", "Set-Cookie": "a=1"},
                content_type=request.headers.get("Content-Type", "application/octet-stream"),
            )
        if request.path.startswith("/echo"):
            answer = {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode(),
                "headers": _headers(request),
                "length": len(body),
                "host": request.host,
            }
            return Response(
                json.dumps(answer),
                status=int(request.args.get("status", "200")),
                content_type="application/json",
                headers={"X-Upstream": "yes"},
            )
        return Response(
            json.dumps({"error": "not_found"}), status=404, content_type="application/json"
        )

    return app


class Provider:
    """A running stand-in provider: authorization server, API and content API on loopback."""

    def __init__(self) -> None:
        self.state = AuthServerState()
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self._auth = ServerThread(auth_server_app(self.state))
        self.graph = GraphApp(GraphState())
        self._api = ServerThread(upstream_app(self.state, self.requests, self.graph))
        self._content = ServerThread(upstream_app(self.state, self.requests))

    def start(self) -> Provider:
        self._auth.start(f"{self.auth_base}/ping", ("x", "y"))
        self._api.start(f"{self.api_base}/ping", ("x", "y"))
        self._content.start(f"{self.content_base}/ping", ("x", "y"))
        self.requests.clear()
        return self

    def stop(self) -> None:
        for server in (self._auth, self._api, self._content):
            server.stop()

    def reset(self) -> None:
        """A fresh provider state (between tests sharing the servers)."""
        fresh = AuthServerState()
        for name in fresh.__dataclass_fields__:
            setattr(self.state, name, getattr(fresh, name))
        self.graph.state = GraphState()
        self.requests.clear()

    @property
    def auth_base(self) -> str:
        return f"http://127.0.0.1:{self._auth.port}"

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._api.port}"

    @property
    def content_base(self) -> str:
        return f"http://127.0.0.1:{self._content.port}"

    def settings(self) -> dict[str, Any]:
        """:returns: the provider settings pointing the server at this stand-in."""
        return {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "auth_url": f"{self.auth_base}/authorize",
            "token_url": f"{self.auth_base}/token",
            "api_base": self.api_base,
            "content_base": self.content_base,
        }

    def secrets_seen(self) -> set[str]:
        """:returns: every token and secret of this provider (to look for leaks)."""
        values = {CLIENT_SECRET, *self.state.grant.access, *self.state.grant.refresh}
        values |= {r.get("code", "") for r in self.state.token_requests} - {""}
        values |= {r.get("refresh_token", "") for r in self.state.token_requests} - {""}
        return values
