"""``kloudless apps provider set|list|remove`` and the sealed provider settings."""

from __future__ import annotations

import io
from typing import Any

import pytest

from kloudless.cli import main
from kloudless.server import Settings, create_app
from kloudless.server.bootstrap import bootstrap
from kloudless.server.connectors import providers
from kloudless.server.errors import ApiError

SECRET = "s3cr3t-client-secret-value"


def test_set_list_remove_with_the_secret_sealed(
    tmp_path: Any, capsys: Any, monkeypatch: Any
) -> None:
    data = str(tmp_path / "data")
    app = create_app(Settings(data_dir=data))
    try:
        creds = bootstrap(app.store)
        assert creds is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
        args = ["apps", "provider", "set", "google", "--data-dir", data, "--client-id", "cid-1"]
        assert main([*args, "--client-secret-stdin"]) == 0
        out = capsys.readouterr().out
        assert "/v1/oauth/callback" in out and SECRET not in out
        secret_file = tmp_path / "box-secret"
        secret_file.write_text("box-secret-value\n")
        assert (
            main(
                [
                    "apps",
                    "provider",
                    "set",
                    "box",
                    "--data-dir",
                    data,
                    "--client-id",
                    "cid-2",
                    "--client-secret-file",
                    str(secret_file),
                    "--scope",
                    "root_readwrite",
                    "--api-base",
                    "https://box.example/",
                    "--token-url",
                    "https://box.example/t",
                ]
            )
            == 0
        )
        capsys.readouterr()
        assert main(["apps", "provider", "list", "--data-dir", data]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("google\tclient cid-1\tscopes https://www.googleapis.com/")
        assert lines[1].startswith("box\tclient cid-2\tscopes root_readwrite\t")
        assert "api_base=https://box.example" in lines[1]
        assert all(SECRET not in line and "box-secret" not in line for line in lines)

        # Sealed at rest: neither secret is in the database file.
        rows = app.store.all("SELECT * FROM provider_apps")
        assert len(rows) == 2
        assert all(SECRET not in str(dict(r)) and "box-secret" not in str(dict(r)) for r in rows)
        google = providers.load(app.store, creds.app_id, "google")
        assert google is not None and google.client_secret == SECRET
        assert google.token_url == "https://oauth2.googleapis.com/token"
        assert google.scopes == ("https://www.googleapis.com/auth/drive",)
        box = providers.load(app.store, creds.app_id, "box")
        assert box is not None and box.api_base == "https://box.example"
        assert box.api_hosts() == {("https", "box.example", 443), ("https", "upload.box.com", 443)}
        assert "box-secret-value" not in repr(box)

        assert main(["apps", "provider", "remove", "box", "--data-dir", data]) == 0
        assert main(["apps", "provider", "remove", "box", "--data-dir", data]) == 1
        assert [p.name for p in providers.configured(app.store, creds.app_id)] == ["google"]
    finally:
        app.close()


def test_bad_settings_are_refused(tmp_path: Any, capsys: Any, monkeypatch: Any) -> None:
    data = str(tmp_path / "data")
    app = create_app(Settings(data_dir=data))
    try:
        assert bootstrap(app.store) is not None
        monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
        base = ["apps", "provider", "set", "dropbox", "--data-dir", data, "--client-id", "c"]
        assert main([*base, "--client-secret-stdin", "--token-url", "ftp://x/"]) == 2
        assert "token_url" in capsys.readouterr().err
        monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
        assert main([*base, "--client-secret-stdin"]) == 2
        assert "client_secret" in capsys.readouterr().err
        with pytest.raises(SystemExit):  # the secret is never a command-line value
            main([*base, "--client-secret", "abc"])
    finally:
        app.close()


def test_build_validates_values() -> None:
    with pytest.raises(ApiError, match="Unknown provider"):
        providers.build("yahoo", {"client_id": "a", "client_secret": "b"})
    with pytest.raises(ApiError, match="spaces"):
        providers.build("google", {"client_id": "a", "client_secret": "b", "scopes": ["a b"]})
    with pytest.raises(ApiError, match="user info"):
        providers.build(
            "google", {"client_id": "a", "client_secret": "b", "api_base": "https://u:p@h"}
        )
    dropbox = providers.build("dropbox", {"client_id": "a", "client_secret": "b"})
    assert dropbox.api_hosts() == {
        ("https", "api.dropboxapi.com", 443),
        ("https", "content.dropboxapi.com", 443),
    }
    assert providers.provider_of_service("skydrive") is providers.CATALOGUE["microsoft"]
    assert providers.provider_of_service("s3") is None
