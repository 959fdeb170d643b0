"""A provider's 401 on the storage side refreshes the token once and repeats a GET.

rclone's provider backends cannot be pointed at the stand-in API (no endpoint option), so the
storage backend here is a small stand-in for rclone: it lists the stand-in provider's API with
the token it was handed and reports a 401 as rclone does (``ServiceUnauthorized``). Everything
else (the token keeper, the handler wrapper, the stand-in provider) is the real thing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from kloudless.server.connectors import registry
from kloudless.server.connectors.base import AccountEnv, StorageBackend, StorageObject
from kloudless.server.connectors.provider import ProviderConnector, TokenKeeper
from kloudless.server.connectors.webdav_errors import ServiceUnauthorized

from .conftest import Live, connect


class _ListingBackend(StorageBackend):
    def __init__(self, api_base: str, token: str) -> None:
        self.api_base = api_base
        self.token = token

    def _call(self) -> None:
        answer = requests.get(
            f"{self.api_base}/echo/list",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        if answer.status_code == 401:
            raise ServiceUnauthorized("The service refused the credentials.", 401)

    def get(self, object_id: str, kind: str) -> StorageObject:
        self._call()
        return StorageObject(id="root", name="", type="folder", parent_id=None)

    def list_folder(self, folder_id: str, recursive: bool = False) -> list[StorageObject]:
        self._call()
        return [StorageObject(id="f1", name="a.txt", type="file", parent_id="root", size=1)]


for _name in list(getattr(StorageBackend, "__abstractmethods__", ())):
    if _name not in ("get", "list_folder"):
        setattr(_ListingBackend, _name, lambda self, *a, **k: None)
_ListingBackend.__abstractmethods__ = frozenset()  # type: ignore[misc]


class _StandInRclone(ProviderConnector):
    def storage(self, env: AccountEnv) -> StorageBackend | None:
        keeper = TokenKeeper(env)
        token = keeper.access_token()
        return _ListingBackend(str(env.config["provider_overrides"]["api_base"]), token)


@pytest.fixture
def standin_rclone() -> Iterator[None]:
    original = registry.get_connector("dropbox")
    registry.register(_StandInRclone("dropbox"))
    try:
        yield
    finally:
        registry.register(original)


def test_a_401_refreshes_and_the_get_is_repeated(live: Live, standin_rclone: None) -> None:
    live.configure("dropbox")
    _, token = connect(live, "dropbox")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{live.base_url}/v1/accounts/me/storage/folders/root/contents"
    assert requests.get(url, headers=headers, timeout=30).status_code == 200
    state = live.provider.state
    state.expire_access_tokens()
    answer = requests.get(url, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert state.issued.count("refresh_token") == 1
    lists = [r for r in live.provider.requests if r.path == "/echo/list"]
    # The rejected call, then the same call again with the refreshed token.
    assert lists[-2].headers["Authorization"] != lists[-1].headers["Authorization"]
    # Revoked: the refresh is refused, the account says so.
    state.revoke()
    answer = requests.get(url, headers=headers, timeout=30)
    assert answer.status_code == 401 and answer.json()["error_code"] == "invalid_token"
    assert "consent page" in answer.json()["message"]
