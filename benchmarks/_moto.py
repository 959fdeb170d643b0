"""Run an S3 endpoint (moto in server mode) until stdin closes (used by the benchmarks).

Usage: ``python -m benchmarks._moto``. Prints ``READY <endpoint url>`` once moto listens on a free
127.0.0.1 port, and creates the bucket ``bench``.
"""

from __future__ import annotations

import os
import socket
import sys


def main() -> int:
    """:returns: the exit status."""
    os.environ.setdefault("S3_UPLOAD_PART_MIN_SIZE", str(5 * 1024 * 1024))
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
    ).create_bucket(Bucket="bench")
    sys.stdout.write(f"READY {url}\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
