"""The storage side of a provider account: the rclone remote the rcd gets holds the current
token (a server refresh reaches rclone; a refresh made by rclone is read back).

rclone's drive, onedrive, dropbox and box backends have no option to change their API
endpoint (only auth_url/token_url), so no listing can be made against the stand-in: these
tests stop at the remote rclone is handed (see the guide's "What the tests cover")."""

from __future__ import annotations

import json
from typing import Any

from kloudless.server.connectors import provider_tokens, rclone
from kloudless.server.connectors.rclone_remotes import load_spec
from kloudless.server.connectors.registry import get_connector

from .conftest import Live, connect
from .test_passthrough import _make_expiring, _stored_token


def _env(live: Live, account_id: int) -> Any:
    row = live.server.app.store.get_account(account_id)
    assert row is not None
    return live.server.app.account_env(row)


def _rcd_token(live: Live, account_id: int) -> str:
    env = _env(live, account_id)
    session = rclone.session_for(env.settings)
    names = [n for (a, _), n in session.remotes.items() if a == account_id]
    assert len(names) == 1
    value = session.rc.call("config/get", {"name": names[0]})
    assert value["type"] == "dropbox" and value["client_id"] == "standin-client"
    return str(value["token"])


def test_rclone_gets_the_refreshed_token_and_rclones_refresh_is_read_back(live: Live) -> None:
    live.configure("dropbox")
    account_id, _ = connect(live, "dropbox")
    _make_expiring(live, account_id)
    before = _stored_token(live, account_id)
    connector = get_connector("dropbox")
    assert connector.storage(_env(live, account_id)) is not None
    after = _stored_token(live, account_id)
    assert after.access_token != before.access_token  # refreshed before rclone got it
    assert live.provider.state.issued.count("refresh_token") == 1
    handed = provider_tokens.from_rclone(_rcd_token(live, account_id))
    assert handed.access_token == after.access_token

    # rclone refreshes on its own (simulated: its remote's token changes in the rcd): the
    # server reads it back before the next use, and the pass-through side uses it.
    env = _env(live, account_id)
    session = rclone.session_for(env.settings)
    name = next(n for (a, _), n in session.remotes.items() if a == account_id)
    by_rclone = json.dumps(
        {
            "access_token": "rclone-made-token",
            "token_type": "Bearer",
            "refresh_token": after.refresh_token,
            "expiry": "2999-01-01T00:00:00.123456789Z",
        }
    )
    session.rc.call(
        "config/update",
        {"name": name, "parameters": {"token": by_rclone}, "opt": {"nonInteractive": True}},
    )
    from kloudless.server.connectors.provider import TokenKeeper

    assert TokenKeeper(_env(live, account_id)).access_token() == "rclone-made-token"
    row = live.server.app.store.get_account(account_id)
    assert row is not None
    spec = load_spec(json.loads(row["config"]), live.server.app.store.server_secret())
    assert "rclone-made-token" in spec.sections[spec.main]["token"]
