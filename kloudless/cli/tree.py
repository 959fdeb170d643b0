"""Folder transfers: compare a local tree with a remote one, then copy (and delete) what differs.

``put -r``, ``get -r`` and ``sync`` share this module. A transfer is planned first
(:func:`plan`), so ``--dry-run`` prints exactly what would happen and nothing is changed until
every folder it needs exists. Then files go in parallel (``--transfers N``) under one progress bar
with file counts and bytes. One file's failure does not stop the others; the command reports
each failure and exits with the first one's code.

A file is "the same" on both sides when the sizes match and the modification times say the
destination is up to date: for an upload, the remote copy is not older than the local file; for
a download, the local file's time is the remote one (``get`` sets it). Interrupted downloads keep
their bytes beside the destination (see :func:`kloudless.transfer.download`), which ``--resume``
continues, so running the same command again finishes the job.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable

from kloudless.transfer import PARTIAL_SUFFIX

from . import output
from .context import Context
from .errors import EXIT_CONFLICT, CommandError
from .listing import quote_id
from .progress import Bar

#: Most entries one tree may hold (a typo such as ``put -r /`` stops with an error, not a hang).
MAX_ENTRIES = 200_000
#: Seconds two modification times may differ and still count as the same (FAT has 2 s steps).
MTIME_SLACK = 2.0


@dataclass
class Entry:
    """One file of a tree: its path relative to the tree's root (``a/b.txt``), size and time."""

    rel: str
    size: int
    mtime: float | None
    item: dict[str, Any] | None = None  # the remote file's JSON (remote trees)


@dataclass
class Tree:
    """The files and folders below one root (relative ``/``-separated paths)."""

    files: dict[str, Entry] = field(default_factory=dict)
    folders: dict[str, Any] = field(default_factory=dict)  # rel -> remote JSON, or None

    def add_file(self, entry: Entry) -> None:
        if len(self.files) + len(self.folders) >= MAX_ENTRIES:
            raise CommandError(f"more than {MAX_ENTRIES} files and folders; pick a smaller tree")
        self.files[entry.rel] = entry


def local_tree(root: str) -> Tree:
    """:returns: the regular files and folders below ``root`` (symbolic links are not followed;
    the bytes of unfinished downloads are left out)."""
    tree = Tree()
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not os.path.islink(os.path.join(folder, d)))
        rel_folder = os.path.relpath(folder, root).replace(os.sep, "/")
        base = "" if rel_folder == "." else rel_folder + "/"
        for name in subfolders:
            tree.folders[base + name] = None
        for name in sorted(names):
            path = os.path.join(folder, name)
            if name.endswith((PARTIAL_SUFFIX, PARTIAL_SUFFIX + ".json")) or os.path.islink(path):
                continue
            try:
                stat = os.stat(path)
            except FileNotFoundError:  # removed meanwhile
                continue
            tree.add_file(Entry(base + name, stat.st_size, stat.st_mtime))
    return tree


def remote_tree(ctx: Context, folder: dict[str, Any]) -> Tree:
    """:returns: the files and folders below a remote folder (listed level by level)."""
    tree = Tree()
    pending: list[tuple[str, dict[str, Any]]] = [("", folder)]
    seen = {str(folder["id"])}
    while pending:
        base, current = pending.pop(0)
        for item in ctx.resolver.children(str(current["id"])):
            rel = base + str(item.get("name"))
            if item.get("type") == "folder":
                if str(item["id"]) in seen:
                    continue
                seen.add(str(item["id"]))
                tree.folders[rel] = item
                pending.append((rel + "/", item))
            elif item.get("type") == "file":
                when = output.parse_time(item.get("modified"))
                size = int(item.get("size") or 0)
                tree.add_file(Entry(rel, size, when.timestamp() if when else None, item))
    return tree


@dataclass
class Plan:
    """What a transfer will do."""

    copy: list[Entry] = field(default_factory=list)  # source entries to send
    replace: set[str] = field(default_factory=set)  # of those, the ones that exist at the dest
    skip: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # exist at the dest, no policy given
    folders: list[str] = field(default_factory=list)  # to create at the destination, in order
    delete_files: list[Entry] = field(default_factory=list)
    delete_folders: list[str] = field(default_factory=list)  # outermost only

    @property
    def bytes(self) -> int:
        return sum(entry.size for entry in self.copy)


def same_file(source: Entry, dest: Entry, upload: bool) -> bool:
    """:returns: True when ``dest`` already holds ``source`` (see the module docstring)."""
    if source.size != dest.size or source.mtime is None or dest.mtime is None:
        return False
    if upload:
        return dest.mtime >= source.mtime - MTIME_SLACK
    return abs(dest.mtime - source.mtime) <= MTIME_SLACK


def plan(source: Tree, dest: Tree, *, upload: bool, existing: str, delete: bool = False) -> Plan:
    """Compare two trees.

    :param source: what is copied from.
    :param dest: what is there already.
    :param upload: the direction (it decides how times compare).
    :param existing: what to do with a file that exists at the destination: ``sync`` (copy it
        unless it is the same), ``replace``, ``skip``, ``rename`` (a new name, uploads only) or
        ``refuse`` (a conflict).
    :param delete: also remove what the destination has and the source does not.
    :returns: the plan.
    """
    result = Plan()
    result.folders = sorted(rel for rel in source.folders if rel not in dest.folders)
    needed = {rel.rsplit("/", 1)[0] for rel in source.files if "/" in rel}
    for rel in sorted(needed):
        parts = rel.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if prefix not in dest.folders and prefix not in result.folders:
                result.folders.append(prefix)
    result.folders.sort(key=lambda rel: (rel.count("/"), rel))
    for rel, entry in sorted(source.files.items()):
        there = dest.files.get(rel)
        if there is None:
            result.copy.append(entry)
        elif existing == "sync" and same_file(entry, there, upload):
            result.skip.append(rel)
        elif existing in ("sync", "replace"):
            result.copy.append(entry)
            result.replace.add(rel)
        elif existing == "skip":
            result.skip.append(rel)
        elif existing == "rename":
            result.copy.append(entry)
        else:
            result.conflicts.append(rel)
    if delete:
        gone = sorted(rel for rel in dest.folders if rel not in source.folders)
        for rel in gone:
            if not any(rel.startswith(outer + "/") for outer in result.delete_folders):
                result.delete_folders.append(rel)
        for rel, entry in sorted(dest.files.items()):
            inside = any(rel.startswith(outer + "/") for outer in result.delete_folders)
            if rel not in source.files and not inside:
                result.delete_files.append(entry)
    return result


def print_plan(result: Plan, where: str) -> None:
    """Print what ``result`` would do (``--dry-run``), one line per change, then a summary."""
    for rel in result.folders:
        output.echo(f"mkdir   {rel}/")
    for entry in result.copy:
        verb = "update" if entry.rel in result.replace else "copy  "
        output.echo(f"{verb}  {entry.rel}  ({output.format_size(entry.size)})")
    for rel in result.delete_folders:
        output.echo(f"delete  {rel}/")
    for entry in result.delete_files:
        output.echo(f"delete  {entry.rel}")
    output.info(f"dry run: nothing was changed in {where}; {summary(result)}")


def summary(result: Plan, copied: int | None = None) -> str:
    """:returns: e.g. ``3 files to copy (1.5 MiB), 2 unchanged, 1 to delete``."""
    count = len(result.copy) if copied is None else copied
    deletes = len(result.delete_files) + len(result.delete_folders)
    text = f"{count} file{'s' if count != 1 else ''} "
    text += "to copy" if copied is None else "copied"
    text += f" ({output.format_size(result.bytes)}), {len(result.skip)} unchanged or skipped"
    if deletes:
        text += f", {deletes} {'to delete' if copied is None else 'deleted'}"
    return text


def refuse_conflicts(result: Plan, flags: str) -> None:
    """:raises CommandError: when files exist at the destination and no policy was chosen."""
    if result.conflicts:
        shown = ", ".join(result.conflicts[:3]) + (" ..." if len(result.conflicts) > 3 else "")
        raise CommandError(
            f"{len(result.conflicts)} file(s) exist already ({shown}); use {flags}",
            EXIT_CONFLICT,
        )


class Cancelled(Exception):
    """Raised in a worker's progress callback to stop its transfer after Ctrl-C or a failure."""


@dataclass
class Outcome:
    """What happened to one file."""

    entry: Entry
    result: Any = None
    error: BaseException | None = None


class Runner:
    """Run one transfer job per file in parallel under one progress bar.

    :param bar: the bar (drawn or not).
    :param transfers: how many files go at once.
    :param total_bytes: the bytes to send, for the bar.
    """

    def __init__(self, bar: Bar, transfers: int, total_bytes: int) -> None:
        self.bar = bar
        self.transfers = transfers
        self.total_bytes = total_bytes
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._done: dict[str, int] = {}
        self._finished = 0

    def progress_for(self, entry: Entry) -> Callable[[int, int | None], None]:
        """:returns: the SDK progress callback of one file's transfer."""

        def progress(done: int, _total: int | None) -> None:
            if self.stop.is_set():
                raise Cancelled(entry.rel)
            with self._lock:
                self._done[entry.rel] = done
                overall = sum(self._done.values())
            self.bar.update(overall, self.total_bytes)

        return progress

    def run(
        self, entries: Sequence[Entry], job: Callable[[Entry, Callable[..., None]], Any]
    ) -> list[Outcome]:
        """Run ``job(entry, progress)`` for every entry; Ctrl-C stops them all.

        :returns: one outcome per entry that ran (in the order of ``entries``).
        """
        outcomes: dict[str, Outcome] = {}
        self.bar.files(0, len(entries))

        def one(entry: Entry) -> None:
            outcome = Outcome(entry)
            try:
                outcome.result = job(entry, self.progress_for(entry))
            except Exception as exc:  # reported with the others at the end
                outcome.error = exc
            with self._lock:
                outcomes[entry.rel] = outcome
                self._done[entry.rel] = entry.size
                self._finished += 1
                finished = self._finished
            self.bar.files(finished, len(entries))

        pool = ThreadPoolExecutor(self.transfers, thread_name_prefix="kloudless-transfer")
        try:
            futures: list[Future[None]] = [pool.submit(one, entry) for entry in entries]
            pending = set(futures)
            while pending:
                # Short waits keep the main thread responsive to Ctrl-C.
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
        except KeyboardInterrupt:
            self.stop.set()  # running transfers stop at their next chunk
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [outcomes[e.rel] for e in entries if e.rel in outcomes]


def remote_folders(
    ctx: Context, root: dict[str, Any], dest: Tree, rels: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Create the missing remote folders (outermost first).

    :returns: every folder of the destination tree by relative path (``""`` is the root).
    """
    known: dict[str, dict[str, Any]] = {"": root}
    known.update({rel: item for rel, item in dest.folders.items() if item is not None})
    for rel in rels:
        parent_rel, _, name = rel.rpartition("/")
        parent = known[parent_rel]
        known[rel] = ctx.resolver.make_folder(str(parent["id"]), name, exist_ok=True)
    return known


def delete_remote(ctx: Context, result: Plan, folders: dict[str, dict[str, Any]]) -> None:
    """Remove the destination's extras (``sync --delete``, upload direction)."""
    for rel in result.delete_folders:
        folder = folders[rel]
        ctx.account.delete(
            f"storage/folders/{quote_id(folder['id'])}", params={"recursive": "true"}
        )
    for entry in result.delete_files:
        assert entry.item is not None
        ctx.account.delete(f"storage/files/{quote_id(entry.item['id'])}")


def delete_local(root: str, result: Plan) -> None:
    """Remove the destination's extras (``sync --delete``, download direction)."""
    for rel in result.delete_folders:
        shutil.rmtree(os.path.join(root, *rel.split("/")))
    for entry in result.delete_files:
        os.unlink(os.path.join(root, *entry.rel.split("/")))
