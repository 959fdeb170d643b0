"""Names of the environment variables the client commands read their settings from."""

from __future__ import annotations

ENV_TOKEN = "KLOUDLESS_TOKEN"
ENV_API_KEY = "KLOUDLESS_API_KEY"
ENV_ACCOUNT = "KLOUDLESS_ACCOUNT_ID"
ENV_BASE_URL = "KLOUDLESS_BASE_URL"
