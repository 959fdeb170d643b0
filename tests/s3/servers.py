"""A real S3 endpoint on loopback for the blob store tests: moto in server mode
(``moto[server]``), started inside the test process on 127.0.0.1 and a free port.

:func:`moto_s3` yields an :class:`S3Endpoint`: its URL, the AWS variables a server process
needs to reach it (:meth:`S3Endpoint.env`) and :meth:`S3Endpoint.new_bucket` (a fresh bucket per
test, so tests never see each other's objects). Other suites (the cluster test) use the same
helpers.

moto's smallest multipart part is made 1 byte (``S3_UPLOAD_PART_MIN_SIZE``, read when moto is
imported): the shared server suites run with 4-byte parts; the 5 MiB rule of real S3 is what
:data:`kloudless.server.blobs.S3_MIN_PART_SIZE` announces and has a test of its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

ACCESS_KEY = "AKIAKLOUDLESSTEST0001"
SECRET_KEY = "moto-secret-key-kloudless-31337"
REGION = "us-east-1"


def free_port() -> int:
    """:returns: a loopback port nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Endpoint:
    """A running S3 endpoint."""

    url: str
    _client: Any = None

    def env(self) -> dict[str, str]:
        """:returns: the AWS variables that point boto3 (and so the server) at it."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_REGION": REGION,
        }

    def client(self) -> Any:
        """:returns: a boto3 client of the endpoint (for assertions)."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def new_bucket(self) -> str:
        """:returns: the name of a new, empty bucket."""
        name = "kl-" + uuid.uuid4().hex[:20]
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """:returns: every key of ``bucket`` under ``prefix``."""
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(str(o["Key"]) for page in pages for o in page.get("Contents", ()))

    def uploads(self, bucket: str) -> list[str]:
        """:returns: the keys of the bucket's unfinished multipart uploads."""
        answer = self.client().list_multipart_uploads(Bucket=bucket)
        return sorted(str(u["Key"]) for u in answer.get("Uploads", ()))


@contextlib.contextmanager
def moto_s3() -> Iterator[S3Endpoint]:
    """Run moto's S3 server on 127.0.0.1 until the block ends."""
    os.environ.setdefault("S3_UPLOAD_PART_MIN_SIZE", "1")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Endpoint(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@contextlib.contextmanager
def aws_environment(endpoint: S3Endpoint) -> Iterator[None]:
    """Point this process's AWS variables at ``endpoint`` until the block ends."""
    with mock.patch.dict(os.environ, endpoint.env()):
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)
        yield
