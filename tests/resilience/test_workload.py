"""A mixed workload through the fault-injecting proxy: nothing lost, duplicated or corrupted.

A few hundred sequential operations (uploads of random content, small multipart uploads, folder
and event creation, renames, downloads) run through :class:`FaultProxy` with a fixed seed: 429s
and 503s before forwarding, connections dropped before and after the server processed a request,
download bodies cut in the middle. Afterwards everything is checked through a *direct* connection
to the server: every uploaded file exists once, under its final name, with the right SHA-256;
every folder and event exists once; nothing else exists.
"""

from __future__ import annotations

import hashlib
import io
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from kloudless import transfer

from .conftest import PART_SIZE, Server, account
from .faults import FaultPlan, FaultProxy

OPERATIONS = 300
SEED = 20261123
PLAN = FaultPlan(
    seed=SEED,
    rates={
        "429": 0.04,
        "503": 0.04,
        "drop_before": 0.02,
        "drop_after": 0.07,
        "cut": 0.3,  # file downloads only
    },
    retry_after="0",
    max_consecutive=2,
)
SIZES = (0, 1, 100, 1000, 10_000, 40_000)
EVENT = {"start": "2026-01-05T10:00:00Z", "end": "2026-01-05T11:00:00Z"}


@dataclass
class Expected:
    """What the server must hold at the end."""

    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (name, sha256)
    resources: dict[str, Any] = field(default_factory=dict)  # id -> SDK resource
    folders: dict[str, str] = field(default_factory=dict)  # id -> name
    events: dict[str, str] = field(default_factory=dict)  # id -> name
    intended_names: set[str] = field(default_factory=set)  # every name an operation tried
    failures: list[str] = field(default_factory=list)
    corrupt_downloads: int = 0
    ops: Counter[str] = field(default_factory=Counter)


def list_storage(direct: Any) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    page: Any = 1
    for _ in range(100):
        listing = direct.get(
            "storage/folders/root/contents",
            params={"recursive": "true", "page_size": 1000, "page": page},
        )
        objects.extend(listing.data["objects"])
        page = listing.data.get("next_page")
        if not page:
            return objects
    raise AssertionError("too many pages")


def list_events(direct: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    page: Any = 1
    for _ in range(100):
        listing = direct.get(
            "cal/calendars/primary/events", params={"page_size": 1000, "page": page}
        )
        events.extend(listing.data["objects"])
        page = listing.data.get("next_page")
        if not page:
            return events
    raise AssertionError("too many pages")


def run_operation(n: int, rng: random.Random, acc: Any, exp: Expected) -> None:
    kind = rng.choices(
        ["folder", "upload", "multipart", "event", "rename", "download"],
        weights=[10, 33, 5, 15, 15, 22],
    )[0]
    if kind in ("rename", "download") and not exp.files:
        kind = "upload"
    exp.ops[kind] += 1
    parent = rng.choice(["root", *exp.folders])  # insertion order: ids are random
    if kind == "folder":
        name = f"dir-{n}"
        exp.intended_names.add(name)
        folder = acc.post(
            "storage/folders",
            json={"name": name, "parent_id": parent},
            params={"conflict_if_exists": "true"},  # a re-run would be a 409, not a replay
        )
        exp.folders[folder.data["id"]] = name
    elif kind in ("upload", "multipart"):
        size = rng.choice(SIZES) if kind == "upload" else rng.randint(2 * PART_SIZE, 4 * PART_SIZE)
        data = rng.randbytes(size)
        name = f"file-{n}.bin"
        exp.intended_names.add(name)
        resource = acc.upload(
            io.BytesIO(data),
            parent_id=parent,
            name=name,
            multipart_threshold=2 * PART_SIZE,
            max_workers=1,  # sequential parts: the proxy's fault sequence stays deterministic
        )
        file_id = resource.data["id"]
        exp.files[file_id] = (name, hashlib.sha256(data).hexdigest())
        exp.resources[file_id] = resource
    elif kind == "event":
        name = f"event-{n}"
        exp.intended_names.add(name)
        event = acc.post("cal/calendars/primary/events", json=dict(EVENT, name=name))
        exp.events[event.data["id"]] = name
    elif kind == "rename":
        file_id = rng.choice(list(exp.files))
        name = f"renamed-{n}.bin"
        exp.intended_names.add(name)
        renamed = acc.patch(f"storage/files/{file_id}", json={"name": name})
        assert renamed.data["name"] == name
        exp.files[file_id] = (name, exp.files[file_id][1])
    else:
        file_id = rng.choice(list(exp.files))
        out = io.BytesIO()
        # Small chunks, so that a cut body leaves whole chunks behind and Range resumes them.
        exp.resources[file_id].download(out, chunk_size=4096)
        if hashlib.sha256(out.getvalue()).hexdigest() != exp.files[file_id][1]:
            exp.corrupt_downloads += 1


def test_mixed_workload_through_faults(
    server: Server, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr(transfer, "_sleep", lambda seconds: None)  # part re-sends: no pause
    proxy.set_plan(PLAN)
    rng = random.Random(SEED)
    exp = Expected()
    started = time.monotonic()
    with account(proxy.base_url, server.creds.token) as acc:
        for n in range(OPERATIONS):
            try:
                run_operation(n, rng, acc, exp)
            except Exception as exc:  # counted; the success rate is asserted below
                exp.failures.append(f"op {n}: {type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - started

    # -- check everything through a direct connection ----------------------------------------
    with account(server.base_url, server.creds.token) as direct:
        objects = list_storage(direct)
        files = {o["id"]: o for o in objects if o["type"] == "file"}
        folders = {o["id"]: o for o in objects if o["type"] == "folder"}
        names = Counter(o["name"] for o in objects)
        events = list_events(direct)
        event_names = Counter(e["name"] for e in events)
        duplicates = sum(count - 1 for count in names.values() if count > 1)
        duplicates += sum(count - 1 for count in event_names.values() if count > 1)
        # A duplicate created under another name (e.g. an auto-renamed second upload).
        duplicates += sum(1 for name in names if name not in exp.intended_names)
        duplicates += sum(1 for name in event_names if name not in exp.intended_names)
        lost = [i for i in exp.files if i not in files] + [
            i for i in exp.folders if i not in folders
        ]
        lost += [i for i in exp.events if i not in {e["id"] for e in events}]
        wrong_name = [
            i for i, (name, _) in exp.files.items() if i in files and files[i]["name"] != name
        ]
        corrupted = exp.corrupt_downloads
        for file_id, (_, digest) in exp.files.items():
            if file_id in files:
                out = io.BytesIO()
                direct.get(f"storage/files/{file_id}").download(out)
                corrupted += hashlib.sha256(out.getvalue()).hexdigest() != digest

    faults = proxy.counts()
    success = (OPERATIONS - len(exp.failures)) / OPERATIONS
    with capsys.disabled():
        print(
            f"\nworkload: {OPERATIONS} operations {dict(exp.ops)}, {len(proxy.log)} requests, "
            f"faults {dict(faults)}; success {success:.1%}, duplicates {duplicates}, "
            f"lost {len(lost)}, corrupted {corrupted}, {elapsed:.1f} s"
        )
    # The faults really happened (the plan is seeded, so these counts are stable).
    assert faults["drop_after"] >= 20 and faults["cut"] >= 10
    assert faults["429"] >= 10 and faults["503"] >= 10 and faults["drop_before"] >= 5
    assert sum("range" in s.headers for s in proxy.log) >= 5  # cut downloads resumed by Range
    # Processed but unanswered POSTs and PATCHes: only idempotency keys make their retries safe.
    assert sum(s.fault == "drop_after" and s.method in ("POST", "PATCH") for s in proxy.log) >= 10
    assert success >= 0.99, exp.failures
    assert duplicates == 0
    assert lost == [] and wrong_name == []
    assert corrupted == 0
    assert len(files) == len(exp.files) or exp.failures
    assert len(events) == len(exp.events) or exp.failures
