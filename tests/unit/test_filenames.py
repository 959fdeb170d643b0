"""kloudless.filenames: untrusted names become safe file names that stay in their folder."""

from __future__ import annotations

import os
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kloudless import filenames
from kloudless.filenames import MAX_NAME_BYTES, safe_filename, safe_join


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../.bashrc", ".bashrc"),
        ("..\\..\\evil.exe", "evil.exe"),
        ("/etc/passwd", "passwd"),
        ("C:\\Windows\\win.ini", "win.ini"),
        ("C:evil.txt", "evil.txt"),
        ("dir/sub/", "sub"),
        ("a/../b", "b"),
        ("nul\x00byte.txt", "nulbyte.txt"),
        ("tab\there\r\n.txt", "tabhere.txt"),
        ("bell\x07\x7f\x9b.txt", "bell.txt"),
        ("invoice\u202etxt.exe", "invoicetxt.exe"),
        ('what?<>:"|*.txt', "what_______.txt"),
        ("file.txt:stream", "file.txt_stream"),
        ("trailing. . .", "trailing"),
        ("  spaced  ", "spaced"),
        (".hidden", ".hidden"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("Lpt9.tar.gz", "_Lpt9.tar.gz"),
        ("COM1 .log", "_COM1 .log"),
        ("com\u00b9", "_com\u00b9"),
        ("CONIN$", "_CONIN$"),
        ("console.txt", "console.txt"),
        ("COM10", "COM10"),
        ("e\u0301t\u00e9.txt", "\u00e9t\u00e9.txt"),
    ],
)
def test_safe_filename_cases(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


@pytest.mark.parametrize(
    "name", [None, "", ".", "..", "...", "///", "\\\\", " . ", "\x00\x01", "C:"]
)
def test_unusable_names_fall_back_to_default(name: str | None) -> None:
    assert safe_filename(name) == "download"
    assert safe_filename(name, default="file.bin") == "file.bin"


def test_default_is_cleaned_and_must_be_usable() -> None:
    assert safe_filename("", default="../x") == "x"
    with pytest.raises(ValueError, match="not a usable file name"):
        safe_filename("", default="..")


def test_non_string_name_is_refused() -> None:
    with pytest.raises(TypeError, match="bytes"):
        safe_filename(b"x.txt")  # type: ignore[arg-type]


def test_long_name_keeps_extension_within_255_bytes() -> None:
    name = "\u00e9" * 300 + ".jpeg"
    result = safe_filename(name)
    assert result.endswith(".jpeg")
    assert len(result.encode("utf-8")) <= MAX_NAME_BYTES
    # Two-byte characters are never cut in half.
    assert result[:-5] == "\u00e9" * len(result[:-5])


def test_long_name_with_long_or_no_extension_is_cut() -> None:
    no_ext = "a" * 400
    assert safe_filename(no_ext) == "a" * MAX_NAME_BYTES
    long_ext = "b" * 10 + "." + "c" * 300
    result = safe_filename(long_ext)
    assert len(result.encode("utf-8")) == MAX_NAME_BYTES
    assert result.startswith("b" * 10 + ".")


def test_truncation_does_not_leave_trailing_dots() -> None:
    name = "x" * 250 + "." * 10 + "y" * 10
    result = safe_filename(name)
    assert not result.endswith((".", " "))
    assert len(result.encode("utf-8")) <= MAX_NAME_BYTES


def test_safe_join_stays_in_folder(tmp_path: pathlib.Path) -> None:
    path = safe_join(tmp_path, "../../etc/passwd")
    assert path == os.path.join(str(tmp_path), "passwd")
    assert safe_join(str(tmp_path), None) == os.path.join(str(tmp_path), "download")
    assert safe_join(tmp_path, "", default="x.bin").endswith(os.sep + "x.bin")


def test_safe_join_relative_folder_becomes_absolute() -> None:
    assert safe_join("some/dir", "a.txt") == os.path.join(os.path.abspath("some/dir"), "a.txt")


def test_safe_join_checks_its_guarantee(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    # Defence in depth: even a broken cleaner cannot make safe_join leave the folder.
    monkeypatch.setattr(filenames, "safe_filename", lambda name, default: "../escape")
    with pytest.raises(ValueError, match="leaves the folder"):
        safe_join(tmp_path, "x")
    monkeypatch.setattr(filenames, "safe_filename", lambda name, default: "..")
    with pytest.raises(ValueError, match="leaves the folder"):
        safe_join(tmp_path, "x")


# Names built from the characters that matter most for escaping, plus arbitrary text.
_pieces = st.sampled_from(list('./\\:\x00 \t\n*?<>|"aZ0é€\u202e') + ["..", "CON", "nul", "C:"])
_hostile = st.lists(_pieces, max_size=40).map("".join)
_names = st.one_of(_hostile, st.text(max_size=300), st.lists(_hostile, max_size=6).map("/".join))


@settings(max_examples=200, deadline=None)
@given(_names)
def test_property_safe_filename_is_one_safe_component(name: str) -> None:
    result = safe_filename(name)
    assert result
    assert result not in (".", "..")
    assert "/" not in result and "\\" not in result and "\x00" not in result
    assert not any(ord(c) < 32 for c in result)
    assert len(result.encode("utf-8")) <= MAX_NAME_BYTES
    assert not result.endswith((".", " "))
    assert result.split(".", 1)[0].rstrip(" ").upper() not in filenames._RESERVED
    assert safe_filename(result) == result  # idempotent


@settings(max_examples=200, deadline=None)
@given(_names)
def test_property_safe_join_never_escapes(name: str) -> None:
    folder = os.path.abspath("target-folder")
    path = safe_join(folder, name)
    assert os.path.dirname(path) == folder
    assert os.path.commonpath([folder, os.path.normpath(path)]) == folder
    assert os.path.normpath(path) != folder
