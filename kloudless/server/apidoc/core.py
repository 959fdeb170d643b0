"""Descriptions of the core routes: accounts, tasks, OAuth, public pages, and the Kloudless
endpoints this server answers 501 for."""

from __future__ import annotations

from .model import Op, Reply, Schema, bool_param, form, json, listing, obj, query

__all__ = ["OPERATIONS"]

STRING: Schema = {"type": "string"}
ACC = "/accounts/<account_id>"
OBJECT: Schema = {"type": "object"}
HTML = {"text/html": {"type": "string"}}
ACCOUNT_FIELDS: dict[str, Schema] = {
    "account": STRING,
    "active": {"type": "boolean"},
    "enabled": {"type": "boolean"},
    "admin": {"type": "boolean"},
    "custom_properties": {"type": "object"},
}


def _unsupported(what: str) -> Op:
    return Op(
        f"{what} (not supported)",
        {501: Reply.of(f"{what}: not supported by this server.", "Error")},
        description="Known to the Kloudless API; this server answers 501 ``not_implemented``.",
        example={"object_id": "$FILE_ID", "rest": "opportunities"},
    )


OPERATIONS: dict[str, Op] = {
    "GET /accounts": Op(
        "List accounts",
        {200: Reply.of("The caller's accounts.", listing("Account"))},
        params=(
            query("search", "Only accounts whose name contains this text."),
            bool_param("active", "Filter by ``active``."),
            bool_param("enabled", "Filter by ``enabled``."),
            bool_param("admin", "Filter by ``admin``."),
        ),
        paged=True,
    ),
    "POST /accounts": Op(
        "Connect an account (API key)",
        {201: Reply.of("The new account.", "Account")},
        description=(
            "``service`` (``local`` by default) and its settings: ``url``, ``username``, "
            "``password`` for WebDAV/CalDAV/CardDAV; ``token``/``token_secret``/"
            "``refresh_token`` import credentials untried."
        ),
        body=json(
            obj(service=STRING, **ACCOUNT_FIELDS),
            "The service, its settings and the account's fields.",
            required=False,
            example={"service": "local", "account": "alice"},
        ),
        errors=(502,),
        credential="APIKey",
    ),
    f"GET {ACC}": Op(
        "Get an account",
        {200: Reply.of("The account.", "Account")},
        params=(
            bool_param("retrieve_full", "Add ``properties`` (the capabilities)."),
            bool_param("retrieve_tokens", "Accepted; tokens are never returned."),
        ),
    ),
    f"PATCH {ACC}": Op(
        "Change an account",
        {200: Reply.of("The account.", "Account")},
        body=json(obj(**ACCOUNT_FIELDS), example={"custom_properties": {"team": "blue"}}),
    ),
    f"DELETE {ACC}": Op(
        "Delete an account",
        {204: Reply("Deleted, with its local data.")},
        example={"account_id": "$SPARE_ID"},
        credential="APIKey",
    ),
    f"GET {ACC}/tasks/<task_id>": Op(
        "Get a background task",
        {200: Reply.of("The task while it runs, then the work's own answer.", "Task")},
        description="A finished task answers what the work answered (status and body).",
        example={"task_id": "$TASK_ID"},
    ),
    "GET /oauth": Op(
        "The consent page",
        {200: Reply("The consent page (HTML).", HTML)},
        params=(
            query("client_id", "The application id.", required=True, example="$KLOUDLESS_APP_ID"),
            query(
                "redirect_uri",
                "Where to send the person back.",
                required=True,
                example="http://127.0.0.1/cb",
            ),
            query("response_type", "``code`` (default) or ``token``.", {"enum": ["code", "token"]}),
            query("scope", "What the application asks for (``all`` by default)."),
            query("state", "Returned unchanged to ``redirect_uri``."),
        ),
        errors=(400, 403),
    ),
    "GET /oauth/callback": Op(
        "Return from a provider's sign-in",
        {
            302: Reply(
                "Back to the application's ``redirect_uri`` with a code, a token or an error."
            ),
            200: Reply("A page (the popup flow, or a sign-in that cannot go on).", HTML),
        },
        params=(
            query(
                "state", "The sign-in this return belongs to (set by the server).", required=True
            ),
            query("code", "The provider's authorization code."),
            query("error", "The provider's OAuth error (the person denied access, ...)."),
        ),
        errors=(400, 403),
        runnable=False,
    ),
    "POST /oauth": Op(
        "Submit the consent page",
        {
            302: Reply("Back to ``redirect_uri`` with a code, a token or an error."),
            200: Reply("A page (the popup flow, or the form shown again).", HTML),
        },
        body=form(obj(decision={"enum": ["allow", "deny"]}, csrf_token=STRING)),
        errors=(400, 403),
        runnable=False,
    ),
    "POST /oauth/token": Op(
        "Exchange an authorization code for a token",
        {200: Reply.of("The Bearer token.", "AccessToken")},
        body=form(
            obj(
                ("code", "client_id", "client_secret", "redirect_uri"),
                grant_type={"const": "authorization_code"},
                code=STRING,
                client_id=STRING,
                client_secret=STRING,
                redirect_uri=STRING,
            )
        ),
        errors=(400, 401, 429),
        runnable=False,
    ),
    "GET /oauth/token": Op(
        "Check a Bearer token",
        {200: Reply.of("Whose token it is.", "TokenInfo")},
        description="Send the token as ``Authorization: Bearer TOKEN``.",
        credential="Bearer",
        errors=(400, 429),
    ),
    "GET /public/services": Op(
        "The services this server connects to",
        {200: Reply.of("The services.", listing("Service"))},
        paged=True,
    ),
    "GET /openapi.json": Op(
        "This description (OpenAPI 3.1)",
        {200: Reply("The OpenAPI document of every route.", {"application/json": OBJECT})},
    ),
    "GET /": Op("The server's home page", {200: Reply("What this server is (HTML).", HTML)}),
    "GET /static/<name>": Op(
        "The pages' static files",
        {
            200: Reply(
                "The file (CSS, JavaScript).", {"text/css": STRING, "text/javascript": STRING}
            )
        },
        example={"name": "kloudless.css"},
    ),
    f"GET {ACC}/storage/files/<object_id>/thumbnail": _unsupported("Thumbnails"),
    **{
        f"{method} {ACC}/storage/{kind}/<object_id>/permissions": _unsupported("Permissions")
        for kind in ("files", "folders")
        for method in ("GET", "PUT", "PATCH")
    },
    **{
        f"{method} {ACC}/storage/files/<object_id>/properties": _unsupported("Properties")
        for method in ("GET", "PATCH", "DELETE")
    },
    f"POST {ACC}/storage/files/upload_url": _unsupported("Upload URLs"),
    **{
        f"{method} {ACC}/crm/<path:rest>": _unsupported("Other CRM objects")
        for method in ("GET", "POST", "PATCH", "DELETE")
    },
}
