"""Progress bars for uploads and downloads in the command line, and the retry notices.

tqdm is the ``cli`` extra: it is imported lazily and only used when stderr is a terminal, so pipes,
scripts and test runs stay silent and the command line works without it.

Sizes on the bar use the same binary units as the tables (``1.5 MiB``, see
:func:`kloudless.cli.output.format_size`). While the SDK waits before a retry, the bar's line
says so (``retrying in 2s (attempt 2/4)``); without a bar the notice is one line on stderr.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Optional

from . import output

#: The callback shape the SDK's transfer helpers call: ``progress(bytes_done, bytes_total)``.
ProgressCallback = Callable[[int, Optional[int]], None]

_KNOWN_TOTAL = "{desc}: {percentage:3.0f}%|{bar}| {sizes} [{elapsed}<{remaining}, {speed}]{note}"
_UNKNOWN_TOTAL = "{desc}: {sizes} [{elapsed}, {speed}]{note}"

# The bars on screen, newest last: retry notices go to the newest one.
_active: list[Any] = []
_active_lock = threading.Lock()


def _want_bar(enabled: bool) -> bool:
    if not enabled:
        return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


def _bar_class() -> Any:
    """:returns: a tqdm subclass showing sizes in binary units, file counts and a note."""
    from tqdm import tqdm

    class TransferBar(tqdm):
        note = ""
        files: tuple[int, int] | None = None

        @property
        def format_dict(self) -> dict[str, Any]:
            values = dict(super().format_dict)
            done, total = values.get("n") or 0, values.get("total")
            sizes = output.format_size(done)
            if total:
                sizes += f"/{output.format_size(total)}"
            if self.files is not None:
                sizes = f"{self.files[0]}/{self.files[1]} files, {sizes}"
            rate = values.get("rate")
            values["sizes"] = sizes
            values["speed"] = f"{output.format_size(rate)}/s" if rate else "-/s"
            values["note"] = f"  {self.note}" if self.note else ""
            return values

    return TransferBar


class Bar:
    """One progress bar on stderr, or nothing (off a terminal, ``--no-progress``, no tqdm).

    :param bar: the tqdm bar, or None when nothing is drawn.
    """

    def __init__(self, bar: Any) -> None:
        self._bar = bar

    @property
    def shown(self) -> bool:
        """True when a bar is drawn."""
        return self._bar is not None

    def update(self, done: int, total: int | None) -> None:
        """Show ``done`` of ``total`` bytes (absolute counts, as the SDK reports them)."""
        bar = self._bar
        if bar is None:
            return
        if total is not None and bar.total != total:
            bar.total = total
            bar.bar_format = _KNOWN_TOTAL
        if done > bar.n:
            bar.note = ""  # bytes move again: the retry worked
            bar.update(done - bar.n)
        elif done < bar.n:  # a part or a download started again
            bar.n = done
            bar.refresh()
        if total is not None and done >= total:
            bar.refresh()  # show the finished state even if tqdm's rate limit skipped it

    def files(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` files (folder transfers)."""
        if self._bar is not None:
            self._bar.files = (done, total)
            self._bar.refresh()

    def note(self, text: str) -> None:
        """Show ``text`` at the end of the bar's line until the bytes move again."""
        if self._bar is not None:
            self._bar.note = text
            self._bar.refresh()

    def write(self, text: str) -> None:
        """Print a line on stderr above the bar (or plainly when no bar is drawn)."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            output.info(text)


@contextmanager
def transfer_bar(description: str, enabled: bool = True, total: int | None = None) -> Iterator[Bar]:
    """Yield a :class:`Bar` drawing on stderr (or drawing nothing, see :class:`Bar`).

    The bar is closed when the block ends, whatever happens inside it.

    :param description: the label in front of the bar (e.g. the file name).
    :param enabled: False to never show a bar (``--no-progress``).
    :param total: the byte count when known already.
    """
    bar: Any = None
    if _want_bar(enabled):
        try:
            bar = _bar_class()(
                desc=description,
                total=total,
                file=sys.stderr,
                leave=False,
                bar_format=_KNOWN_TOTAL if total else _UNKNOWN_TOTAL,
            )
        except ImportError:
            bar = None
    wrapper = Bar(bar)
    if bar is not None:
        with _active_lock:
            _active.append(wrapper)
    try:
        yield wrapper
    finally:
        if bar is not None:
            with _active_lock:
                _active.remove(wrapper)
            bar.close()


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """Yield a progress callback drawing a bar on stderr, or None when no bar is shown.

    :param description: the label in front of the bar (e.g. the file name).
    :param enabled: False to never show a bar (``--no-progress``).
    :returns: a context manager yielding ``callback(done, total)`` or None.
    """
    with transfer_bar(description, enabled) as bar:
        yield bar.update if bar.shown else None


def retry_notice(record: logging.LogRecord) -> str | None:
    """:returns: ``retrying in 2s (attempt 2/4)`` for an SDK "retrying" log record, else None.

    The SDK puts the fields on its records (:func:`kloudless.retry.retry_record_fields`).
    """
    delay = getattr(record, "retry_delay", None)
    attempt = getattr(record, "retry_attempt", None)
    if delay is None or attempt is None:
        return None
    total = getattr(record, "retry_total", None)
    # The SDK counts retries; people count attempts (the first try is attempt 1).
    of = f"/{total + 1}" if isinstance(total, int) else ""
    wait = f"{delay:.0f}s" if delay >= 1 else f"{delay:.1f}s"
    return f"retrying in {wait} (attempt {attempt + 1}{of})"


class RetryNotices(logging.Handler):
    """Shows the SDK's retries: on the newest progress bar, or as a line on stderr.

    :param lines: print a line when no bar is drawn (off with ``-v``, whose log says it already).
    """

    def __init__(self, lines: bool = True) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        text = retry_notice(record)
        if text is None:
            return
        with _active_lock:
            bar = _active[-1] if _active else None
        if bar is not None:
            bar.note(text)
        elif self.lines:
            cause = getattr(record, "retry_cause", None)
            output.info(f"{output.PROG}: {text}" + (f" after {cause}" if cause else ""))
