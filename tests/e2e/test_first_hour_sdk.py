"""The SDK where a new user trips first (issue #18): ``download()`` on a contents answer, and a
readable one-line summary on every API error. Against the live local server."""

from __future__ import annotations

import io
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from kloudless import exceptions


def _upload(account: Any, name: str, body: bytes) -> Any:
    source = io.BytesIO(body)
    return account.upload(source, name=name)


def test_download_on_a_contents_answer_saves_its_body(account: Any, tmp_path: Path) -> None:
    uploaded = _upload(account, "big-file.bin", b"0123456789" * 1000)
    info = account.get(f"storage/files/{uploaded.data['id']}")
    contents = info.get("contents")  # the natural reading of the large-files page
    saved = contents.download(str(tmp_path / "copy.bin"))
    assert saved == str(tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == b"0123456789" * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.bin"]  # no temporary file left
    into = tmp_path / "folder"
    into.mkdir()
    saved_in = Path(info.get("contents").download(str(into)))
    assert saved_in.parent == into and saved_in.read_bytes() == b"0123456789" * 1000
    # An answer whose body was read already (.content) saves that body.
    read = info.get("contents")
    assert len(read.content) == 10_000
    buffer = io.BytesIO()
    assert read.download(buffer) == 10_000 and buffer.getvalue() == b"0123456789" * 1000
    # The file resource itself still streams its contents, as before.
    assert Path(info.download(str(tmp_path / "streamed.bin"))).stat().st_size == 10_000


def test_an_api_error_has_a_readable_summary_and_keeps_its_2x_text(account: Any) -> None:
    with pytest.raises(exceptions.NotFoundException) as caught:
        account.get("storage/files/no-such-file")
    error = caught.value
    assert str(error).startswith(error.default_message + " Error data: {")  # the 2.x format
    assert error.request_id and error.error_code == "not_found" and error.api_message
    assert error.summary == f"404 not_found: {error.api_message} (request {error.request_id})"
    assert repr(error) == (
        f"NotFoundException(status=404, error_code='not_found', request_id='{error.request_id}')"
    )
    shown = "".join(traceback.format_exception(error))
    if sys.version_info >= (3, 11):  # tracebacks show the note under the message
        assert getattr(error, "__notes__", None) == [error.summary]
        assert shown.rstrip().endswith(error.summary)
    # Errors the SDK raises itself have a summary too: their message.
    assert exceptions.InvalidParameter("bad").summary == "bad"
