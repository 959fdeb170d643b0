"""Asynchronous requests (``X-Kloudless-Async: true``) and ``GET accounts/{id}/tasks/{task_id}``.

A task row is PENDING until the work finishes; then polling the task returns the result object
itself (its ``id`` differs from the task id) or the error JSON (spec §2.7).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Callable

from werkzeug.wrappers import Response

from ..context import RequestContext
from ..errors import ApiError, not_found
from ..responses import error_body, json_response
from ..routing import Route
from ..store import now_iso

log = logging.getLogger("kloudless.server")

Work = Callable[[], "tuple[int, dict[str, Any]]"]


def task_json(ctx: RequestContext, account_id: int, task_id: str, state: str) -> dict[str, Any]:
    """:returns: the task object."""
    return {
        "id": task_id,
        "api": "core",
        "type": "task",
        "state": state,
        "status": state,
        "account": account_id,
        "href": ctx.href(f"accounts/{account_id}/tasks/{task_id}"),
        "info": {},
    }


def wants_async(ctx: RequestContext) -> bool:
    """True when the request asked to run as a task."""
    header = ctx.request.headers.get("X-Kloudless-Async", "").strip().lower() == "true"
    return header or ctx.request.args.get("return_type") == "task"


def run_maybe_async(ctx: RequestContext, account_id: int, work: Work) -> Response:
    """Run ``work`` now, or as a task when the request asked for it.

    :param work: returns ``(status, json_body)``; may raise :class:`ApiError`.
    :returns: the work's response, or 202 with the task object.
    """
    if not wants_async(ctx):
        status, body = work()
        return json_response(body, status)
    task_id = str(uuid.uuid4())
    now = now_iso()
    ctx.store.execute(
        "INSERT INTO tasks (id, account_id, state, created, modified) VALUES (?, ?, ?, ?, ?)",
        (task_id, account_id, "PENDING", now, now),
    )

    def run() -> None:
        try:
            status, body = work()
            state = "SUCCESS"
        except ApiError as exc:
            status, state = exc.status, "FAILURE"
            body = error_body(exc, ctx.request_id)
        except Exception:
            log.exception("task %s failed", task_id)
            status, state = 500, "FAILURE"
            body = error_body(
                ApiError(500, "internal_error", "The task failed; see the server log."),
                ctx.request_id,
            )
        ctx.store.execute(
            "UPDATE tasks SET state = ?, result = ?, status_code = ?, modified = ? WHERE id = ?",
            (state, json.dumps(body), status, now_iso(), task_id),
        )

    ctx.core.executor.submit(run)
    return json_response(task_json(ctx, account_id, task_id, "PENDING"), 202)


def get_task(ctx: RequestContext, account_id: str, task_id: str) -> Response:
    account = ctx.account(account_id)
    acc = int(account["id"])
    row = ctx.store.one("SELECT * FROM tasks WHERE id = ? AND account_id = ?", (task_id, acc))
    if row is None:
        raise not_found(f"Task not found: {task_id[:100]}")
    if row["state"] == "PENDING":
        return json_response(task_json(ctx, acc, task_id, "PENDING"))
    body = json.loads(row["result"])
    if row["state"] == "SUCCESS":
        return json_response(body, 200)
    return json_response(body, int(row["status_code"] or 500))


ROUTES = [Route("/accounts/<account_id>/tasks/<task_id>", ("GET",), get_task)]
