"""Property-based: random paths, query values, headers and JSON bodies always get a JSON answer
(4xx, or a documented 501; never a 500, never HTML) and leave the store consistent."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from kloudless.server.app import ServerApp

segments = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=0, max_size=12)
PREFIXES = [
    "accounts/me/storage/files",
    "accounts/me/storage/folders",
    "accounts/me/events",
    "accounts/me/storage/links",
    "accounts/me/storage/multipart",
    "accounts",
    "accounts/me/tasks",
    "oauth/token",
    "meta/applications",
    "accounts/me/storage",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prefix=st.sampled_from(PREFIXES),
    tail=st.lists(segments, max_size=3),
    method=st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE"]),
    query=st.dictionaries(
        st.sampled_from(
            ["page", "page_size", "cursor", "recursive", "q", "overwrite", "part_number", "after"]
        ),
        segments,
        max_size=3,
    ),
    body=json_values,
    metadata=st.one_of(st.none(), json_values.map(json.dumps)),
)
def test_random_requests_get_json_4xx(
    client: Client,
    app: ServerApp,
    auth: dict[str, str],
    prefix: str,
    tail: list[str],
    method: str,
    query: dict[str, str],
    body: Any,
    metadata: Any,
) -> None:
    path = "/v1/" + prefix + "".join("/" + quote(seg, safe="") for seg in tail)
    headers = dict(auth)
    if metadata is not None:
        headers["X-Kloudless-Metadata"] = metadata
    response = client.open(
        path,
        method=method,
        headers=headers,
        query_string=query,
        data=json.dumps(body),
        content_type="application/json",
    )
    # Only documented refusals may be 5xx: 501 not_implemented (unsupported features).
    assert response.status_code < 500 or (
        response.status_code == 501 and response.get_json()["error_code"] == "not_implemented"
    ), (path, response.get_data(as_text=True))
    if response.status_code >= 400:
        assert response.mimetype == "application/json"
        assert response.get_json()["status_code"] == response.status_code
    orphans = app.store.one(
        "SELECT COUNT(*) AS n FROM objects o WHERE o.parent_id != 'root' AND NOT EXISTS"
        " (SELECT 1 FROM objects p WHERE p.id = o.parent_id)"
    )
    assert orphans is not None and orphans["n"] == 0
