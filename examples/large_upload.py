"""Upload a large file with the multipart API, with a progress bar, and check it arrived intact.

:meth:`kloudless.Account.upload` streams the file: small files go in one request, files from
``--threshold`` bytes up in parts (in parallel when the server allows it), so memory use stays
flat whatever the size. If the upload is interrupted, the error carries a session id: run again
with ``--session-id`` to send only the missing parts.

Without a FILE argument a file of ``--size`` random bytes is generated in a temporary folder.
With ``--verify`` the file is downloaded back and its SHA-256 compared.

Run it against the local server::

    KLOUDLESS_TOKEN=... KLOUDLESS_BASE_URL=http://localhost:8002 \\
        python examples/large_upload.py --size 64M --verify

The progress bar needs tqdm (``pip install "kloudless-compat[cli]"``); without it the upload is
silent.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, Callable

from kloudless import Account
from kloudless.exceptions import KloudlessException
from kloudless.transfer import UploadInterrupted

MIB = 1024 * 1024


def parse_size(text: str) -> int:
    """Parse a size such as ``1048576``, ``512K``, ``64M`` or ``1G`` (binary multiples).

    :param text: the size.
    :returns: the number of bytes.
    :raises argparse.ArgumentTypeError: for anything else.
    """
    units = {"K": 1024, "M": MIB, "G": 1024 * MIB}
    cleaned = text.strip().upper().rstrip("B").rstrip("I")
    factor = units.get(cleaned[-1:], 1)
    try:
        value = int(float(cleaned[:-1] if cleaned[-1:] in units else cleaned) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return value


def sha256_of(path: str) -> str:
    """SHA-256 of a file, read in 1 MiB blocks.

    :param path: the file.
    :returns: the hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def generate_file(folder: str, size: int) -> str:
    """Write ``size`` random bytes to a new file (1 MiB at a time).

    :param folder: where to create it.
    :param size: its size in bytes.
    :returns: the file's path.
    """
    path = os.path.join(folder, f"large-upload-{size}.bin")
    with open(path, "wb") as handle:
        left = size
        while left:
            block = os.urandom(min(MIB, left))
            handle.write(block)
            left -= len(block)
    return path


@contextlib.contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int, int | None], None] | None]:
    """A ``progress(done, total)`` callback drawing a tqdm bar on a terminal, else None.

    :param label: the bar's label.
    :param total: the expected byte count.
    :returns: a context manager yielding the callback (or None without tqdm or a terminal).
    """
    try:
        from tqdm import tqdm
    except ImportError:
        yield None
        return
    bar: Any = tqdm(
        total=total,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not sys.stderr.isatty(),
    )

    def update(done: int, _total: int | None) -> None:
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


def make_account() -> Account:
    """The account from KLOUDLESS_TOKEN (or KLOUDLESS_API_KEY + KLOUDLESS_ACCOUNT_ID)."""
    token = os.environ.get("KLOUDLESS_TOKEN")
    if token:
        return Account(token=token)
    return Account(
        api_key=os.environ.get("KLOUDLESS_API_KEY"),
        account_id=os.environ.get("KLOUDLESS_ACCOUNT_ID"),
    )


def upload(args: argparse.Namespace, path: str) -> int:
    """Upload ``path`` and report the result.

    :param args: the parsed arguments.
    :param path: the local file.
    :returns: the exit code.
    """
    size = os.path.getsize(path)
    local_sha = sha256_of(path)
    with make_account() as account:
        with progress_bar(os.path.basename(path), size) as progress:
            try:
                result = account.upload(
                    path,
                    parent_id=args.parent,
                    name=args.name,
                    overwrite=args.overwrite,
                    progress=progress,
                    multipart_threshold=args.threshold,
                    session_id=args.session_id,
                )
            except UploadInterrupted as exc:
                print(
                    f"upload interrupted after {exc.done} of {exc.total} bytes; resume with "
                    f"--session-id {exc.session_id}",
                    file=sys.stderr,
                )
                return 1
            except KeyboardInterrupt as exc:  # Ctrl-C: the SDK attaches the session id
                sid = getattr(exc, "kloudless_session_id", None)
                hint = f"; resume with --session-id {sid}" if sid is not None else ""
                print(f"\ninterrupted{hint}", file=sys.stderr)
                return 130
        data = result.data
        print(f"uploaded {data['name']} ({data['size']} bytes) as {data['id']}")
        print(f"sha256 {local_sha}")
        if args.verify:
            with tempfile.TemporaryDirectory() as folder:
                copy = os.path.join(folder, "copy")
                result.download(copy)
                remote_sha = sha256_of(copy)
            if remote_sha != local_sha:
                print(f"MISMATCH: downloaded copy has sha256 {remote_sha}", file=sys.stderr)
                return 1
            print("verified: the downloaded copy is identical")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, generate a file if needed, upload it.

    :param argv: command-line arguments (default ``sys.argv[1:]``).
    :returns: the exit code.
    """
    parser = argparse.ArgumentParser(description="Multipart upload with a progress bar.")
    parser.add_argument("file", nargs="?", help="file to upload (default: generate one)")
    parser.add_argument("--size", type=parse_size, default=64 * MIB, help="generated file size")
    parser.add_argument("--parent", default="root", help="destination folder id")
    parser.add_argument("--name", help="name on the server")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument(
        "--threshold", type=parse_size, default=8 * MIB, help="multipart from this size (8M)"
    )
    parser.add_argument("--session-id", help="resume an interrupted multipart upload")
    parser.add_argument("--verify", action="store_true", help="download it back and compare")
    args = parser.parse_args(argv)
    try:
        if args.file:
            return upload(args, args.file)
        with tempfile.TemporaryDirectory() as folder:
            return upload(args, generate_file(folder, args.size))
    except KloudlessException as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before or after the upload itself
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
