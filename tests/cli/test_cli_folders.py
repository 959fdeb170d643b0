"""Folder transfers and resumable downloads of the command line (issue #18): ``put -r``,
``get -r``, ``sync`` (with ``--delete`` and ``--dry-run``), ``--transfers``, ``get --resume``,
name clashes. In-process against the live local server; every test has its own account."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from live_server import Credentials

from kloudless.cli.errors import EXIT_CONFLICT, EXIT_INTERRUPTED, EXIT_NOT_FOUND

Cli = Callable[..., Any]


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "docs/b.txt": b"bravo" * 100,
        "docs/deep/c.bin": os.urandom(200_000),
        "docs/deep/é ☕.txt": b"unicode",
    }
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    (root / "empty").mkdir()
    return files


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def remote_paths(cli: Cli, folder: str) -> set[str]:
    """Every file and folder below a remote folder, as relative paths (folders end in /)."""
    found: set[str] = set()

    def walk(node: dict[str, Any], base: str) -> None:
        for child in node.get("children") or []:
            rel = base + child["name"]
            if child["type"] == "folder":
                found.add(rel + "/")
                walk(child, rel + "/")
            else:
                found.add(rel)

    result = cli("tree", folder, "--json")
    assert result.code == 0, result.err
    walk(json.loads(result.out), "")
    return found


def test_put_r_and_get_r_copy_whole_trees(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    source = tmp_path / "src"
    files = make_tree(source)
    planned = cli("put", "-r", str(source), "/backup/2026", "--dry-run")
    assert planned.code == 0 and "copy    docs/deep/c.bin" in planned.out
    assert "dry run: nothing was changed" in planned.err
    assert cli("ls", "/backup").code == EXIT_NOT_FOUND  # a dry run creates nothing

    put = cli("put", "-r", str(source), "/backup/2026", "--transfers", "3")
    assert put.code == 0, put.err
    assert put.out.startswith("4 files copied (")
    assert remote_paths(cli, "/backup/2026") == {
        "a.txt",
        "docs/",
        "docs/b.txt",
        "docs/deep/",
        "docs/deep/c.bin",
        "docs/deep/é ☕.txt",
        "empty/",
    }

    dest = tmp_path / "copy"
    got = cli("get", "-r", "/backup/2026", str(dest), "--json")
    assert got.code == 0, got.err
    assert sorted(json.loads(got.out)["copied"]) == sorted(files)
    assert local_files(dest) == files and (dest / "empty").is_dir()

    # The files are there now: no silent overwrite, then a policy for them.
    again = cli("get", "-r", "/backup/2026", str(dest))
    assert again.code == EXIT_CONFLICT and "--force or --skip-existing" in again.err
    skipped = cli("get", "-r", "/backup/2026", str(dest), "--skip-existing")
    assert skipped.code == 0 and skipped.out.startswith("0 files copied")
    forced = cli("get", "-r", "/backup/2026", str(dest), "--force")
    assert forced.code == 0 and forced.out.startswith("4 files copied")

    # Uploading the same tree again: clashes are reported, or skipped on request.
    renamed = cli("put", "-r", str(source), "/backup/2026", "--transfers", "1")
    assert renamed.code == 0
    assert "a.txt exists in /backup/2026/; stored as a (1).txt" in renamed.err
    kept = cli("put", "-r", str(source), "/backup/2026", "--skip-existing")
    assert kept.code == 0 and kept.out.startswith("0 files copied")


def test_sync_both_ways_with_delete_and_dry_run(
    cli: Cli, creds: Credentials, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    files = make_tree(source)
    first = cli("sync", str(source), "/mirror")
    assert first.code == 0 and first.out.startswith("4 files copied"), first.err
    same = cli("sync", str(source), "/mirror")
    assert same.out.startswith("0 files copied") and "4 unchanged" in same.out

    (source / "a.txt").write_bytes(b"alpha, longer now\n")
    (source / "docs" / "b.txt").unlink()
    future = time.time() + 5
    os.utime(source / "a.txt", (future, future))
    dry = cli("sync", str(source), "/mirror", "--delete", "--dry-run")
    assert dry.code == 0
    assert dry.out.splitlines() == ["update  a.txt  (18 B)", "delete  docs/b.txt"]
    assert "docs/b.txt" in remote_paths(cli, "/mirror")  # nothing changed
    done = cli("sync", str(source), "/mirror", "--delete")
    assert done.code == 0 and "1 deleted" in done.out
    assert "docs/b.txt" not in remote_paths(cli, "/mirror")

    # And back: remote to local, removing local extras with --delete.
    local = tmp_path / "local"
    assert cli("sync", "/mirror", str(local)).code == 0
    expected = {k: v for k, v in files.items() if k != "docs/b.txt"}
    expected["a.txt"] = b"alpha, longer now\n"
    assert local_files(local) == expected
    (local / "stray.txt").write_text("not on the server")
    unchanged = cli("sync", "/mirror", str(local), "--delete")
    assert unchanged.code == 0 and unchanged.out.startswith("0 files copied")
    assert "1 deleted" in unchanged.out and not (local / "stray.txt").exists()
    both_local = cli("sync", str(source), str(local))
    assert both_local.code == 2 and "both local folders" in both_local.err


def test_put_parent_mkdir_and_skip_existing(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("n")
    missing = cli("put", str(note), "--parent", "/a/b")
    assert missing.code == EXIT_NOT_FOUND
    assert missing.err == "kloudless: error: no such folder: /a/b (add --mkdir to create it)\n"
    made = cli("put", str(note), "--parent", "/a/b", "--mkdir", "--json")
    assert made.code == 0 and json.loads(made.out)["path"] == "/a/b/note.txt"
    skipped = cli("put", str(note), "--parent", "/a/b", "--skip-existing", "--json")
    assert skipped.code == 0 and json.loads(skipped.out) == []
    assert skipped.err == "kloudless: skipped note.txt: it exists in /a/b\n"
    assert remote_paths(cli, "/a/b") == {"note.txt"}
    folder = cli("put", str(tmp_path))
    assert folder.code == 2 and "use put -r" in folder.err


def interrupt_downloads_halfway(monkeypatch: pytest.MonkeyPatch, size: int) -> Callable[[], None]:
    """Make the progress bar raise Ctrl-C once half of ``size`` bytes arrived.

    :returns: a function that undoes it.
    """
    from kloudless.cli import progress

    update = progress.Bar.update

    def ctrl_c_halfway(self: Any, done: int, total: int | None) -> None:
        if done >= size // 2:
            raise KeyboardInterrupt
        update(self, done, total)

    monkeypatch.setattr(progress.Bar, "update", ctrl_c_halfway)
    return lambda: monkeypatch.setattr(progress.Bar, "update", update)


def test_get_resume_continues_the_kept_bytes(
    cli: Cli, creds: Credentials, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = os.urandom(1024 * 1024)
    (tmp_path / "big.bin").write_bytes(payload)
    assert cli("put", str(tmp_path / "big.bin")).code == 0
    dest = tmp_path / "out" / "big.bin"
    dest.parent.mkdir()
    restore = interrupt_downloads_halfway(monkeypatch, len(payload))
    stopped = cli("get", "/big.bin", str(dest), "--chunk-size", "64K")
    assert stopped.code == EXIT_INTERRUPTED
    assert stopped.err == f"interrupted; resume with: kloudless get /big.bin {dest} --resume\n"
    kept = dest.with_name("big.bin.kloudless-part")
    assert not dest.exists() and len(payload) // 2 <= kept.stat().st_size < len(payload)

    restore()
    resumed = cli("get", "/big.bin", str(dest), "--resume", "-v")
    assert resumed.code == 0, resumed.err
    assert "continuing after" in resumed.err  # a Range request for the rest only
    assert dest.read_bytes() == payload
    assert sorted(p.name for p in dest.parent.iterdir()) == ["big.bin"]


def test_get_resume_starts_over_when_the_file_changed(
    cli: Cli, creds: Credentials, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = os.urandom(512 * 1024), os.urandom(512 * 1024)  # same size, new bytes
    (tmp_path / "f.bin").write_bytes(first)
    assert cli("put", str(tmp_path / "f.bin")).code == 0
    dest = tmp_path / "got.bin"
    restore = interrupt_downloads_halfway(monkeypatch, len(first))
    assert cli("get", "/f.bin", str(dest), "--chunk-size", "64K").code == EXIT_INTERRUPTED
    restore()
    (tmp_path / "f.bin").write_bytes(second)
    assert cli("put", str(tmp_path / "f.bin"), "--overwrite").code == 0
    resumed = cli("get", "/f.bin", str(dest), "--resume")
    assert resumed.code == 0, resumed.err
    assert dest.read_bytes() == second  # If-Range: the server sent the new version whole


def test_put_r_into_a_parent_given_by_id(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    source = tmp_path / "album"
    (source / "2026").mkdir(parents=True)
    (source / "2026" / "p.txt").write_text("p")
    parent = json.loads(cli("mkdir", "-p", "/Pictures", "--json").out)
    result = cli("put", "-r", str(source), "--parent", parent["id"])
    assert result.code == 0, result.err
    assert remote_paths(cli, "/Pictures") == {"album/", "album/2026/", "album/2026/p.txt"}


def test_one_progress_bar_counts_files_and_bytes(
    cli: Cli, creds: Credentials, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kloudless.cli.progress._want_bar", lambda enabled: enabled)
    source = tmp_path / "src"
    make_tree(source)
    result = cli("put", "-r", str(source), "/bar", "--transfers", "2")
    assert result.code == 0, result.err
    assert "4 files:" in result.err and "4/4 files, " in result.err and "KiB" in result.err
    assert result.err.count("\r") > 1  # one bar redrawn in place, not one per file
