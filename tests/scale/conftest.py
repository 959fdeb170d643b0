"""Fixtures for the multi-process tests: real receivers on loopback (webhooks)."""

from tests.security.conftest import loopback  # noqa: F401 - the fixture, shared
