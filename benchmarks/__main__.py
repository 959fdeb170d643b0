"""``python -m benchmarks [NAME ...] [--quick] [--size BYTES] [--record FILE]``.

Runs the benchmarks (all, or the named ones: overhead, paging, downloads, uploads, server,
blobstores, scale, peers) and prints the machine description and one table per benchmark.
``--quick`` uses tiny sizes (the smoke test; it leaves ``scale`` out unless named); ``--size``
sets the large-file size (default 1 GiB; suffixes K, M, G); ``--record`` writes the tables into
the results block of an reStructuredText file (``docs/performance.rst``), after saving the run
beside it (``docs/performance.json``, see :mod:`benchmarks.results`; a run of named benchmarks
replaces only the tables it measured and keeps the others), and draws the charts of the
recorded data (:mod:`benchmarks.charts`) into ``_generated/charts`` beside the page, where the
docs build draws them too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import time

from . import charts
from ._util import GIB, Options, Table, machine_info, workdir
from .results import BEGIN, END, record

__all__ = ["BEGIN", "END", "main", "parse_size", "record"]

NAMES = ("overhead", "paging", "downloads", "uploads", "server", "blobstores", "scale", "peers")
#: Left out of ``--quick`` runs without names (the smoke test): it starts several servers.
NOT_QUICK = ("scale",)


def parse_size(text: str) -> int:
    """:returns: bytes for ``1G``, ``256M``, ``64K`` or a plain number."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    factor = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[match.group(2).upper()]
    return int(match.group(1)) * factor


def main(argv: list[str] | None = None) -> int:
    """:returns: the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", choices=[[], *NAMES], metavar="NAME", help=", ".join(NAMES)
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--size", type=parse_size, default=GIB, help="large file size (1G)")
    parser.add_argument("--record", metavar="FILE", help="write the tables into FILE")
    args = parser.parse_args(argv)
    names = args.names or [n for n in NAMES if not (args.quick and n in NOT_QUICK)]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    machine = machine_info()
    print("Machine")
    print("=======")
    for name, value in machine:
        print(f"{name:20} {value}")
    print(flush=True)
    tables: list[Table] = []
    started = time.perf_counter()
    with workdir() as path:
        opts = Options(quick=args.quick, size=args.size, workdir=path)
        for name in names:
            began = time.perf_counter()
            module = importlib.import_module(f"{__package__}.{name}")
            for table in module.run(opts):
                tables.append(table)
                print(table.render())
                print(flush=True)
            print(f"[{name}: {time.perf_counter() - began:.1f} s]\n", flush=True)
    total = time.perf_counter() - started
    print(f"All benchmarks: {total:.1f} s")
    if args.record:
        command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
        command = re.sub(r"\s*--record(=|\s+)\S+", "", command).strip()
        data_file = record(args.record, machine, tables, command, keep_others=bool(args.names))
        print(f"Recorded in {args.record} and {data_file}")
        folder = os.path.join(os.path.dirname(os.path.abspath(args.record)), charts.TARGET_DIR)
        for path in charts.render_all(data_file, folder):
            print(f"Chart: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
