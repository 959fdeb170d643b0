"""The path/id resolver with a stub account (cases the local server cannot produce)."""

from __future__ import annotations

from typing import Any

import pytest

from kloudless.cli.errors import CommandError
from kloudless.cli.resolve import Resolver


class Page:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def get_paging_iterator(self) -> Any:
        return iter([type("R", (), {"data": item})() for item in self.items])


class StubAccount:
    """Root holds two files called ``twin.txt`` (allowed by some services) and a folder."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.tree = {
            "root": [
                {"id": "f1", "name": "twin.txt", "type": "file"},
                {"id": "f2", "name": "twin.txt", "type": "file"},
                {"id": "d1", "name": "docs", "type": "folder"},
            ],
            "d1": [{"id": "f3", "name": "a.txt", "type": "file"}],
        }

    def get(self, path: str, params: Any = None) -> Any:
        self.calls.append(path)
        if path.endswith("/contents"):
            return Page(self.tree[path.split("/")[2]])
        if path == "storage/folders/root":
            return type("R", (), {"data": {"id": "root", "name": "", "type": "folder"}})()
        raise AssertionError(f"unexpected request: {path}")


def test_ambiguous_name_needs_an_id() -> None:
    resolver = Resolver(StubAccount())
    with pytest.raises(CommandError, match="ambiguous.*f1, f2"):
        resolver.resolve("/twin.txt")


def test_paths_walk_and_listings_are_cached() -> None:
    account = StubAccount()
    resolver = Resolver(account)
    assert resolver.resolve("/docs/a.txt")["id"] == "f3"
    assert resolver.resolve("docs/a.txt", kind="file")["id"] == "f3"
    assert account.calls.count("storage/folders/d1/contents") == 1
    with pytest.raises(CommandError, match="not a folder: /docs/a.txt"):
        resolver.resolve("/docs/a.txt/more")
    with pytest.raises(CommandError, match="not a folder"):
        resolver.resolve("/docs/a.txt", kind="folder")
