"""Descriptions of the activity stream routes (``events``)."""

from __future__ import annotations

from .model import Op, Reply, int_param, query

__all__ = ["OPERATIONS"]

E = "/accounts/<account_id>/events"

OPERATIONS: dict[str, Op] = {
    f"GET {E}/latest": Op(
        "The cursor of the newest event",
        {200: Reply.of("Pass ``cursor`` to ``events`` to read what happens next.", "Cursor")},
    ),
    f"GET {E}": Op(
        "Read events after a cursor",
        {200: Reply.of("The next events and the cursor to continue from.", "ActivityList")},
        params=(
            query("cursor", "Read events after this cursor (0: from the start).", example="0"),
            int_param("page_size", "At most this many events."),
        ),
    ),
    f"GET {E}/<int:event_id>": Op(
        "Get one event",
        {200: Reply.of("The event.", "ActivityEvent")},
        example={"event_id": "$EVENT_ID"},
    ),
}
