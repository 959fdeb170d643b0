"""Run the local API server in this process until stdin closes (used by the benchmarks).

Usage: ``python -m benchmarks._serve DATA_DIR [PART_SIZE] [LOG_FILE]``. The data dir must already
be set up (see :func:`benchmarks._util.prepare_data_dir`). Prints ``READY <base_url>`` once the
server listens on a free 127.0.0.1 port, then serves until its stdin is closed (or it gets
SIGTERM), so the server never outlives the benchmark process.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType


def main(argv: list[str]) -> int:
    """:param argv: ``[data_dir, part_size?, log_file?]``. :returns: the exit status."""
    from kloudless.server.runner import ServerThread, configure_logging, freeze_heap
    from kloudless.server.settings import Settings

    data_dir = argv[0]
    part_size = int(argv[1]) if len(argv) > 1 else 8 * 1024 * 1024
    if len(argv) > 2:
        # One line per request, as `kloudless serve` writes it.
        configure_logging(argv[2])
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    settings = Settings(
        data_dir=data_dir,
        host="127.0.0.1",
        port=0,
        multipart_part_size=part_size,
        # The blob store as `kloudless serve` takes it from the environment (benchmark 6).
        blob_store=os.environ.get("KLOUDLESS_BLOB_STORE", ""),
        # Benchmark 6 puts every file in the blob store (`--inline-file-bytes 0`).
        inline_file_bytes=int(
            os.environ.get("KLOUDLESS_INLINE_FILE_BYTES", Settings.inline_file_bytes)
        ),
        # The benchmarks' clients share one token: no per-credential or per-address transfer
        # limit (they would answer 429 past 8 uploads at once).
        transfers_per_credential=0,
        transfers_per_address=0,
    )
    server = ServerThread(settings)
    server.start()
    freeze_heap()  # as `kloudless serve` does once its app is built
    sys.stdout.write(f"READY {server.base_url}\n")
    sys.stdout.flush()

    def watch() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
