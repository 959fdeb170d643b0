"""Property-based tests of the live server against its own OpenAPI description (schemathesis).

Every operation of ``GET /v1/openapi.json`` is called with requests generated from its
description, and each answer is checked: no server error (5xx other than a documented 501/502),
a documented status code, the documented content type, a body valid against the documented
schema, documented headers. ``make test`` runs a fixed, bounded set (the ``ci`` profile:
derandomized, a few examples per operation); ``make fuzz`` runs the ``fuzz`` profile (random
seeds, many more examples).

Requests go to one account (``me``, with its token) so that they reach the handlers instead of
stopping at "no such account"; changes of the account itself (PATCH/DELETE
``accounts/{account_id}``) keep their generated id, so the run cannot delete or disable the
account it depends on. Each operation gets the first credential it takes (Bearer token, API key,
developer key), and ``app_id`` is the application's own id except for deletions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks
from schemathesis.config import SchemathesisConfig

from kloudless.server.api import ROUTES
from kloudless.server.apidoc import document
from kloudless.server.runner import ServerThread
from kloudless.server.settings import Settings

#: ``make fuzz`` sets KLOUDLESS_FUZZ=1: random seeds, the coverage phase (boundary values,
#: unexpected methods) and many more examples; else a fixed, bounded run for ``make test``.
FUZZ = os.environ.get("KLOUDLESS_FUZZ") == "1"
CONFIG = SchemathesisConfig.from_dict(
    {
        "phases": {"coverage": {"enabled": FUZZ}},
        "generation": {
            "mode": "all",  # schema-valid requests and schema-violating ones
            "max-examples": int(os.environ.get("KLOUDLESS_FUZZ_EXAMPLES", 100 if FUZZ else 4)),
            "deterministic": not FUZZ,
            "database": "none",
        },
        "suppress-health-check": ["all"],
    }
)


#: What every answer is checked for. Not the checks that need the description to say exactly
#: which inputs each handler accepts (positive_data_acceptance, negative_data_rejection): the
#: descriptions give types and required fields, not every rule a handler enforces.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.unsupported_method,
]

#: A 501 is documented (the operation or the account's service is not supported) and checked
#: for everything but being a server error.
UNSUPPORTED = [check for check in CHECKS if check is not checks.not_a_server_error]

#: Changes of the account itself keep their generated account id (see the module doc).
OWN_ACCOUNT = "/v1/accounts/{account_id}"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    server = ServerThread(
        Settings(
            data_dir=str(tmp_path_factory.mktemp("fuzz-data")),
            host="127.0.0.1",
            port=0,
            # Thousands of requests in a few seconds, many of them unauthenticated on purpose.
            rate_limit_per_minute=0,
            auth_failures_per_minute=0,
        )
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


#: The document the server serves (``test_description.py`` checks that they are the same).
schema = schemathesis.openapi.from_dict(document.build(ROUTES), config=CONFIG)


def _modes(operation: dict[str, Any]) -> list[GenerationMode]:
    """Schema-valid requests always; invalid ones where there is a query or header parameter
    or a body to break (a path alone cannot be made invalid and stay a path)."""
    breakable = operation.get("requestBody") or any(
        "$ref" in p or p["in"] != "path" for p in operation["parameters"]
    )
    return [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if breakable else [])]


#: One test per operation and mode (explicit, so that pytest-xdist sees every one of them).
OPERATIONS = [
    (path, method.upper(), mode)
    for path, item in document.build(ROUTES)["paths"].items()
    for method, operation in item.items()
    for mode in _modes(operation)
]
EXAMPLES = int(os.environ.get("KLOUDLESS_FUZZ_EXAMPLES", 100 if FUZZ else 3))


@pytest.mark.parametrize(
    ("path", "method", "mode"), OPERATIONS, ids=[f"{m} {p} {g.value}" for p, m, g in OPERATIONS]
)
@settings(
    max_examples=EXAMPLES,
    derandomize=not FUZZ,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_the_server_answers_as_described(
    path: str, method: str, mode: GenerationMode, data: Any, fuzz_server: ServerThread
) -> None:
    case = data.draw(schema[path][method].as_strategy(generation_mode=mode))
    creds = fuzz_server.credentials
    assert creds is not None
    own_account = case.operation.path == OWN_ACCOUNT and case.method in ("PATCH", "DELETE")
    if "account_id" in (case.path_parameters or {}) and not own_account:
        case.path_parameters["account_id"] = "me"
    security = case.operation.definition.raw.get("security") or [{}]
    scheme = next(iter(security[0]), None)  # the first credential the operation takes
    credential = {
        "Bearer": f"Bearer {creds.token}",
        "APIKey": f"APIKey {creds.api_key}",
        "DeveloperKey": f"DeveloperKey {creds.developer_key}",
    }.get(scheme or "", "")
    # The application itself, except for its deletion (the run needs it).
    if "app_id" in (case.path_parameters or {}) and case.method != "DELETE":
        case.path_parameters["app_id"] = creds.app_id
    headers = dict(case.headers or {})
    if scheme is not None:
        headers.setdefault("Authorization", credential)
    response = case.call(base_url=fuzz_server.base_url, headers=headers, timeout=60)
    case.validate_response(response, checks=CHECKS if response.status_code != 501 else UNSUPPORTED)
    if response.status_code == 501:
        # Documented: the server knows the operation but not for this account's service.
        assert response.json()["error_code"] == "not_implemented"
