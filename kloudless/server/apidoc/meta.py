"""Descriptions of the Meta API routes (the application itself, its trusted domains)."""

from __future__ import annotations

from .model import Op, Reply, json, listing, obj

__all__ = ["OPERATIONS"]

M = "/meta/applications"
APP = {"app_id": "$KLOUDLESS_APP_ID"}

STRING = {"type": "string"}
APP_FIELDS = obj(name=STRING, description={"type": ["string", "null"]})
MANAGED = {"app_id": "$SPARE_APP_ID"}
KEY = Reply.of("The API key (``key`` is the clear key only in this answer).", "ApiKey")
HOOK = Reply.of("The webhook.", "Webhook")

OPERATIONS: dict[str, Op] = {
    f"POST {M}": Op(
        "Create an application",
        {201: Reply.of("The new application (its first API key appears once).", "Application")},
        body=json(
            obj(("name",), name=STRING, description={"type": ["string", "null"]}),
            example={"name": "Second app"},
        ),
        credential="DeveloperKey",
    ),
    f"DELETE {M}/<app_id>": Op(
        "Delete an application",
        {204: Reply("Deleted, with its accounts.")},
        example=MANAGED,
        credential="DeveloperKey",
    ),
    "GET /meta/developers": Op(
        "List developers (the operator)",
        {200: Reply.of("The developers.", listing("Developer"))},
        paged=True,
    ),
    "GET /meta/developers/<developer_id>": Op(
        "Get a developer",
        {200: Reply.of("The developer.", "Developer")},
        example={"developer_id": "$DEVELOPER_ID"},
    ),
    "PATCH /meta/developers/<developer_id>": Op(
        "Change a developer",
        {200: Reply.of("The developer.", "Developer")},
        body=json(
            obj(first_name=STRING, last_name=STRING, email=STRING), example={"first_name": "Ada"}
        ),
        example={"developer_id": "$DEVELOPER_ID"},
    ),
    "GET /applications": Op(
        "List applications (management API)",
        {200: Reply.of("Every application of the developer.", listing("Application"))},
        paged=True,
    ),
    "POST /applications": Op(
        "Create an application (management API)",
        {201: Reply.of("The new application (its first API key appears once).", "Application")},
        body=json(
            obj(("name",), name=STRING, description={"type": ["string", "null"]}),
            example={"name": "Third app"},
        ),
    ),
    "GET /applications/<app_id>": Op(
        "Get an application (management API)",
        {200: Reply.of("The application.", "Application")},
        example={"app_id": "$KLOUDLESS_APP_ID"},
    ),
    "PATCH /applications/<app_id>": Op(
        "Change an application (management API)",
        {200: Reply.of("The application.", "Application")},
        body=json(APP_FIELDS, example={"description": "Managed"}),
        example={"app_id": "$KLOUDLESS_APP_ID"},
    ),
    "DELETE /applications/<app_id>": Op(
        "Delete an application (management API)",
        {204: Reply("Deleted, with its accounts.")},
        example=MANAGED,
    ),
    "GET /applications/<app_id>/apikeys": Op(
        "List an application's API keys",
        {200: Reply.of("The keys (ids only).", listing("ApiKey"))},
        paged=True,
        example={"app_id": "$KLOUDLESS_APP_ID"},
    ),
    "POST /applications/<app_id>/apikeys": Op(
        "Create an API key",
        {201: KEY},
        example={"app_id": "$KLOUDLESS_APP_ID"},
    ),
    "DELETE /applications/<app_id>/apikeys/<key>": Op(
        "Revoke an API key",
        {204: Reply("Revoked.")},
        example={"app_id": "$KLOUDLESS_APP_ID", "key": "$API_KEY_ID"},
    ),
    "GET /applications/<app_id>/webhooks": Op(
        "List an application's webhooks",
        {200: Reply.of("The webhook, if any.", listing("Webhook"))},
        paged=True,
        example={"app_id": "$KLOUDLESS_APP_ID"},
    ),
    "POST /applications/<app_id>/webhooks": Op(
        "Set the application's webhook",
        {201: HOOK, 200: Reply.of("The same webhook existed.", "Webhook")},
        body=json(
            obj(("url",), url=STRING, signing_key=STRING),
            example={"url": "https://hooks.example.com/kloudless"},
        ),
        errors=(502,),
        example={"app_id": "$KLOUDLESS_APP_ID"},
        runnable=False,
    ),
    "GET /applications/<app_id>/webhooks/<webhook_id>": Op(
        "Get the webhook",
        {200: HOOK},
        example={"app_id": "$KLOUDLESS_APP_ID", "webhook_id": "$WEBHOOK_ID"},
        runnable=False,
    ),
    "DELETE /applications/<app_id>/webhooks/<webhook_id>": Op(
        "Remove the webhook",
        {204: Reply("Removed.")},
        example={"app_id": "$KLOUDLESS_APP_ID", "webhook_id": "$WEBHOOK_ID"},
        runnable=False,
    ),
    f"GET {M}": Op(
        "List applications",
        {200: Reply.of("The caller's application.", listing("Application"))},
        paged=True,
    ),
    f"GET {M}/<app_id>": Op(
        "Get an application", {200: Reply.of("The application.", "Application")}, example=APP
    ),
    f"PATCH {M}/<app_id>": Op(
        "Change an application (webhook URL, signing key)",
        {200: Reply.of("The application; a new signing key appears once.", "Application")},
        body=json(
            obj(
                name={"type": "string"},
                description={"type": ["string", "null"]},
                webhook_url={"type": ["string", "null"]},
                webhook_signing_key={"type": "string"},
                rotate_webhook_signing_key={"type": "boolean"},
            ),
            example={"description": "Our app"},
        ),
        example=APP,
    ),
    f"GET {M}/<app_id>/trusted_domains": Op(
        "List trusted domains (CORS origins)",
        {200: Reply.of("The origins.", listing("TrustedDomain"))},
        paged=True,
        example=APP,
    ),
    f"POST {M}/<app_id>/trusted_domains": Op(
        "Trust an origin",
        {
            201: Reply.of("Added.", "TrustedDomain"),
            200: Reply.of("It was trusted already.", "TrustedDomain"),
        },
        body=json(
            obj(("domain",), domain={"type": "string"}),
            "An origin: ``https://app.example.com``.",
            example={"domain": "https://app.example.com"},
        ),
        example=APP,
    ),
    f"GET {M}/<app_id>/trusted_domains/<domain_id>": Op(
        "Get a trusted domain",
        {200: Reply.of("The origin.", "TrustedDomain")},
        example={**APP, "domain_id": "$DOMAIN_ID"},
    ),
    f"DELETE {M}/<app_id>/trusted_domains/<domain_id>": Op(
        "Stop trusting an origin",
        {204: Reply("Removed.")},
        example={**APP, "domain_id": "$DOMAIN_ID"},
    ),
}
