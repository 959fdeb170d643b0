"""The blob store: where the bytes of ``local`` accounts' files live, behind one small interface.

``Settings.blob_store`` (``kloudless serve --blob-store URL``, ``$KLOUDLESS_BLOB_STORE``) picks
the implementation:

* ``file:///path`` (or empty, the default: the data dir): :class:`FileBlobStore`, files under
  ``path``; the layout of earlier versions (``accounts/<id>/blobs/<blob>`` in the data dir).
* ``s3://bucket/prefix``: :class:`S3BlobStore`, objects ``prefix/accounts/<id>/blobs/<blob>``
  in an S3-compatible store (AWS S3, MinIO, Ceph, R2, Wasabi, ``rclone serve s3``, ...), with
  boto3 (``kloudless-compat[s3]``). Credentials, endpoint and region come from the standard
  AWS variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
  ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, ``AWS_REGION``) or boto3's other sources
  (shared config files, instance roles); they are never logged or put in errors.

Keys are ``/``-separated paths relative to the store's root (``accounts/1/blobs/ab12...``). A
store streams both ways: :meth:`BlobStore.put_file` takes a local (spooled, fsync'ed) file and
:meth:`BlobStore.open` returns a seekable reader that fetches what is read (S3: ranged GETs),
so no whole file is held in memory.

The two kinds differ in *when* a new blob enters the store (see
:mod:`~kloudless.server.connectors.local_storage`): a file store is :attr:`BlobStore.remote`
``False`` and gets the blob by a rename after the database commit (the blob journal); a remote
store gets it before the commit, since another machine must be able to read it as soon as the
row is visible, and the journal records the put so that a crash leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from .file_slice import PositionedReader
from .settings import Settings
from .spool import fsync_dir, remove_quietly

__all__ = [
    "S3_MIN_PART_SIZE",
    "BlobStore",
    "BlobStoreError",
    "FileBlobStore",
    "RemoteReader",
    "S3BlobStore",
    "blob_store",
    "open_blob_store",
]

log = logging.getLogger("kloudless.server")

#: Smallest part of an S3 multipart upload (all but the last part), per the S3 API.
S3_MIN_PART_SIZE = 5 * 1024 * 1024


class BlobStoreError(Exception):
    """The blob store cannot be used (bad URL, missing extra, unreachable bucket). The message
    names the store without credentials."""


class BlobStore(ABC):
    """Bytes by key. Implementations are thread-safe; one instance serves a whole process.

    Missing keys raise :class:`FileNotFoundError` from :meth:`open` and :meth:`copy`;
    :meth:`delete` of a missing key is not an error.
    """

    #: True when blobs are put into the store before the commit (see the module docstring).
    remote: bool = False
    #: The store as configured, without credentials (for logs and messages).
    url: str = ""
    #: Smallest multipart part the store accepts (all parts but the last; remote stores).
    min_part_size: int = 1

    @abstractmethod
    def put_file(self, key: str, path: str) -> None:
        """Store the (fsync'ed) local file ``path`` under ``key``, durably. The file is consumed
        (a file store renames it; others upload it and leave removing it to the caller)."""

    @abstractmethod
    def open(self, key: str, size: int | None = None) -> IO[bytes]:
        """:returns: a seekable binary reader of the blob (``size``: its size when the caller
        knows it, which saves a remote store a request). :raises FileNotFoundError:"""

    @abstractmethod
    def copy(self, source: str, target: str) -> None:
        """Copy one blob to a new key (server-side where the store can). :raises
        FileNotFoundError: no ``source``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a blob (a missing one is not an error)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """:returns: whether ``key`` holds a blob."""

    @abstractmethod
    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """:returns: ``(key, modified as a Unix time)`` of every blob whose key starts with
        ``prefix`` (a folder: end it with ``/``)."""

    def local_path(self, key: str) -> str | None:
        """:returns: the blob's file on this machine (file stores), else None."""
        return None

    @abstractmethod
    def check(self) -> None:
        """Check that the store can be used (start-up). :raises BlobStoreError:"""

    # -- S3 multipart uploads (remote stores) --------------------------------------------------
    def multipart_start(self, key: str) -> str:
        """Begin a multipart upload of ``key``. :returns: its upload id."""
        raise NotImplementedError

    def multipart_put(self, key: str, upload_id: str, number: int, path: str) -> str:
        """Upload part ``number`` (1-based) from a local file. :returns: the part's etag."""
        raise NotImplementedError

    def multipart_complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Assemble ``key`` from the parts ``(number, etag)``, in order.

        :raises FileNotFoundError: the upload is not there (completed or aborted before).
        """
        raise NotImplementedError

    def multipart_abort(self, key: str, upload_id: str) -> None:
        """Drop a multipart upload and its parts (a missing one is not an error)."""
        raise NotImplementedError

    def multipart_list(self, prefix: str) -> Iterator[tuple[str, str, float]]:
        """:returns: ``(key, upload id, started as a Unix time)`` of the unfinished multipart
        uploads under ``prefix``."""
        return iter(())

    def close(self) -> None:
        """Release connections (the store stays usable: they are made again on use)."""
        return


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or "" in parts or "." in parts or ".." in parts:  # "" also: a leading "/"
        raise ValueError(f"bad blob key: {key[:200]!r}")
    return key


class FileBlobStore(BlobStore):
    """Blobs as files under ``root`` (the data dir by default). Symlinks are never followed
    into or out of the store (``O_NOFOLLOW`` on the blob itself; callers check the account
    folders)."""

    remote = False

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = "file://" + urllib.parse.quote(self.root)

    def _path(self, key: str) -> str:
        # A checked key is a relative path of plain names: joined whole (once per request).
        return os.path.join(self.root, _check_key(key))

    def local_path(self, key: str) -> str | None:
        return self._path(key)

    def clock(self) -> float:
        """:returns: the time now as the store's files record it (the times of
        :meth:`list_keys`): a file's timestamps come from the kernel's coarse clock, which can
        be a tick behind :func:`time.time`, so a file made and removed in the store's root
        tells it; a second before :func:`time.time` where the root cannot take one."""
        try:
            fd, path = tempfile.mkstemp(dir=self.root, prefix=".clock-")
        except OSError:
            return time.time() - 1.0
        try:
            return os.fstat(fd).st_mtime
        finally:
            os.close(fd)
            os.unlink(path)

    def check(self) -> None:
        # Created on the first put (the data dir: by the server, private): only refuse a file.
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise BlobStoreError(f"{self.url}: not a folder")

    def put_file(self, key: str, path: str) -> None:
        target = self._path(key)
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        try:
            os.replace(path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # Another filesystem: copy to a temp name beside the target, then rename.
            temp = f"{target}.part"
            with open(path, "rb") as src, open(temp, "wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
            remove_quietly(path)
        fsync_dir(folder)  # durable before its journal row goes

    def open(self, key: str, size: int | None = None) -> IO[bytes]:
        fd = os.open(self._path(key), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        # The default buffer without asking whether the file is a terminal (a system call).
        return open(fd, "rb", buffering=io.DEFAULT_BUFFER_SIZE)

    def copy(self, source: str, target: str) -> None:
        path = self._path(target)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temp = f"{path}.part"
        try:
            shutil.copyfile(self._path(source), temp)
            with open(temp, "rb+") as out:
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            remove_quietly(temp)
            raise
        fsync_dir(os.path.dirname(path))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        folder, _, start = prefix.rpartition("/")
        base = os.path.join(self.root, *folder.split("/")) if folder else self.root
        for current, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(current, d))]
            rel = os.path.relpath(current, self.root).replace(os.sep, "/")
            for name in files:
                key = name if rel == "." else f"{rel}/{name}"
                if not key.startswith(prefix):
                    continue
                with contextlib.suppress(OSError):
                    yield key, os.lstat(os.path.join(current, name)).st_mtime
            if current == base and start:
                dirs[:] = [d for d in dirs if d.startswith(start)]


class RemoteReader(io.BufferedReader):
    """A buffered reader of a remote blob. Its reads wait on the network, so the HTTP layer
    streams it from a worker thread rather than handing it to the server's I/O loop (which
    ``wsgi.file_wrapper`` would do)."""

    remote = True


class _S3Reader(PositionedReader):
    """A seekable reader of one S3 object: each read streams from a ranged GET whose window
    doubles up to 64 MiB (from 64 KiB at the start, 256 KiB after a seek), so a small file is one
    request, a ``Range`` answer fetches little more than it sends and a whole download needs few
    requests."""

    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        self.size = self._length = size
        self._pos = 0
        self._body: Any = None
        self._body_end = 0  # the position where the open body ends
        self._window = 64 * 1024

    def start(self) -> None:
        """Send the first GET now (a missing object raises :class:`FileNotFoundError` here)."""
        self._fetch(1)

    def _move(self, position: int) -> None:
        if position != self._pos:
            self._drop_body()
            self._window = 256 * 1024

    def _drop_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.size - self._pos)
        if want <= 0:
            return 0
        if self._body is None or self._pos >= self._body_end:
            self._fetch(want)
        data = self._body.read(min(want, self._body_end - self._pos))
        if not data:
            raise OSError(errno.EIO, "the blob store ended the download early")
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _fetch(self, want: int) -> None:
        self._drop_body()
        end = min(self.size, self._pos + max(self._window, want))
        self._window = min(self._window * 2, 64 * 1024 * 1024)
        answer = _s3_call(
            self._client.get_object,
            Bucket=self._bucket,
            Key=self._key,
            Range=f"bytes={self._pos}-{end - 1}",
        )
        self._body, self._body_end = answer["Body"], end

    def close(self) -> None:
        self._drop_body()
        super().close()


def _missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("NoSuchKey", "NoSuchUpload", "404", "NotFound") or status == 404


def _s3_call(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a boto3 client method; a missing key or upload becomes :class:`FileNotFoundError`
    and other failures :class:`OSError` (no request details: they may carry signatures)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call(*args, **kwargs)
    except ClientError as exc:
        if _missing(exc):
            raise FileNotFoundError(errno.ENOENT, "no such blob") from None
        code = exc.response.get("Error", {}).get("Code", "error")
        raise OSError(errno.EIO, f"the blob store answered {code}") from None
    except BotoCoreError as exc:
        raise OSError(
            errno.EIO, f"the blob store cannot be reached ({type(exc).__name__})"
        ) from None


def _pages(pages: Any) -> Iterator[dict[str, Any]]:
    """:returns: the pages of a boto3 paginator, failures as :func:`_s3_call` raises them."""
    iterator = iter(pages)
    while True:
        try:
            page = _s3_call(next, iterator)
        except StopIteration:
            return
        yield page


class S3BlobStore(BlobStore):
    """Blobs as objects of an S3 bucket, under ``prefix``.

    :param bucket: the bucket (it must exist). :param prefix: key prefix (may be empty).
    :param client: a boto3 S3 client (tests); default: one from the standard AWS variables.
    """

    remote = True
    min_part_size = S3_MIN_PART_SIZE

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client if client is not None else _s3_client()

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _unkey(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def put_file(self, key: str, path: str) -> None:
        from boto3.s3.transfer import TransferConfig

        # boto3's managed transfer streams the file (in parts when it is large).
        config = TransferConfig(multipart_threshold=64 * 1024 * 1024, max_concurrency=4)
        _s3_call(
            self._client.upload_file,
            Filename=path,
            Bucket=self.bucket,
            Key=self._key(key),
            Config=config,
        )

    def open(self, key: str, size: int | None = None) -> IO[bytes]:
        if not size:  # unknown (or empty: a ranged GET of nothing is not allowed)
            head = _s3_call(self._client.head_object, Bucket=self.bucket, Key=self._key(key))
            size = int(head["ContentLength"])
        reader = _S3Reader(self._client, self.bucket, self._key(key), size)
        if size:
            reader.start()
        return RemoteReader(reader, 256 * 1024)

    def copy(self, source: str, target: str) -> None:
        _s3_call(
            self._client.copy,
            CopySource={"Bucket": self.bucket, "Key": self._key(source)},
            Bucket=self.bucket,
            Key=self._key(target),
        )

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            _s3_call(self._client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        try:
            _s3_call(self._client.head_object, Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return False
        return True

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self._key_prefix(prefix))
        for page in _pages(pages):
            for item in page.get("Contents", ()):
                yield self._unkey(str(item["Key"])), item["LastModified"].timestamp()

    def _key_prefix(self, prefix: str) -> str:
        if self.prefix:
            return f"{self.prefix}/{prefix}"
        return prefix

    def multipart_start(self, key: str) -> str:
        answer = _s3_call(
            self._client.create_multipart_upload, Bucket=self.bucket, Key=self._key(key)
        )
        return str(answer["UploadId"])

    def multipart_put(self, key: str, upload_id: str, number: int, path: str) -> str:
        with open(path, "rb") as body:
            answer = _s3_call(
                self._client.upload_part,
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ContentLength=os.fstat(body.fileno()).st_size,
            )
        return str(answer["ETag"])

    def multipart_complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        _s3_call(
            self._client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=self._key(key),
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
        )

    def multipart_abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            _s3_call(
                self._client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
            )

    def multipart_list(self, prefix: str) -> Iterator[tuple[str, str, float]]:
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in _pages(paginator.paginate(Bucket=self.bucket, Prefix=self._key_prefix(prefix))):
            for item in page.get("Uploads", ()):
                yield (
                    self._unkey(str(item["Key"])),
                    str(item["UploadId"]),
                    item["Initiated"].timestamp(),
                )

    def check(self) -> None:
        try:
            _s3_call(self._client.head_bucket, Bucket=self.bucket)
        except FileNotFoundError:
            raise BlobStoreError(f"{self.url}: the bucket does not exist") from None
        except OSError as exc:
            raise BlobStoreError(f"{self.url}: {exc.strerror or exc}") from None

    def close(self) -> None:
        return  # the client is shared by every store of the process (see _s3_client)


_clients: dict[tuple[str | None, ...], Any] = {}
_clients_lock = threading.Lock()

#: The variables a client is made from (a change makes a new client).
_CLIENT_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "KLOUDLESS_S3_ADDRESSING_STYLE",
)


def _s3_client() -> Any:
    """:returns: the process's boto3 S3 client for the current AWS variables (clients are
    thread-safe and slow to make, so one is shared)."""
    key = tuple(os.environ.get(name) for name in _CLIENT_VARIABLES)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _new_s3_client()
        return client


def _new_s3_client() -> Any:
    """:returns: a boto3 S3 client configured from the environment (AWS variables). boto3
    reads ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` itself (botocore 1.31+)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise BlobStoreError(
            "s3:// blob stores need boto3: pip install 'kloudless-compat[s3]'"
        ) from None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=32,
        # Path-style works with every S3-compatible server (MinIO, Ceph, rclone) and with AWS.
        s3={"addressing_style": os.environ.get("KLOUDLESS_S3_ADDRESSING_STYLE", "path")},
    )
    return boto3.session.Session().client("s3", region_name=region, config=config)


def open_blob_store(url: str, data_dir: str) -> BlobStore:
    """:returns: a new blob store for ``url`` (empty: the data dir).

    :raises BlobStoreError: the URL is not ``file://`` or ``s3://``, or boto3 is missing.
    """
    if not url:
        return FileBlobStore(data_dir)
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise BlobStoreError("file:// blob store URLs take an absolute path (file:///path)")
        path = urllib.parse.unquote(parsed.path)
        if not path:
            raise BlobStoreError("file:// blob store URLs take an absolute path (file:///path)")
        return FileBlobStore(path)
    if parsed.scheme == "s3":
        if not parsed.netloc or "@" in parsed.netloc or parsed.query or parsed.fragment:
            raise BlobStoreError(
                "s3:// blob store URLs are s3://bucket/prefix (credentials come from the"
                " AWS_* variables, never the URL)"
            )
        return S3BlobStore(parsed.netloc, urllib.parse.unquote(parsed.path))
    raise BlobStoreError("the blob store URL must start with file:// or s3://")


_stores: dict[tuple[str, str], BlobStore] = {}
_stores_lock = threading.Lock()


def blob_store(settings: Settings) -> BlobStore:
    """:returns: the process's blob store for ``settings`` (one per URL and data dir, so its
    connection pool is shared by every request)."""
    data_dir = settings.data_dir
    key = (settings.blob_store, data_dir if os.path.isabs(data_dir) else os.path.abspath(data_dir))
    store = _stores.get(key)  # the common case: no lock (entries are never replaced)
    if store is not None:
        return store
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = open_blob_store(settings.blob_store, settings.data_dir)
        return store


def stores_for(data_dir: str) -> list[BlobStore]:
    """:returns: the blob stores this process opened for ``data_dir`` that keep blobs outside
    it (S3, a file store elsewhere)."""
    folder = os.path.abspath(data_dir)
    with _stores_lock:
        return [
            store
            for (_, path), store in _stores.items()
            if path == folder
            and store.local_path("accounts/0/blobs/x")
            != os.path.join(folder, "accounts", "0", "blobs", "x")
        ]


def remove_prefix(store: BlobStore, prefix: str) -> int:
    """Remove every blob under ``prefix`` (failures are logged; the orphan sweep retries).

    :returns: the number removed.
    """
    removed = 0
    try:
        for key, _ in list(store.list_keys(prefix)):
            store.delete(key)
            removed += 1
    except OSError as exc:
        log.warning("removing blobs under %s failed: %s", prefix, exc)
    return removed


#: What a folder's blobs are still needed for: ``account id -> names the database names``.
ReferencedNames = Callable[[int], set[str]]


def reclaim_unreferenced(
    store: BlobStore,
    folders: Mapping[str, ReferencedNames],
    grace: float,
    before: float | None = None,
) -> int:
    """Remove the blobs ``accounts/<id>/<folder>/<name>`` of the given folders that their
    ``folders[folder](id)`` does not name, once older than ``grace`` seconds (a crash between
    a put and the commit of the row naming it, or between a commit and the removal of the
    blob it replaced, leaves such blobs; the grace spares a put whose row is about to commit,
    in any process). The store is listed once for all the folders.

    :param folders: per folder, the names the database still needs for an account (asked
        once per account and folder, after its first blob old enough to go is seen).
    :param before: also remove those older than this time of the store's clock (the start of
        a process that started alone: nothing older can be in flight, see
        :func:`kloudless.server.recovery.orphan_cutoff`).
    :returns: the number removed.
    """
    removed = 0
    limit = time.time() - grace
    if before is not None:
        limit = max(limit, before)
    known: dict[tuple[str, int], set[str]] = {}
    try:
        for key, modified in list(store.list_keys("accounts/")):
            parts = key.split("/")
            if len(parts) != 4 or parts[2] not in folders or not parts[1].isdigit():
                continue
            if modified >= limit:
                continue
            folder, account_id = parts[2], int(parts[1])
            if (folder, account_id) not in known:
                known[folder, account_id] = folders[folder](account_id)
            if parts[3] not in known[folder, account_id]:
                store.delete(key)
                removed += 1
    except OSError as exc:
        log.warning("orphan blob sweep stopped: %s", exc)
    return removed
