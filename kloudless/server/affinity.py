"""Pinning the worker processes of ``kloudless serve --workers N`` to CPU cores
(``--cpu-affinity auto``, :attr:`Settings.cpu_affinity
<kloudless.server.settings.Settings.cpu_affinity>`).

One Python process runs one thread at a time (the GIL), yet the kernel spreads its threads over
every core it may use: on 2 idle cores a process of 8 threads spent 1,900-2,150 µs of CPU per
4 KiB ``GET`` handing the GIL from a thread on one core to a thread on the other, against
517-580 µs with all its threads on one core (``docs/performance.rst``, benchmark 7). With
``auto`` worker ``i`` runs on the ``i``-th core the process may use (``os.sched_getaffinity``:
a cpuset, ``taskset`` or a container's limit is respected), round the list again when there
are more workers than cores, as nginx's ``worker_cpu_affinity auto`` does. A worker pins itself
right after the fork, before it starts a thread, so every thread it makes stays on that core;
a worker started in place of a dead one gets the same core. Where the platform cannot pin
(macOS has no ``sched_setaffinity``) it is a no-op with a log line.
"""

from __future__ import annotations

import logging
import os

__all__ = ["pin", "plan"]

log = logging.getLogger("kloudless.server")


def plan(workers: int) -> list[int] | None:
    """:returns: the core of each of ``workers`` workers, in order (the cores this process may
    use, from the lowest, again from the first when there are more workers), or None when this
    platform cannot pin processes (logged)."""
    if not hasattr(os, "sched_getaffinity") or not hasattr(os, "sched_setaffinity"):
        log.info("cpu affinity: this platform cannot pin processes to cores; workers not pinned")
        return None
    cores = sorted(os.sched_getaffinity(0))
    if workers > len(cores):
        log.info(
            "cpu affinity: %d workers on %d cores: some cores run several workers",
            workers,
            len(cores),
        )
    return [cores[index % len(cores)] for index in range(workers)]


def pin(core: int) -> bool:
    """Pin the calling process (its calling thread and every thread it starts later) to
    ``core``. :returns: True when pinned; False (logged) when the kernel refused, e.g. the
    core went offline or left the process's cpuset since :func:`plan`."""
    try:
        os.sched_setaffinity(0, {core})
    except OSError as exc:
        log.warning("cpu affinity: process %d not pinned to core %d: %s", os.getpid(), core, exc)
        return False
    log.info("cpu affinity: process %d pinned to core %d", os.getpid(), core)
    return True
