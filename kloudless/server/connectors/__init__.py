"""Connectors: per-service backends (storage, calendar, pass-through) behind the API."""
