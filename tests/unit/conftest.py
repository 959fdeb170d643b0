"""Shared fixtures of the SDK unit tests: a clean configuration with instant retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from kloudless import config

BASE = "http://localhost:8002"
API = BASE + "/v1"
ACCOUNT = API + "/accounts/me"


@pytest.fixture(autouse=True)
def clean_configuration() -> Iterator[None]:
    """Every test starts from the defaults, with zero backoff so retries are instant."""
    saved = dict(config.configuration)
    config.configuration.clear()
    config.configuration.update(config.DEFAULTS)
    config.configuration.update(base_url=BASE, backoff_factor=0, backoff_jitter=0)
    yield
    config.configuration.clear()
    config.configuration.update(saved)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """A ``responses`` mock where every registered response must be used."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def loose() -> Iterator[responses.RequestsMock]:
    """A ``responses`` mock that does not require every response to be used."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
