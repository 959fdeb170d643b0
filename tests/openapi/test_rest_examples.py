"""Every ``curl`` example of the REST reference (docs/rest.rst) runs against a live server.

Each example runs as shown, with ``bash -c``, in a folder holding the files the examples
upload (``contacts.vcf``, ``photo.png``), with the variables ``kloudless serve`` prints and a
fresh object for every object variable it names (``$FILE_ID``, ...), so that deleting
examples never take what a later one needs. curl's own configuration file adds the answer's
status as the last line; it must be one of the operation's documented successful answers.
"""

from __future__ import annotations

import itertools
import json
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from kloudless.server.api import ROUTES
from kloudless.server.apidoc.reference import Example, examples
from kloudless.server.runner import ServerThread

EXAMPLES = examples(ROUTES)
RUNNABLE = [example for example in EXAMPLES if example.runnable]
#: The examples that need what a test server lacks: an upstream service (pass-through), a
#: browser's consent form and the code it yields.
#: The webhook examples need a receiver the server may reach (not on loopback by default).
NOT_RUN = {
    "POST /oauth",
    "POST /oauth/token",
    "GET /oauth/callback",  # needs a sign-in at a provider in progress
    "POST /accounts/<account_id>/raw",
    "POST /applications/<app_id>/webhooks",
    "GET /applications/<app_id>/webhooks/<webhook_id>",
    "DELETE /applications/<app_id>/webhooks/<webhook_id>",
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
VCARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bo Lee\r\nN:Lee;Bo;;;\r\nEND:VCARD\r\n"
_serial = itertools.count(1)


class Objects:
    """Creates the objects an example names, through the API, as the examples' caller."""

    def __init__(self, server: ServerThread) -> None:
        assert server.credentials is not None
        self.creds = server.credentials
        self.base = server.base_url + "/v1/"
        self.values: dict[str, str] = {}

    def call(self, method: str, path: str, key: bool = False, **kw: Any) -> Any:
        credential = f"APIKey {self.creds.api_key}" if key else f"Bearer {self.creds.token}"
        if kw.pop("developer", False):
            credential = f"DeveloperKey {self.creds.developer_key}"
        headers = {"Authorization": credential, **kw.pop("headers", {})}
        answer = requests.request(method, self.base + path, headers=headers, timeout=60, **kw)
        assert answer.status_code < 300, (method, path, answer.status_code, answer.text)
        return answer.json() if answer.content else None

    def name(self, prefix: str) -> str:
        return f"{prefix}-{next(_serial)}"

    def file(self) -> str:
        meta = f'{{"name": "{self.name("file")}.txt", "parent_id": "root"}}'
        headers = {"X-Kloudless-Metadata": meta}
        return str(
            self.call("POST", "accounts/me/storage/files", data=b"hi", headers=headers)["id"]
        )

    def link(self, **settings: Any) -> str:
        return str(
            self.call(
                "POST", "accounts/me/storage/links", json={"file_id": self.file(), **settings}
            )["id"]
        )

    def session(self) -> str:
        body = {"name": self.name("big") + ".bin", "size": 10}
        session = self.call("POST", "accounts/me/storage/multipart", json=body)
        path = f"accounts/me/storage/multipart/{session['id']}"
        self.call("PUT", path, params={"part_number": 1}, data=b"0123456789")
        return str(session["id"])

    def event(self) -> str:
        self.file()
        listing = self.call("GET", "accounts/me/events", params={"cursor": 0, "page_size": 1000})
        return str(listing["objects"][-1]["event_id"])

    def task(self) -> str:
        path = f"accounts/me/storage/files/{self.file()}/copy"
        body = {"parent_id": "root", "name": self.name("copy")}
        return str(self.call("POST", path, json=body, headers={"X-Kloudless-Async": "true"})["id"])

    def contact(self) -> str:
        contact = self.call("POST", "accounts/me/crm/contacts", json={"name": self.name("Ann")})
        path = f"accounts/me/crm/contacts/{contact['id']}/photo"
        self.call("PUT", path, data=PNG, headers={"Content-Type": "image/png"})
        return str(contact["id"])

    def account(self, **fields: Any) -> str:
        body = {"account": self.name("acct"), **fields}
        return str(self.call("POST", "accounts", key=True, json=body)["id"])

    def team_user(self) -> str:
        path = f"accounts/{self.get('ADMIN_ID')}/team/users"
        body = {"account_id": int(self.get("MEMBER_ID"))}
        return str(self.call("POST", path, key=True, json=body)["id"])

    def team_group(self) -> str:
        admin = self.get("ADMIN_ID")
        group = self.call(
            "POST", f"accounts/{admin}/team/groups", key=True, json={"name": self.name("g")}
        )
        if "USER_ID" in self.values:  # the member examples remove or add this user
            path = f"accounts/{admin}/team/groups/{group['id']}/members/{self.get('USER_ID')}"
            self.call("PUT", path, key=True)
        return str(group["id"])

    def get(self, variable: str) -> str:
        if variable not in self.values:
            assert variable in self.MAKERS, f"the examples' test cannot make ${variable}"
            self.values[variable] = self.MAKERS[variable](self)
        return self.values[variable]

    MAKERS: dict[str, Callable[[Objects], str]] = {
        "FILE_ID": file,
        "FOLDER_ID": lambda o: str(
            o.call("POST", "accounts/me/storage/folders", json={"name": o.name("dir")})["id"]
        ),
        "LINK_ID": link,
        "PROTECTED_LINK_ID": lambda o: o.link(password="secret"),
        "SESSION_ID": session,
        "EVENT_ID": event,
        "TASK_ID": task,
        "CALENDAR_ID": lambda o: str(
            o.call("POST", "accounts/me/cal/calendars", json={"name": o.name("cal")})["id"]
        ),
        "CAL_EVENT_ID": lambda o: str(
            o.call(
                "POST",
                "accounts/me/cal/calendars/primary/events",
                json={"start": "2026-12-03T10:00:00Z", "end": "2026-12-03T11:00:00Z"},
            )["id"]
        ),
        "CONTACT_ID": contact,
        "CONTACT_GROUP_ID": lambda o: str(
            o.call("POST", "accounts/me/crm/contact_groups", json={"name": o.name("grp")})["id"]
        ),
        "ADMIN_ID": lambda o: o.account(admin=True),
        "MEMBER_ID": lambda o: o.account(),
        "SPARE_ID": lambda o: o.account(),
        "USER_ID": team_user,
        "GROUP_ID": team_group,
        "SPARE_APP_ID": lambda o: str(
            o.call("POST", "applications", developer=True, json={"name": o.name("app")})["id"]
        ),
        "API_KEY_ID": lambda o: str(
            o.call("POST", f"applications/{o.creds.app_id}/apikeys", developer=True)["id"]
        ),
        "DEVELOPER_ID": lambda o: str(
            o.call("GET", "meta/developers", developer=True)["objects"][0]["id"]
        ),
        "DOMAIN_ID": lambda o: str(
            o.call(
                "POST",
                f"meta/applications/{o.creds.app_id}/trusted_domains",
                key=True,
                json={"domain": f"https://{o.name('app')}.example.com"},
            )["id"]
        ),
    }


#: Objects that others are made from come first (a group's member is a team user).
ORDER = ["ADMIN_ID", "MEMBER_ID", "USER_ID", "GROUP_ID"]


def _creation_order(variable: str) -> int:
    return ORDER.index(variable) if variable in ORDER else len(ORDER)


def test_every_operation_has_an_example_and_few_are_not_run() -> None:
    assert len(EXAMPLES) == sum(len(route.methods) for route in ROUTES)
    assert {example.key for example in EXAMPLES if not example.runnable} == NOT_RUN


def test_long_commands_wrap_with_backslashes() -> None:
    """Lines end in ``\\`` but inside a JSON body indented over several lines (the width of
    the lines is tests/docs/test_doc_layout.py's)."""
    for example in EXAMPLES:
        words = shlex.split(example.command.replace("\\\n", " "))
        for before, word in zip(words, words[1:]):
            if "\n" in word:
                assert before == "-d", (example.key, word)
                json.loads(word)  # still one JSON document


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("curl")
    (path / "contacts.vcf").write_text(VCARD, newline="")
    (path / "photo.png").write_bytes(PNG)
    # curl reads $CURL_HOME/.curlrc: print the status after the body, without a changed command.
    (path / ".curlrc").write_text('write-out = "\\n%{http_code}"\nmax-time = 60\n')
    return path


@pytest.mark.parametrize("example", RUNNABLE, ids=[e.key for e in RUNNABLE])
def test_the_example_runs(example: Example, live: ServerThread, workdir: Path) -> None:
    curl = shutil.which("curl")
    assert curl is not None, "the REST reference's examples need curl (apt-get install curl)"
    creds = live.credentials
    assert creds is not None
    objects = Objects(live)
    for variable in sorted(example.variables, key=_creation_order):
        if not variable.startswith("KLOUDLESS_"):
            objects.get(variable)
    env = {
        "PATH": str(Path(curl).parent) + ":/usr/bin:/bin",
        "CURL_HOME": str(workdir),
        "HOME": str(workdir),
        "KLOUDLESS_BASE_URL": live.base_url,
        "KLOUDLESS_TOKEN": creds.token,
        "KLOUDLESS_API_KEY": creds.api_key,
        "KLOUDLESS_APP_ID": creds.app_id,
        "KLOUDLESS_ACCOUNT_ID": str(creds.account_id),
        "KLOUDLESS_DEVELOPER_KEY": str(creds.developer_key),
        **objects.values,
    }
    assert example.variables <= set(env), f"no value for {example.variables - set(env)}"
    done = subprocess.run(
        ["bash", "-c", example.command],
        cwd=workdir,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    body, _, status = done.stdout.decode(errors="replace").rpartition("\n")
    assert int(status) in example.statuses, f"{example.command}\n-> {status}: {body[:500]}"
