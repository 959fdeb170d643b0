"""Admin accounts, the Team API and ``X-Kloudless-As-User`` impersonation."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import Client

from kloudless.server.bootstrap import Credentials

from .conftest import assert_error, upload


@pytest.fixture
def key(api_key_auth: dict[str, str]) -> dict[str, str]:
    return api_key_auth


def make_account(client: Client, key: dict[str, str], name: str, **extra: Any) -> int:
    made = client.post("/v1/accounts", headers=key, json={"account": name, **extra})
    assert made.status_code == 201, made.get_data(as_text=True)
    return int(made.get_json()["id"])


@pytest.fixture
def org(client: Client, key: dict[str, str], creds: Credentials) -> dict[str, Any]:
    """An admin account with a team of two users (alice in group 'eng') and an outsider."""
    admin = make_account(client, key, "admin@corp", admin=True)
    alice_acc = make_account(client, key, "alice@corp")
    bob_acc = make_account(client, key, "bob@corp")
    team = f"/v1/accounts/{admin}/team"
    alice = client.post(
        f"{team}/users", headers=key, json={"account_id": alice_acc, "email": "alice@corp"}
    ).get_json()
    bob = client.post(
        f"{team}/users", headers=key, json={"account_id": bob_acc, "name": "Bob", "role": "admin"}
    ).get_json()
    group = client.post(f"{team}/groups", headers=key, json={"name": "eng"}).get_json()
    put = client.put(f"{team}/groups/{group['id']}/members/{alice['id']}", headers=key)
    assert put.status_code == 204, put.get_data(as_text=True)
    return {
        "admin": admin,
        "team": team,
        "alice": alice,
        "bob": bob,
        "group": group,
        "alice_acc": alice_acc,
        "outsider": creds.account_id,
    }


def test_team_lists_users_groups_and_memberships(
    client: Client, key: dict[str, str], org: dict[str, Any]
) -> None:
    team = org["team"]
    assert client.get(f"/v1/accounts/{org['admin']}", headers=key).get_json()["admin"] is True
    users = client.get(f"{team}/users", headers=key).get_json()
    assert [u["name"] for u in users["objects"]] == ["alice@corp", "Bob"]
    assert users["objects"][0]["type"] == "user" and users["objects"][1]["role"] == "admin"
    paged = client.get(f"{team}/users", headers=key, query_string={"page_size": 1}).get_json()
    assert paged["count"] == 1 and paged["next_page"] == 2
    one = client.get(f"{team}/users/{org['alice']['id']}", headers=key).get_json()
    assert one["email"] == "alice@corp" and one["account"] == org["alice_acc"]
    groups = client.get(f"{team}/users/{org['alice']['id']}/memberships", headers=key).get_json()
    assert [g["name"] for g in groups["objects"]] == ["eng"]
    members = client.get(f"{team}/groups/{org['group']['id']}/members", headers=key).get_json()
    assert [m["id"] for m in members["objects"]] == [org["alice"]["id"]]
    assert client.get(f"{team}/groups", headers=key).get_json()["count"] == 1
    admins = client.get("/v1/accounts", headers=key, query_string={"admin": "True"}).get_json()
    assert [a["id"] for a in admins["objects"]] == [org["admin"]]


def test_non_admin_account_has_an_empty_team(
    client: Client, key: dict[str, str], creds: Credentials, auth: dict[str, str]
) -> None:
    for headers in (key, auth):
        for what in ("users", "groups"):
            listed = client.get(f"/v1/accounts/{creds.account_id}/team/{what}", headers=headers)
            assert listed.status_code == 200 and listed.get_json()["objects"] == []
        for path in ("users/1", "groups/1", "users/1/memberships", "groups/1/members"):
            missing = client.get(f"/v1/accounts/{creds.account_id}/team/{path}", headers=headers)
            assert_error(missing, 404, "not_found")


def test_impersonation_acts_on_the_users_account_and_records_both(
    client: Client, key: dict[str, str], org: dict[str, Any]
) -> None:
    admin, alice = org["admin"], org["alice"]
    as_alice = dict(key, **{"X-Kloudless-As-User": alice["id"]})
    made = upload(client, as_alice, "report.txt", b"q3", account=str(admin))
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.get_json()["account"] == org["alice_acc"]
    own = client.get(f"/v1/accounts/{org['alice_acc']}/storage/folders/root/contents", headers=key)
    assert [o["name"] for o in own.get_json()["objects"]] == ["report.txt"]
    admins_root = client.get(f"/v1/accounts/{admin}/storage/folders/root/contents", headers=key)
    assert admins_root.get_json()["objects"] == []
    events = client.get(f"/v1/accounts/{admin}/events", headers=as_alice).get_json()
    [event] = events["objects"]
    assert event["account"] == org["alice_acc"] and event["id"] == made.get_json()["id"]
    assert event["user_id"] == alice["id"] and event["admin_account"] == admin
    plain = client.get(f"/v1/accounts/{org['alice_acc']}/events", headers=key).get_json()
    assert plain["objects"][0]["user_id"] == alice["id"]


def test_impersonation_refusals_are_403(
    client: Client, key: dict[str, str], org: dict[str, Any], auth: dict[str, str]
) -> None:
    admin = org["admin"]
    root = "storage/folders/root"
    for user in ("999", "not-a-number", "-1"):
        outside = dict(key, **{"X-Kloudless-As-User": user})
        body = assert_error(
            client.get(f"/v1/accounts/{admin}/{root}", headers=outside), 403, "forbidden"
        )
        assert "team" in body["message"]
    on_plain = dict(auth, **{"X-Kloudless-As-User": org["alice"]["id"]})
    body = assert_error(client.get(f"/v1/accounts/me/{root}", headers=on_plain), 403, "forbidden")
    assert "admin account" in body["message"]
    # Another admin's user id is outside this admin's team.
    other_admin = make_account(client, key, "other-admin", admin=True)
    as_alice = dict(key, **{"X-Kloudless-As-User": org["alice"]["id"]})
    assert_error(
        client.get(f"/v1/accounts/{other_admin}/{root}", headers=as_alice), 403, "forbidden"
    )


def test_team_changes_need_the_api_key_and_valid_input(
    client: Client, key: dict[str, str], org: dict[str, Any], creds: Credentials
) -> None:
    team = org["team"]
    admin_token = client.application.store.create_token(creds.app_id, org["admin"])
    bearer = {"Authorization": f"Bearer {admin_token}"}
    assert client.get(f"{team}/users", headers=bearer).get_json()["count"] == 2
    denied = client.post(f"{team}/groups", headers=bearer, json={"name": "x"})
    assert_error(denied, 403, "forbidden")
    for body in (
        {},
        {"account_id": "nope"},
        {"account_id": 99999},
        {"account_id": True},
        {"account_id": org["admin"]},
        {"account_id": org["outsider"], "name": ""},
        {"account_id": org["outsider"], "email": 5},
    ):
        assert_error(
            client.post(f"{team}/users", headers=key, json=body), 400, "invalid_parameters"
        )
    again = client.post(f"{team}/users", headers=key, json={"account_id": org["alice_acc"]})
    assert_error(again, 409, "conflict")
    plain = f"/v1/accounts/{org['outsider']}/team"
    not_admin = client.post(f"{plain}/users", headers=key, json={"account_id": org["alice_acc"]})
    assert "not an admin account" in assert_error(not_admin, 400, "invalid_parameters")["message"]
    assert_error(
        client.post(f"{team}/groups", headers=key, json={"name": 3}), 400, "invalid_parameters"
    )
    # Removing: the membership goes with the user, the group with its DELETE.
    gid, aid = org["group"]["id"], org["alice"]["id"]
    assert client.delete(f"{team}/groups/{gid}/members/{aid}", headers=key).status_code == 204
    assert client.get(f"{team}/groups/{gid}/members", headers=key).get_json()["objects"] == []
    assert client.delete(f"{team}/users/{aid}", headers=key).status_code == 204
    assert_error(client.get(f"{team}/users/{aid}", headers=key), 404, "not_found")
    assert client.delete(f"{team}/groups/{gid}", headers=key).status_code == 204
    assert_error(client.delete(f"{team}/groups/{gid}", headers=key), 404, "not_found")


def test_deleting_a_backing_account_removes_its_team_user(
    client: Client, key: dict[str, str], org: dict[str, Any]
) -> None:
    assert client.delete(f"/v1/accounts/{org['alice_acc']}", headers=key).status_code == 204
    users = client.get(f"{org['team']}/users", headers=key).get_json()
    assert [u["name"] for u in users["objects"]] == ["Bob"]
