"""Two server processes that need a provider account's token at the same moment refresh it
once: the refresh lock is shared by every process using the database (SQLite: a file lock
beside it; PostgreSQL: an advisory lock). The stand-in rotates refresh tokens, so a second
refresh with the old refresh token would be refused (``invalid_grant``) and the account
revoked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kloudless.server import Settings, create_app
from kloudless.server.bootstrap import bootstrap
from kloudless.server.connectors import providers
from kloudless.server.connectors.provider_connect import Identity, account_config
from kloudless.server.connectors.provider_tokens import from_rclone
from kloudless.server.connectors.rclone_remotes import load_spec
from kloudless.server.store import Store

from .standins import Provider

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WAIT = 120.0
PROCESSES = 2


@pytest.fixture(scope="module")
def standin() -> Iterator[Provider]:
    provider = Provider().start()
    yield provider
    provider.stop()


def _account(store: Store, app_id: str, provider: Provider) -> int:
    """A Google account whose access token has expired (its refresh token is valid)."""
    app = providers.build("google", provider.settings())
    provider.state.grant.refresh.add("refresh-0")
    token = {"access_token": "expired-0", "refresh_token": "refresh-0", "expires_at": 1.0}
    identity = Identity(user_id="user-42", name="ada@example.com", service="gdrive", options={})
    config = account_config(app, identity, token, store.server_secret())
    return store.create_account(app_id, "gdrive", "ada@example.com", config)


def _ask_together(data: str, url: str, account_id: int) -> list[dict[str, Any]]:
    """Start the processes, let them ask for the token at once, return their answers."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.providers.refresher", data, url, str(account_id)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for proc in procs:  # each opened its store: they ask within milliseconds of each other
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        answers = []
        for proc in procs:
            out, _ = proc.communicate(timeout=WAIT)
            assert proc.returncode == 0
            answers.append(json.loads(out.strip().splitlines()[-1]))
        return answers
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=WAIT)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_processes_refresh_a_rotating_token_once(
    tmp_path: Any, standin: Provider, request: pytest.FixtureRequest, database: str
) -> None:
    standin.reset()
    # A slow token endpoint: without the shared lock both processes' refreshes are in flight
    # at once, and the second one reuses the refresh token the first one rotated away.
    standin.state.token_delay = 1.0
    url = request.getfixturevalue("postgres").new_database() if database == "postgresql" else None
    data = str(tmp_path / "data")
    app = create_app(Settings(data_dir=data, database_url=url, allow_upstream=["127.0.0.1"]))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        account_id = _account(app.store, creds.app_id, standin)
        answers = _ask_together(data, url or "-", account_id)
        refreshes = [r for r in standin.state.token_requests if r["grant_type"] == "refresh_token"]
        assert len(refreshes) == 1, answers
        assert refreshes[0]["refresh_token"] == "refresh-0"
        tokens = {a.get("token") for a in answers}
        assert len(tokens) == 1 and None not in tokens, answers
        assert tokens <= set(standin.state.grant.access)  # the one the refresh issued
        row = app.store.get_account(account_id)
        assert row is not None and row["active"]
        stored = json.loads(row["config"])
        spec = load_spec(stored, app.store.server_secret())
        token = from_rclone(spec.sections[spec.main]["token"])
        assert token.access_token in tokens and token.refresh_token in standin.state.grant.refresh
        assert token.expiry is not None and token.expiry.timestamp() > time.time()
    finally:
        app.close()
