"""``kloudless accounts create --rclone-*``: import a remote from an rclone config file, or build
one from options; the account then serves the storage API."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from werkzeug.test import Client

from kloudless.cli import main
from kloudless.server import Settings, create_app
from kloudless.server.store import Store

from .servers import PASSWORD, Upstreams


def _create(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["accounts", "create", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _token(out: str) -> str:
    match = re.search(r"export KLOUDLESS_TOKEN=(\S+)", out)
    assert match, out
    return match.group(1)


def test_import_from_config_file_and_from_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], upstreams: Upstreams
) -> None:
    data = str(tmp_path / "data")
    Store(str(tmp_path / "data" / "kloudless.sqlite3")).close()  # a server's first start
    assert main(["apps", "show", "--data-dir", data]) == 0
    capsys.readouterr()  # its own export lines are not the new accounts'
    files = tmp_path / "files"
    (files / "sub").mkdir(parents=True)
    (files / "sub" / "hello.txt").write_bytes(b"hi from disk")
    conf = tmp_path / "rclone.conf"
    conf.write_text("[disk]\ntype = local\n", encoding="utf-8")

    status, out, err = _create(
        capsys,
        "--data-dir", data, "--rclone-remote", "disk", "--rclone-config", str(conf),
        "--rclone-path", str(files / "sub"),
    )  # fmt: skip
    assert status == 0, err
    assert "(rclone_local, 'disk (local)')" in out
    disk_token = _token(out)

    sftp = upstreams.make("sftp")
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    options = [f"--rclone-option={k}={v}" for k, v in sftp.options.items() if k != "pass"]
    status, out, err = _create(
        capsys, "--data-dir", data, "--rclone-type", "sftp", *options,
        f"--rclone-option=pass=@{secret}", "--rclone-path", sftp.path,
        "--allow-upstream", "127.0.0.1",
    )  # fmt: skip
    assert status == 0, err
    assert "(sftp, 'rclone-user@127.0.0.1')" in out and PASSWORD not in out + err
    sftp_token = _token(out)

    app = create_app(Settings(data_dir=data, allow_upstream=["127.0.0.1"]))
    try:
        client = Client(app)
        listing = client.get(
            "/v1/accounts/me/storage/folders/root/contents",
            headers={"Authorization": f"Bearer {disk_token}"},
        )
        assert [o["name"] for o in listing.get_json()["objects"]] == ["hello.txt"], (
            listing.get_json()
        )
        meta = json.dumps({"parent_id": "root", "name": "via-cli.txt"})
        up = client.post(
            "/v1/accounts/me/storage/files",
            data=b"x",
            headers={"Authorization": f"Bearer {sftp_token}", "X-Kloudless-Metadata": meta},
        )
        assert up.status_code == 201, up.get_json()
        assert (sftp.folder / "via-cli.txt").read_bytes() == b"x"
    finally:
        app.close()


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    Store(str(tmp_path / "data" / "kloudless.sqlite3")).close()
    assert main(["apps", "show", "--data-dir", data]) == 0
    assert _create(capsys, "--data-dir", data, "--rclone-option", "a=b")[0] == 2
    assert (
        _create(capsys, "--data-dir", data, "--rclone-type", "sftp", "--rclone-option", "x")[0] == 2
    )
    status, _, err = _create(
        capsys, "--data-dir", data, "--rclone-remote", "x", "--rclone-config", str(tmp_path / "no")
    )
    assert status == 1 and "No rclone config file" in err
    conf = tmp_path / "r.conf"
    conf.write_text("[a]\ntype = local\n", encoding="utf-8")
    status, _, err = _create(
        capsys, "--data-dir", data, "--rclone-remote", "b", "--rclone-config", str(conf)
    )
    assert status == 1 and "No remote 'b'" in err
