"""Descriptions of the Meta API routes (the application itself, its trusted domains)."""

from __future__ import annotations

from .model import Op, Reply, json, listing, obj

__all__ = ["OPERATIONS"]

M = "/meta/applications"
APP = {"app_id": "$KLOUDLESS_APP_ID"}

OPERATIONS: dict[str, Op] = {
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
