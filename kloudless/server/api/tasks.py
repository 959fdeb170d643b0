"""Asynchronous requests (``X-Kloudless-Async: true``) and ``GET accounts/{id}/tasks/{task_id}``.

A task row is PENDING until the work finishes; then polling the task returns the result object
itself (its ``id`` differs from the task id) or the error JSON (spec §2.7). The row names the
server process running it (``owner``): polling a task whose process died answers its failure
(``task_interrupted``) from any other process.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Callable

from werkzeug.wrappers import Response

from ..context import RequestContext
from ..errors import ApiError, error_body, not_found
from ..recovery import fail_orphan_task
from ..responses import json_response
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
    store = ctx.store
    with store.transaction():  # joins the request's unit of work
        store.execute(
            "INSERT INTO tasks (id, account_id, state, created, modified, owner)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (task_id, account_id, "PENDING", now, now, ctx.core.instance_id),
        )

    def finish(state: str, status: int, body: dict[str, Any]) -> None:
        with store.transaction():
            store.execute(
                "UPDATE tasks SET state = ?, result = ?, status_code = ?, modified = ?"
                " WHERE id = ?",
                (state, json.dumps(body), status, now_iso(), task_id),
            )

    def run() -> None:
        try:
            # The work's change, its activity and the task's result are one unit of work: a
            # crash leaves the task PENDING with nothing changed, and start-up recovery fails
            # it with a clear error.
            with store.unit_of_work():
                status, body = work()
                finish("SUCCESS", status, body)
        except ApiError as exc:
            finish("FAILURE", exc.status, error_body(exc, ctx.request_id))
        except Exception:
            log.exception("task %s failed", task_id)
            error = ApiError(500, "internal_error", "The task failed; see the server log.")
            finish("FAILURE", 500, error_body(error, ctx.request_id))

    # Started once the task row has committed (with the request's answer).
    store.after_commit(lambda: ctx.core.executor.submit(run))
    return json_response(task_json(ctx, account_id, task_id, "PENDING"), 202)


def get_task(ctx: RequestContext, account_id: str, task_id: str) -> Response:
    account = ctx.account(account_id)
    acc = int(account["id"])
    row = ctx.store.one("SELECT * FROM tasks WHERE id = ? AND account_id = ?", (task_id, acc))
    if row is None:
        raise not_found(f"Task not found: {task_id[:100]}")
    if fail_orphan_task(ctx.store, row):  # its process died: it ends now, with an error
        row = ctx.store.one("SELECT * FROM tasks WHERE id = ?", (task_id,))
        assert row is not None
    if row["state"] == "PENDING":
        return json_response(task_json(ctx, acc, task_id, "PENDING"))
    body = json.loads(row["result"])
    if row["state"] == "SUCCESS":
        return json_response(body, 200)
    return json_response(body, int(row["status_code"] or 500))


ROUTES = [Route("/accounts/<account_id>/tasks/<task_id>", ("GET",), get_task)]
