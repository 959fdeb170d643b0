"""The OpenAPI description: it covers every route of the table, validates, and is served."""

from __future__ import annotations

from dataclasses import replace

import pytest
import requests
from openapi_spec_validator import validate

from kloudless.server.api import ROUTES
from kloudless.server.apidoc import document
from kloudless.server.apidoc.model import Op, Reply
from kloudless.server.routing import AUTH_NONE, Route
from kloudless.server.runner import ServerThread

DOC = document.build(ROUTES, "http://127.0.0.1:8080")
OPERATIONS = [
    (path, method, op) for path, item in DOC["paths"].items() for method, op in item.items()
]


def test_every_route_is_described() -> None:
    missing = document.missing(ROUTES)
    hint = "\n".join(document.stub(key) for key in missing)
    assert not missing, f"Describe these routes in kloudless/server/apidoc/<area>.py:\n{hint}"


def test_every_description_names_a_route() -> None:
    assert document.unknown(ROUTES) == []


def test_a_route_without_a_description_is_reported() -> None:
    extra = Route("/accounts/<account_id>/gadgets", ("GET", "POST"), ROUTES[0].handler)
    assert document.missing([*ROUTES, extra]) == [
        "GET /accounts/<account_id>/gadgets",
        "POST /accounts/<account_id>/gadgets",
    ]
    with pytest.raises(KeyError):
        document.build([*ROUTES, extra])


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"] == "3.1.0"
    validate(DOC)  # raises OpenAPIValidationError with the path of what is wrong


def test_every_operation_of_the_table_is_in_the_document() -> None:
    count = sum(len(route.methods) for route in ROUTES)
    assert len(OPERATIONS) == count
    assert len({op["operationId"] for _, _, op in OPERATIONS}) == count
    assert "/v1/accounts/{account_id}/storage/files/{object_id}" in DOC["paths"]
    assert "/l/{link_id}" in DOC["paths"]  # a route mounted at the site root


def test_credentials_follow_the_routes_auth_level() -> None:
    schemes = DOC["components"]["securitySchemes"]
    assert set(schemes) == {"Bearer", "APIKey", "DeveloperKey"}
    for path, method, op in OPERATIONS:
        for requirement in op["security"]:
            assert set(requirement) <= set(schemes), (path, method)
    public = {(r.path, m) for r in ROUTES for m in r.methods if r.auth == AUTH_NONE}
    assert ("/openapi.json", "GET") in public
    for route in ROUTES:
        for method in route.methods:
            op = DOC["paths"][document.openapi_path(route)][method.lower()]
            assert (op["security"] == []) == (route.auth == AUTH_NONE), route.path


def test_every_operation_answers_the_error_contract() -> None:
    error = {"$ref": "#/components/schemas/Error"}
    for path, method, op in OPERATIONS:
        statuses = {int(code) for code in op["responses"]}
        assert any(200 <= s < 400 for s in statuses) or statuses == {501, *statuses}, path
        assert {400, 429} <= statuses, (path, method)
        for code, answer in op["responses"].items():
            if "$ref" in answer:
                name = answer["$ref"].rsplit("/", 1)[1]
                answer = DOC["components"]["responses"][name]
            if int(code) >= 400:
                assert answer["content"]["application/json"]["schema"] == error, (path, code)
    required = set(DOC["components"]["schemas"]["Error"]["required"])
    assert required == {"status_code", "error_code", "message", "id"}


def test_headers_paging_and_raw_uploads_are_described() -> None:
    upload = DOC["paths"]["/v1/accounts/{account_id}/storage/files"]["post"]
    names = {p.get("name") or p["$ref"].rsplit("/", 1)[1] for p in upload["parameters"]}
    assert {"X-Kloudless-Metadata", "IdempotencyKey", "RawData", "AsUser"} <= names
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert {"413", "507"} <= set(upload["responses"])
    contents = DOC["paths"]["/v1/accounts/{account_id}/storage/folders/{object_id}/contents"]
    refs = {p.get("$ref") for p in contents["get"]["parameters"]}
    assert {"#/components/parameters/Page", "#/components/parameters/PageSize"} <= refs
    listing = contents["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listing["allOf"][0] == {"$ref": "#/components/schemas/ObjectList"}


def test_integer_url_variables_are_integers() -> None:
    event = DOC["paths"]["/v1/accounts/{account_id}/events/{event_id}"]["get"]
    (param,) = [p for p in event["parameters"] if p.get("name") == "event_id"]
    assert param["schema"]["type"] == "integer"


def test_errors_a_description_declares_are_added() -> None:
    route = Route("/things/<thing_id>", ("GET",), ROUTES[0].handler, family="storage")
    op = Op("Get a thing", {200: Reply("The thing.")}, errors=(410,))
    statuses = document.error_statuses("GET", route, op)
    assert {400, 401, 403, 404, 410, 429, 501} <= set(statuses)
    assert 507 not in statuses  # not an upload
    assert 413 in document.error_statuses("POST", replace(route, methods=("POST",)), op)


def test_the_server_serves_it_without_credentials(live: ServerThread) -> None:
    answer = requests.get(live.base_url + "/v1/openapi.json", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    served = answer.json()
    assert served["servers"] == [{"url": live.base_url}]
    assert served["paths"] == DOC["paths"]
    validate(served)
