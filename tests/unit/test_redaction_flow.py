"""With DEBUG logging on, a storage + calendar + OAuth flow never logs a secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import responses

from kloudless import Account, exceptions, get_authorization_url, get_token_from_code, verify_token
from kloudless.util import logger

API = "http://localhost:8002/v1"
ACC = API + "/accounts/me"

TOKEN = "tok-0123456789-SECRET"
API_KEY = "key-9876543210-SECRET"
CODE = "code-ABCDEF-SECRET"
STATE = "state-XYZ-SECRET"
ACCESS = "access-QWERTY-SECRET"
SECRETS = [TOKEN, API_KEY, CODE, STATE, ACCESS]


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    old_level, old_logger_level = root.level, logger.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        logger.setLevel(old_logger_level)


def test_full_flow_logs_no_secret(mocked: responses.RequestsMock, captured: Capture) -> None:
    # OAuth
    mocked.add("POST", API + "/oauth/token", json={"access_token": TOKEN, "token_type": "Bearer"})
    mocked.add("GET", API + "/oauth/token", json={"client_id": "APP", "account_id": 1})
    # storage
    mocked.add("GET", ACC + "/storage/folders/root/contents", status=503, json={})
    mocked.add(
        "GET",
        ACC + "/storage/folders/root/contents",
        json={"type": "object_list", "objects": [{"id": "F", "api": "storage", "type": "file"}]},
    )
    mocked.add("GET", ACC + "/storage/files/F/contents", body=b"data")
    mocked.add("POST", ACC + "/storage/files", json={"id": "N", "api": "storage", "type": "file"})
    # calendar
    mocked.add("GET", ACC + "/cal/calendars/primary", json={"id": "C", "api": "calendar"})
    mocked.add(
        "POST", ACC + "/cal/calendars/primary/events", status=429, headers={"Retry-After": "0"}
    )
    mocked.add("POST", ACC + "/cal/calendars/primary/events", json={"id": "E"})
    # an error whose body echoes secrets
    mocked.add(
        "GET",
        ACC + "/bad",
        status=400,
        json={"message": f"bad token Bearer {TOKEN}", "access_token": ACCESS, "id": "RID"},
    )

    url, state = get_authorization_url("APP", "http://localhost:8020/cb", state=STATE)
    logger.debug("Redirecting the user to %s", url)
    token = get_token_from_code(
        "APP", API_KEY, state, "http://localhost:8020/cb", code=CODE, state=STATE
    )
    assert token == TOKEN
    verify_token("APP", token)
    with Account(token=token) as account:
        root = account.get("storage/folders/root/contents", params={"access_token": ACCESS})
        assert root[0].get("contents").content == b"data"
        account.post(
            "storage/files",
            data=b"x",
            headers={"X-Kloudless-Metadata": json.dumps({"name": "f", "parent_id": "root"})},
        )
        calendar = account.get("cal/calendars/primary")
        calendar.post("events", json={"name": "meeting"})
        with pytest.raises(exceptions.APIException) as info:
            account.get("bad")
        logger.debug(
            "Failed with %s; headers %s", info.value, dict(info.value.response.request.headers)
        )
        logger.debug("client secret in a form: client_secret=%s&code=%s", API_KEY, CODE)
    text = "\n".join(captured.lines)
    assert "Retrying" in text
    assert "Redirecting the user" in text
    assert len(captured.lines) >= 10
    for secret in SECRETS:
        assert secret not in text, secret


def test_stack_info_and_exception_tracebacks_are_redacted() -> None:
    import io
    import logging

    from kloudless.util import RedactingFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("kloudless-test-redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise RuntimeError("refused Bearer stack-SECRET-123456")
        except RuntimeError:
            log.error("boom", exc_info=True, stack_info=True)
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "Traceback" in text and "Stack (most recent call last)" in text
    assert "stack-SECRET-123456" not in text
    assert "[REDACTED]" in text
