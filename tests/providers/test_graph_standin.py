"""The Graph stand-in refuses what Microsoft Graph refuses (so the contract tests can fail)."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from .graph_standin import GraphApp, GraphState

START = {"dateTime": "2024-03-01T10:00:00", "timeZone": "UTC"}
END = {"dateTime": "2024-03-01T11:00:00", "timeZone": "UTC"}


@pytest.fixture
def graph() -> tuple[Client, GraphState]:
    state = GraphState()
    standin = GraphApp(state)

    @Request.application  # type: ignore[misc]
    def app(request: Request) -> Response:
        return standin.handle(request)

    return Client(app), state


def events_url(state: GraphState) -> str:
    return f"/v1.0/me/calendars/{state.default}/events"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"start": START, "end": END, "title": "x"}, "RequestBodyRead"),  # not a property
        ({"start": START, "end": END, "showAs": "away"}, "RequestBodyRead"),  # not a member
        ({"start": START, "end": END, "isAllDay": "yes"}, "RequestBodyRead"),
        (
            {"start": {"dateTime": "2024-03-01T10:00:00+02:00", "timeZone": "UTC"}, "end": END},
            "RequestBodyRead",
        ),  # fmt: skip
        (
            {"start": {"dateTime": "2024-03-01T10:00:00", "timeZone": "Mars/Base"}, "end": END},
            "ErrorInvalidTimeZone",
        ),  # fmt: skip
        ({"end": END}, "ErrorInvalidRequest"),  # start is required
        ({"start": END, "end": START}, "ErrorInvalidRequest"),  # ends before it starts
        ({"start": START, "end": END, "isAllDay": True}, "ErrorPropertyValidationFailure"),
        (
            {
                "start": START,
                "end": END,
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1},
                    "range": {"type": "noEnd", "startDate": "2024-03-01"},
                },
            },
            "ErrorInvalidRecurrence",
        ),  # weekly needs daysOfWeek
        (
            {"start": START, "end": END, "attendees": [{"emailAddress": {"name": "no address"}}]},
            "ErrorInvalidRecipients",
        ),
        (
            {
                "start": START,
                "end": END,
                "singleValueExtendedProperties": [{"id": "Name x", "value": "1"}],
            },
            "ErrorInvalidProperty",
        ),
    ],
)
def test_bad_events_are_refused(
    graph: tuple[Client, GraphState], body: dict[str, Any], code: str
) -> None:
    client, state = graph
    answer = client.post(events_url(state), json=body)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.get_json()["error"]["code"] == code


def test_views_tokens_and_etags_are_checked(graph: tuple[Client, GraphState]) -> None:
    client, state = graph
    view = f"/v1.0/me/calendars/{state.default}/calendarView"
    assert client.get(view).status_code == 400  # the window is required
    delta = client.get(f"{view}/delta", query_string={"$deltatoken": "made-up"})
    assert delta.status_code == 410 and delta.get_json()["error"]["code"] == "SyncStateNotFound"
    created = client.post(events_url(state), json={"start": START, "end": END}).get_json()
    stale = client.patch(
        f"{events_url(state)}/{created['id']}",
        json={"subject": "x"},
        headers={"If-Match": 'W/"not-it"'},
    )
    assert stale.status_code == 412
    fresh = client.patch(
        f"{events_url(state)}/{created['id']}",
        json={"subject": "x"},
        headers={"If-Match": created["@odata.etag"]},
    )
    assert fresh.status_code == 200 and fresh.get_json()["@odata.etag"] != created["@odata.etag"]
    assert client.get(f"{events_url(state)}?$top=0").status_code == 400
    default = client.delete(f"/v1.0/me/calendars/{state.default}")
    assert default.status_code == 400  # the default calendar stays
