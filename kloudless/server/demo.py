"""``make demo``: run a script against a throw-away local server.

Usage: ``python -m kloudless.server.demo examples/quickstart.py [args...]``. Starts the server on
a free 127.0.0.1 port with a fresh temporary data dir, exports ``KLOUDLESS_BASE_URL``,
``KLOUDLESS_TOKEN``, ``KLOUDLESS_API_KEY``, ``KLOUDLESS_APP_ID`` and ``KLOUDLESS_ACCOUNT_ID`` to
the script, runs it, stops the server and exits with the script's status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from .runner import ServerThread
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    """:returns: the script's exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stderr.write("usage: python -m kloudless.server.demo SCRIPT [ARGS...]\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="kloudless-demo-") as data_dir:
        server = ServerThread(Settings(data_dir=data_dir, port=0))
        creds = server.credentials
        assert creds is not None
        env = dict(
            os.environ,
            KLOUDLESS_BASE_URL=server.base_url,
            KLOUDLESS_TOKEN=creds.token,
            KLOUDLESS_API_KEY=creds.api_key,
            KLOUDLESS_APP_ID=creds.app_id,
            KLOUDLESS_ACCOUNT_ID=str(creds.account_id),
        )
        with server:
            print(f"Local Kloudless server on {server.base_url} (temporary data dir)")
            try:
                return subprocess.call([sys.executable, *args], env=env)
            except KeyboardInterrupt:
                return 130


if __name__ == "__main__":
    sys.exit(main())
