"""``kloudless contacts``: ls, show, add, edit, rm, import FILE.vcf and export, in-process
against a live local server (a fresh account per test, see conftest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from live_server import Credentials

Cli = Callable[..., Any]

VCF = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:cli-1\r\nFN:Carla Díaz\r\nN:Díaz;Carla;;;\r\n"
    "EMAIL;TYPE=work:carla@example.org\r\nCATEGORIES:Clients\r\nX-KEEP:yes\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:cli-2\r\nFN:Dev Four\r\nTEL;TYPE=cell:+1 555\r\n"
    "END:VCARD\r\n"
)


def one_line_error(result: Any, code: int, needle: str) -> None:
    assert result.code == code and result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kloudless: error: "), result.err
    assert needle in lines[0] and "Traceback" not in result.err


def test_add_ls_show_edit_rm(cli: Cli, creds: Credentials) -> None:
    added = cli(
        "contacts",
        "add",
        "--first",
        "Ann",
        "--last",
        "Smith",
        "--email",
        "ann@example.org",
        "--email",
        "a.smith@example.org",
        "--phone",
        "+1 555 0100",
        "--org",
        "Acme",
        "--json",
    )
    assert added.code == 0, added.err
    (ann,) = json.loads(added.out)
    assert ann["name"] == "Ann Smith" and ann["emails"][0]["primary"] is True
    assert cli("contacts", "add", "--name", "Bob Jones").code == 0
    table = cli("contacts", "ls")
    assert table.code == 0 and table.out.splitlines()[0].split() == [
        "NAME",
        "EMAIL",
        "PHONE",
        "ORGANIZATION",
        "ID",
    ]
    assert "Ann Smith" in table.out and "ann@example.org" in table.out and "Bob Jones" in table.out
    found = json.loads(cli("contacts", "ls", "-q", "acme", "--json").out)
    assert [c["name"] for c in found] == ["Ann Smith"]
    shown = cli("contacts", "show", ann["id"])
    assert shown.code == 0 and "Organization:  Acme" in shown.out
    assert "Email (other): a.smith@example.org" in shown.out
    card = cli("contacts", "show", ann["id"], "--vcard")
    assert card.out.startswith("BEGIN:VCARD") and "ORG:Acme" in card.out
    edited = cli(
        "contacts", "edit", ann["id"], "--title", "CTO", "--if-match", ann["etag"], "--json"
    )
    assert edited.code == 0, edited.err
    assert json.loads(edited.out)[0]["title"] == "CTO"
    stale = cli("contacts", "edit", ann["id"], "--title", "CEO", "--if-match", ann["etag"])
    one_line_error(stale, 5, "412")  # exit 5: a conflict
    assert cli("contacts", "rm", ann["id"]).code == 0
    one_line_error(cli("contacts", "show", ann["id"]), 2, "no such contact")
    assert [c["name"] for c in json.loads(cli("contacts", "ls", "--json").out)] == ["Bob Jones"]
    one_line_error(cli("contacts", "edit", "con_x"), 2, "nothing to change")


def test_import_and_export(cli: Cli, creds: Credentials, tmp_path: Path) -> None:
    source = tmp_path / "people.vcf"
    source.write_text(VCF, encoding="utf-8")
    imported = cli("contacts", "import", str(source))
    assert imported.code == 0, imported.err
    assert "Carla Díaz" in imported.out and "imported 2 contacts" in imported.err
    clients = json.loads(cli("contacts", "ls", "--group", "clients", "--json").out)
    assert [c["name"] for c in clients] == ["Carla Díaz"]
    target = tmp_path / "out.vcf"
    exported = cli("contacts", "export", "-o", str(target))
    assert exported.code == 0 and "wrote 2 contacts" in exported.err
    text = target.read_text(encoding="utf-8")
    assert "X-KEEP:yes" in text and "CATEGORIES:Clients" in text and "VERSION:4.0" in text
    only = cli("contacts", "export", "--group", "Clients")
    assert only.out.count("BEGIN:VCARD") == 1
    broken = tmp_path / "broken.vcf"
    broken.write_bytes(b"\xff\xfe not a vcard")
    one_line_error(cli("contacts", "import", str(broken)), 1, "UTF-8")
    one_line_error(cli("contacts", "import", str(tmp_path / "missing.vcf")), 3, "missing.vcf")
    one_line_error(cli("contacts", "ls", "--group", "nope"), 2, "no such contact group")
