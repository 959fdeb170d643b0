"""Ctrl-C before a command runs ends the command line quietly with status 130."""

from __future__ import annotations

import argparse

import pytest

import kloudless.cli as cli


def test_keyboard_interrupt_while_building_the_parser_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted() -> argparse.ArgumentParser:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["ls"]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip() == "Interrupted."
    assert "Traceback" not in captured.err
