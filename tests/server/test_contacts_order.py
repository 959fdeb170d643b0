"""Local contacts in both configurations of the matrix: created, ordered by last then first name
in code point order (a name before every longer name it begins), and migration 502 (sort keys
without NUL, which PostgreSQL text cannot hold; compared bytewise there)."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from werkzeug.test import Client

from kloudless.server import Settings, create_app, store
from kloudless.server.bootstrap import bootstrap

from .conftest import BufferedClient, pg_collation

C = "/v1/accounts/me/crm/contacts"


def _names(client: Client, auth: dict[str, str], order: str = "name") -> list[str]:
    listing = client.get(C, headers=auth, query_string={"order_by": order}).get_json()
    return [f"{o['last_name']},{o['first_name'] or ''}" for o in listing["objects"]]


def test_contacts_are_ordered_by_last_then_first_name(client: Client, auth: dict[str, str]) -> None:
    people = [("Smithson", "Al"), ("Smith", "Zed"), ("smith", "Bo"), ("Ä", "x"), ("B", "y")]
    for last, first in people:
        made = client.post(C, headers=auth, json={"last_name": last, "first_name": first})
        assert made.status_code == 201, made.get_data(as_text=True)
    # Case-folded, "Smith" before "Smithson" whatever the first names, code points ("Ä" last).
    expected = ["B,y", "smith,Bo", "Smith,Zed", "Smithson,Al", "Ä,x"]
    assert _names(client, auth) == expected
    assert _names(client, auth, "-name") == expected[::-1]


def test_migration_502_rewrites_old_sort_keys(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(migrated=False)
    monkeypatch.setattr(store, "MIGRATIONS", [(v, m) for v, m in store.MIGRATIONS if v != 502])
    old = create_app(settings)
    try:
        creds = bootstrap(old.store)
        assert creds is not None
        auth: dict[str, Any] = {"Authorization": f"Bearer {creds.token}"}
        client = BufferedClient(old)
        for last in ("Smithson", "Smith"):
            assert client.post(C, headers=auth, json={"last_name": last}).status_code == 201
        if settings.database_url is None:  # what older versions wrote (PostgreSQL refused it)
            old.store.execute(
                "UPDATE crm_contacts SET sort_key = replace(sort_key, ?, ?)", ("\x01", "\x00")
            )
            assert all(
                "\x00" in r["sort_key"] for r in old.store.all("SELECT sort_key FROM crm_contacts")
            )
    finally:
        old.close()
    monkeypatch.undo()
    upgraded = create_app(settings)
    try:
        keys = [r["sort_key"] for r in upgraded.store.all("SELECT sort_key FROM crm_contacts")]
        assert len(keys) == 2 and not any("\x00" in key for key in keys)
        assert _names(BufferedClient(upgraded), auth) == ["Smith,", "Smithson,"]
        if settings.database_url is not None:
            assert pg_collation(upgraded.store, "crm_contacts", "sort_key") == "C"
    finally:
        upgraded.close()
