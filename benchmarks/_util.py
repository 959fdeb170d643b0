"""Shared pieces of the benchmarks: options, tables, machine description, memory sampling,
server and stub processes, test data."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import psutil

MIB = 1024 * 1024
GIB = 1024 * MIB
#: Longest wait for a helper process to say READY.
START_TIMEOUT = 60.0


@dataclass
class Options:
    """What to run and how big.

    :ivar quick: tiny sizes, for the smoke test.
    :ivar size: bytes of the large file of the download and upload benchmarks.
    """

    quick: bool = False
    size: int = GIB
    workdir: str = ""
    _files: dict[int, str] = field(default_factory=dict)

    def big_file(self, size: int | None = None) -> str:
        """:returns: the path of a file of random bytes of ``size`` (default :attr:`size`),
        created once per run in the work dir."""
        size = self.size if size is None else size
        path = self._files.get(size)
        if path is None:
            path = os.path.join(self.workdir, f"random-{size}.bin")
            write_random_file(path, size)
            self._files[size] = path
        return path


def write_random_file(path: str, size: int) -> None:
    """Write ``size`` random bytes (a 16 MiB random block, varied per block) to ``path``."""
    block = os.urandom(min(size, 16 * MIB) or 1)
    with open(path, "wb") as out:
        written = 0
        counter = 0
        while written < size:
            piece = counter.to_bytes(8, "big") + block[8 : min(len(block), size - written)]
            piece = piece[: size - written]
            out.write(piece)
            written += len(piece)
            counter += 1


@dataclass
class Table:
    """One benchmark result table.

    :ivar title: heading. :ivar columns: column names. :ivar rows: cells (already formatted).
    :ivar notes: lines printed under the table (what was measured, goals met or missed).
    """

    title: str
    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        """Append a row; cells are turned into strings."""
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        """:returns: the table as aligned plain text."""
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        line = "  ".join("-" * w for w in widths)

        def fmt(cells: Sequence[str]) -> str:
            return "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        out = [self.title, "=" * len(self.title), fmt(self.columns), line]
        out += [fmt(r) for r in self.rows]
        out += [line] if self.rows else []
        out += self.notes
        return "\n".join(out)

    def render_rst(self) -> str:
        """:returns: the table as a reStructuredText ``list-table`` with its notes."""
        out = [f".. list-table:: {self.title}", "   :header-rows: 1", ""]
        for row in [list(self.columns), *self.rows]:
            for i, cell in enumerate(row):
                out.append(("   * - " if i == 0 else "     - ") + rst_escape(cell))
        out.append("")
        out += [f"| {rst_escape(note)}" for note in self.notes]
        if self.notes:
            out.append("")
        return "\n".join(out)


def rst_escape(text: str) -> str:
    """:returns: ``text`` as literal reStructuredText inline text (markup characters escaped)."""
    for char in "\\`*_|":
        text = text.replace(char, "\\" + char)
    if not text or text[0] in "-+#":
        text = "\\" + text if text else "\\ "
    return text


def machine_info() -> list[tuple[str, str]]:
    """:returns: ``(name, value)`` pairs describing this machine and software."""
    import requests
    import urllib3

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    freq = psutil.cpu_freq()
    return [
        ("CPU", cpu + (f" ({freq.max or freq.current:.0f} MHz)" if freq else "")),
        ("Cores", f"{psutil.cpu_count(logical=False)} physical, {os.cpu_count()} logical"),
        ("Memory", f"{psutil.virtual_memory().total / GIB:.1f} GiB"),
        ("OS", platform.platform()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("requests / urllib3", f"{requests.__version__} / {urllib3.__version__}"),
    ]


class PeakRSS:
    """Sample a process's resident memory in a thread; :attr:`growth` is peak minus start.

    :param pid: the process (default: this one).
    :param interval: seconds between samples.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.005) -> None:
        self.process = psutil.Process(pid or os.getpid())
        self.interval = interval
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(psutil.Error):
            self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        """:returns: bytes the peak rose above the starting RSS."""
        return max(0, self.peak - self.start)


class HelperProcess:
    """A child Python process that prints ``READY <url>`` and exits when its stdin closes.

    :param args: arguments after ``python -m``.
    :param env: the child's environment (default: this process's).
    """

    def __init__(
        self, args: list[str], log_path: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.args = args
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    @property
    def pid(self) -> int:
        """:returns: the child's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> HelperProcess:
        """Start the child and wait (bounded) for its READY line. :returns: self."""
        log: IO[Any] | int = subprocess.DEVNULL
        if self.log_path:
            log = open(self.log_path, "ab")  # noqa: SIM115 - closed right after Popen
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *self.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                env=self.env,
            )
        finally:
            if not isinstance(log, int):
                log.close()
        line: list[str] = []
        reader = threading.Thread(
            target=lambda: line.append(self.proc.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(START_TIMEOUT)
        if not line or not line[0].startswith("READY "):
            self.stop()
            raise RuntimeError(f"{' '.join(self.args)} did not start (see {self.log_path})")
        self.base_url = line[0].split()[1]
        return self

    def stop(self) -> None:
        """Close the child's stdin and wait for it (terminate, then kill, if it hangs)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> HelperProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LocalServer:
    """The local API server in a child process, with its credentials."""

    process: HelperProcess
    data_dir: str
    token: str
    account_id: int

    @property
    def base_url(self) -> str:
        """:returns: ``http://127.0.0.1:<port>``."""
        return self.process.base_url

    @property
    def pid(self) -> int:
        """:returns: the server's process id."""
        return self.process.pid

    def account_url(self) -> str:
        """:returns: the account's API URL."""
        return f"{self.base_url}/v1/accounts/{self.account_id}"

    def headers(self) -> dict[str, str]:
        """:returns: the headers the SDK sends on every call (for bare-requests baselines)."""
        from kloudless.version import VERSION

        return {
            "Authorization": f"Bearer {self.token}",
            "User-Agent": f"kloudless-python/{VERSION}",
        }


def prepare_data_dir(data_dir: str, populate: Any = None) -> tuple[str, int]:
    """Create the first app, account and token in ``data_dir``; optionally fill it.

    :param populate: ``populate(store, account_id)`` run before the server starts.
    :returns: ``(token, account_id)``.
    """
    from kloudless.server import Settings, create_app
    from kloudless.server.bootstrap import bootstrap

    app = create_app(Settings(data_dir=data_dir))
    try:
        creds = bootstrap(app.store)
        assert creds is not None, "the data dir must be new"
        if populate is not None:
            populate(app, creds.account_id)
    finally:
        app.close()
    return creds.token, creds.account_id


@contextlib.contextmanager
def local_server(
    opts: Options, name: str, populate: Any = None, part_size: int = 8 * MIB
) -> Iterator[LocalServer]:
    """Run the local API server on a fresh data dir in a child process.

    :param name: used for the data dir and log file names.
    :param populate: see :func:`prepare_data_dir`.
    :param part_size: the server's multipart part size.
    """
    data_dir = os.path.join(opts.workdir, f"data-{name}")
    os.makedirs(data_dir)
    token, account_id = prepare_data_dir(data_dir, populate)
    log = os.path.join(opts.workdir, f"server-{name}.log")
    process = HelperProcess(["benchmarks._serve", data_dir, str(part_size), log], log)
    try:
        with process:
            yield LocalServer(process, data_dir, token, account_id)
    except BaseException:
        # The work dir is removed at the end: show the server's side of the failure now.
        with contextlib.suppress(OSError), open(log, encoding="utf-8", errors="replace") as fh:
            sys.stderr.write(f"--- last lines of the server log ({name}) ---\n")
            sys.stderr.write("".join(fh.readlines()[-60:]))
        raise
    shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def stub_server(opts: Options, total: int) -> Iterator[HelperProcess]:
    """Run :mod:`benchmarks._stub` with ``total`` folder items in a child process."""
    log = os.path.join(opts.workdir, "stub.log")
    with HelperProcess(["benchmarks._stub", str(total)], log) as process:
        yield process


@contextlib.contextmanager
def workdir() -> Iterator[str]:
    """A temporary directory for data dirs and test files, removed at the end."""
    path = tempfile.mkdtemp(prefix="kloudless-bench-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def percentile(values: Sequence[float], pct: float) -> float:
    """:returns: the ``pct`` percentile (nearest rank) of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def mib(value: float) -> str:
    """:returns: bytes as ``12.3 MiB``."""
    return f"{value / MIB:.1f} MiB"


def ratio(value: float, baseline: float) -> str:
    """:returns: ``value / baseline`` as ``0.97x`` (``-`` without a baseline)."""
    return f"{value / baseline:.2f}x" if baseline else "-"


def met(ok: bool) -> str:
    """:returns: ``met`` or ``MISSED``."""
    return "met" if ok else "MISSED"


class Clock:
    """Wall and CPU (this process) time of a block; add up several blocks."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self._w = 0.0
        self._c = 0.0

    def __enter__(self) -> Clock:
        self._w = time.perf_counter()
        self._c = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c
