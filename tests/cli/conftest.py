"""Fixtures of the command-line tests: a live local server and a fresh account per test."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from live_server import Credentials, LiveServer  # noqa: E402


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the whole session on 127.0.0.1 with a temporary data dir."""
    server = LiveServer(str(tmp_path_factory.mktemp("cli-server-data"))).start()
    yield server
    server.stop()


@pytest.fixture
def creds(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Credentials:
    """A fresh account; its KLOUDLESS_* variables are set for in-process CLI runs."""
    credentials = live_server.new_account()
    for name in ("KLOUDLESS_TOKEN", "KLOUDLESS_API_KEY", "KLOUDLESS_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KLOUDLESS_BASE_URL", credentials.base_url)
    monkeypatch.setenv("KLOUDLESS_TOKEN", credentials.token)
    return credentials


@dataclass
class Result:
    """Outcome of one command-line run."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> object:
    """Run ``kloudless ARGS...`` in-process and return its exit code and output."""
    from kloudless.cli import main

    def run(*argv: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse (--help, usage errors)
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(int(code or 0), captured.out, captured.err)

    return run
