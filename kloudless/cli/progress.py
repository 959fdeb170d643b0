"""Progress bars for uploads and downloads in the command line.

tqdm is the ``cli`` extra: it is imported lazily and only used when stderr is a terminal, so pipes,
scripts and test runs stay silent and the command line works without it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Optional

#: The callback shape the SDK's transfer helpers call: ``progress(bytes_done, bytes_total)``.
ProgressCallback = Callable[[int, Optional[int]], None]


def _want_bar(enabled: bool) -> bool:
    if not enabled:
        return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """Yield a progress callback drawing a tqdm bar on stderr, or None when no bar is shown.

    No bar is shown when ``enabled`` is false, when stderr is not a terminal, or when tqdm is not
    installed. The bar is closed when the block ends, whatever happens inside it.

    :param description: the label in front of the bar (e.g. the file name).
    :param enabled: False to never show a bar (``--no-progress``).
    :returns: a context manager yielding ``callback(done, total)`` or None.
    """
    if not _want_bar(enabled):
        yield None
        return
    try:
        from tqdm import tqdm
    except ImportError:
        yield None
        return
    bar: Any = tqdm(
        desc=description,
        total=None,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        leave=False,
    )

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
            bar.refresh()
        # The SDK reports absolute progress; tqdm counts increments (parts may be retried).
        if done >= bar.n:
            bar.update(done - bar.n)
        else:
            bar.n = done
            bar.refresh()
        if total is not None and done >= total:
            bar.refresh()  # show the finished state even if tqdm's rate limit skipped it

    try:
        yield update
    finally:
        bar.close()
