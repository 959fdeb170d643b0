"""Serve a folder with WsgiDAV under waitress until stdin closes (benchmark 8, the peers).

Usage: ``python -m benchmarks._wsgidav ROOT``. Serves ``ROOT`` at ``/dav/`` on a free 127.0.0.1
port with basic authentication (the test suite's WsgiDAV configuration,
:func:`tests.dav.servers.webdav_app`; user and password from ``BENCH_DAV_USER`` and
``BENCH_DAV_PASSWORD``), on waitress with 8 worker threads as ``kloudless serve`` runs. Prints
``READY <base_url>``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """:param argv: ``[root]``. :returns: never (exits when stdin closes)."""
    from tests.dav.servers import webdav_app

    from ._stub import serve

    user, password = os.environ["BENCH_DAV_USER"], os.environ["BENCH_DAV_PASSWORD"]
    app = webdav_app(Path(argv[0]), user, password)
    # waitress refuses bodies of 1 GiB and more by default: the large PUT must get through.
    serve(app, 8, "wsgidav", lambda base: base + "/dav", max_request_body_size=1 << 40)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
