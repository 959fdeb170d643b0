"""kloudless.config and kloudless.util: configuration, URL joining, logger, redaction."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

import pytest

import kloudless
from kloudless import config, configuration, redaction, util
from kloudless.util import construct_kloudless_endpoint, is_loopback_host, redact, url_join


def test_configuration_is_the_config_dict() -> None:
    assert kloudless.configuration is config.configuration
    assert config.DEFAULTS["api_version"] == "1"
    assert config.DEFAULTS["base_url"] == "http://localhost:8002"
    assert config.DEFAULTS["timeout"] == (10, 60)
    assert config.DEFAULTS["max_retries"] == 3


def test_environment_sets_base_url() -> None:
    code = "import kloudless; print(kloudless.configuration['base_url'])"
    env = dict(os.environ, KLOUDLESS_BASE_URL="https://env.example")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "https://env.example"


def test_import_leaves_root_logger_alone() -> None:
    code = (
        "import logging; import kloudless, kloudless.util;"
        "r = logging.getLogger();"
        "print(len(r.handlers), r.level, kloudless.util.logger.name)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["0", str(logging.WARNING), "kloudless"]


def test_logger_is_kloudless_with_fallback_handler_and_filter() -> None:
    assert util.logger is logging.getLogger("kloudless")
    assert any(isinstance(h, util.FallbackHandler) for h in util.logger.handlers)
    assert any(isinstance(f, util.RedactingFilter) for f in util.logger.filters)


_RECIPE = (
    "import responses, kloudless\n"
    "from kloudless.util import logger\n"
    "CONFIGURE"
    "logger.setLevel('DEBUG')\n"
    "with responses.RequestsMock() as mock:\n"
    "    mock.get('http://localhost:8002/v1/accounts/me', json={'id': 1})\n"
    "    kloudless.Account(token='SECRET-TOKEN').get()\n"
)


def test_documented_debug_recipe_prints_request_urls_without_root_config() -> None:
    code = _RECIPE.replace("CONFIGURE", "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "http://localhost:8002/v1/accounts/me" in out.stderr
    assert "SECRET-TOKEN" not in out.stderr


def test_fallback_handler_is_silent_once_the_application_configures_logging() -> None:
    configure = (
        "import logging, sys\nlogging.basicConfig(stream=sys.stdout, format='APP %(message)s')\n"
    )
    code = _RECIPE.replace("CONFIGURE", configure)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "APP " in out.stdout and "accounts/me" in out.stdout
    assert "accounts/me" not in out.stderr  # printed once, by the application's handler


def test_get_config() -> None:
    assert util.get_config("api_version") == "1"
    assert util.get_config("api_version", "3") == "3"
    del configuration["api_version"]
    assert util.get_config("api_version") == "1"
    configuration["timeout"] = None
    assert util.get_config("timeout") is None


def test_settings_snapshot_and_overrides() -> None:
    configuration["max_retries"] = 7
    settings = config.get_settings(timeout=None, backoff_max=None)
    assert settings.max_retries == 7
    assert settings.timeout is None
    assert settings.backoff_max == 30.0
    configuration["max_retries"] = 1
    assert settings.max_retries == 7


def test_settings_snapshot_is_consistent_under_concurrent_writes() -> None:
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set() and n < 200_000:
            n += 1
            configuration["base_url"] = f"http://localhost:{8000 + n % 2}"
            configuration["api_version"] = str(1 + n % 2)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(200):
            settings = config.get_settings()
            assert settings.base_url in ("http://localhost:8000", "http://localhost:8001")
            assert settings.api_version in ("1", "2")
    finally:
        stop.set()
        thread.join(5)


@pytest.mark.parametrize(
    ("prefix", "suffix", "expected"),
    [
        ("https://a.com/v1", "accounts/me", "https://a.com/v1/accounts/me"),
        ("https://a.com/v1/", "/accounts/me", "https://a.com/v1/accounts/me"),
        ("https://a.com/v1/accounts/me", "", "https://a.com/v1/accounts/me"),
        ("https://a.com/v1/accounts/me", None, "https://a.com/v1/accounts/me"),
        (
            "https://a.com/v1/accounts/me",
            "storage/folders/root/contents/",
            "https://a.com/v1/accounts/me/storage/folders/root/contents/",
        ),
        ("https://a.com/v1/me", "events?page_size=5", "https://a.com/v1/me/events?page_size=5"),
        ("https://a.com/v1/me", "https://a.com/v1/me/x", "https://a.com/v1/me/x"),
        ("https://a.com/v1/me", "https://other.com/x", "https://other.com/x"),
        ("https://a.com/v1/me", "//evil.com/x", "https://a.com/v1/me/evil.com/x"),
        ("https://a.com/v1/me", "abc:def", "https://a.com/v1/me/abc:def"),
    ],
)
def test_url_join(prefix: str, suffix: object, expected: str) -> None:
    assert url_join(prefix, suffix) == expected  # type: ignore[arg-type]


def test_construct_kloudless_endpoint() -> None:
    assert construct_kloudless_endpoint() == "http://localhost:8002/v1"
    assert construct_kloudless_endpoint("oauth", api_version=1) == "http://localhost:8002/v1/oauth"
    assert (
        construct_kloudless_endpoint("/x/", base_url="http://localhost:8002/", api_version="2")
        == "http://localhost:8002/v2/x/"
    )
    del configuration["base_url"]
    assert construct_kloudless_endpoint() == "http://localhost:8002/v1"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("app.localhost", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("example.com", False),
        ("127.0.0.1.evil.com", False),
        ("10.0.0.1", False),
    ],
)
def test_is_loopback_host(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("{'Authorization': 'APIKey k3y'}", "k3y"),
        ('{"Authorization": "rawvalue"}', "rawvalue"),
        ("header Bearer tok123", "tok123"),
        ("Bearer zzz is invalid", "zzz"),
        ("GET /cb?code=C0DE&state=ST4TE&x=1", "C0DE"),
        ("GET /cb?code=C0DE&state=ST4TE&x=1", "ST4TE"),
        ("grant_type=authorization_code&code=AC&client_secret=CS99", "CS99"),
        ("grant_type=authorization_code&code=AC&client_secret=CS99", "=AC"),
        ('{"access_token": "AT1", "token_type": "Bearer"}', "AT1"),
        ("{'api_key': 'K9'}", "K9"),
        ("url?access_token=AT2#frag", "AT2"),
        ("refresh_token=RT", "=RT"),
    ],
)
def test_redact(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert util.REDACTED in redacted


@pytest.mark.parametrize(
    "text",
    [
        "Request to http://x/v1/accounts/me succeeded. Status code: 200",
        "barcode=123",
        "statement: fine",
        "error code: not_found",
        "The Bearer token is invalid or revoked.",
        "An API Key or Bearer Token must be provided",
        "Send the APIKey header; Basic auth is not supported.",
    ],
)
def test_redact_leaves_ordinary_text(text: str) -> None:
    assert redact(text) == text


def test_registered_secrets_are_redacted_verbatim() -> None:
    util.register_secret("verbatim-secret-value")
    util.register_secret("abc")  # too short: ignored
    util.register_secret(None)
    assert redact("x verbatim-secret-value y") == f"x {util.REDACTED} y"
    assert redact("abc") == "abc"


def test_registered_secrets_are_bounded() -> None:
    for n in range(300):
        util.register_secret(f"bounded-secret-{n:04d}")
    assert len(redaction._KNOWN_SECRETS) <= 256
    assert "bounded-secret-0299" in redaction._KNOWN_SECRETS


def test_redacting_filter_handles_args_exc_text_and_bad_formats() -> None:
    filt = util.RedactingFilter()
    record = logging.LogRecord(
        "kloudless", logging.INFO, __file__, 1, "t=%s", ("Bearer zzz",), None
    )
    record.exc_text = "Traceback: Authorization: Bearer qqq"
    assert filt.filter(record) is True
    assert record.getMessage() == f"t=Bearer {util.REDACTED}"
    assert "qqq" not in record.exc_text
    broken = logging.LogRecord("kloudless", logging.INFO, __file__, 1, "%d %d", ("x",), None)
    assert filt.filter(broken) is True
    assert broken.getMessage() == "%d %d"
