"""A process that asks for one provider account's current access token, as a server worker
does before using the account (``python -m tests.providers.refresher DATA_DIR DB_URL ID``,
``-`` for SQLite in the data dir).

It prints ``ready`` once its store is open, waits for a line on stdin (so that several such
processes ask at the same moment), then prints one JSON line: ``{"token": ...}`` or
``{"status": ..., "error_code": ...}``.
"""

from __future__ import annotations

import json
import sys


def main(data_dir: str, url: str, account_id: int) -> None:
    import kloudless.server.app  # noqa: F401 - registers every migration, as a server does
    from kloudless.server.activity import ActivityLog, ActivityRecorder
    from kloudless.server.connectors.base import AccountEnv
    from kloudless.server.connectors.provider import TokenKeeper
    from kloudless.server.errors import ApiError
    from kloudless.server.settings import Settings
    from kloudless.server.store import Store

    settings = Settings(
        data_dir=data_dir, database_url=None if url == "-" else url, allow_upstream=["127.0.0.1"]
    )
    store = Store(settings.db_path, settings.database_url)
    try:
        row = store.get_account(account_id)
        assert row is not None
        env = AccountEnv(store, settings, row, ActivityRecorder(ActivityLog(store), account_id))
        print("ready", flush=True)
        sys.stdin.readline()
        try:
            result: dict[str, object] = {"token": TokenKeeper(env).access_token()}
        except ApiError as exc:
            result = {"status": exc.status, "error_code": exc.error_code}
        print(json.dumps(result), flush=True)
    finally:
        store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
