"""Contact commands: ``contacts ls``, ``show``, ``add``, ``edit``, ``rm``, ``import FILE.vcf``,
``export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kloudless import exceptions

from . import output
from .argtypes import positive_int
from .command import add_command, add_group, response_data
from .context import Context
from .errors import CommandError
from .listing import quote_id
from .resolve import PAGE_SIZE

#: Largest .vcf file read by ``contacts import`` (the server takes at most 4 MiB).
MAX_VCF_BYTES = 4 * 1024 * 1024
ORDERS = ("name", "-name", "modified", "-modified")
COLUMNS = ["NAME", "EMAIL", "PHONE", "ORGANIZATION", "ID"]


def _primary(items: Any, key: str) -> str:
    items = items or []
    chosen = next((i for i in items if i.get("primary")), items[0] if items else None)
    return str(chosen[key]) if chosen else ""


def _rows(contacts: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            c.get("name") or "",
            _primary(c.get("emails"), "address"),
            c.get("phone") or "",
            c.get("organization") or "",
            c.get("id"),
        ]
        for c in contacts
    ]


def _print_contacts(ctx: Context, contacts: list[dict[str, Any]]) -> None:
    if ctx.json:
        output.print_json(contacts)
    else:
        output.echo(output.render_table(_rows(contacts), COLUMNS))


def _groups(ctx: Context) -> list[dict[str, Any]]:
    listing = ctx.account.get("crm/contact_groups", params={"page_size": PAGE_SIZE})
    return [response_data(g) for g in listing.get_paging_iterator()]


def _group_id(ctx: Context, spec: str) -> str:
    """Accept a group id or a group name (compared case-insensitively)."""
    groups = _groups(ctx)
    for group in groups:
        if group.get("id") == spec:
            return spec
    matches = [g for g in groups if str(g.get("name", "")).casefold() == spec.casefold()]
    if len(matches) == 1:
        return str(matches[0]["id"])
    raise CommandError(f"no such contact group: {spec}")


def _contact(ctx: Context, contact_id: str) -> dict[str, Any]:
    try:
        return response_data(ctx.account.get(f"crm/contacts/{quote_id(contact_id)}"))
    except exceptions.APIException as exc:
        if getattr(exc, "status", None) == 404:
            raise CommandError(f"no such contact: {contact_id}") from None
        raise


def cmd_ls(ctx: Context) -> int:
    """List contacts (optionally a search or one group's)."""
    params: dict[str, Any] = {
        "page_size": min(ctx.args.limit, PAGE_SIZE),
        "order_by": ctx.args.order,
    }
    if ctx.args.query:
        params["q"] = ctx.args.query
    if ctx.args.group:
        params["group"] = _group_id(ctx, ctx.args.group)
    listing = ctx.account.get("crm/contacts", params=params)
    contacts = [response_data(c) for c in listing.get_paging_iterator(max_resources=ctx.args.limit)]
    _print_contacts(ctx, contacts)
    return 0


def cmd_show(ctx: Context) -> int:
    """Show one contact (or its vCard)."""
    if ctx.args.vcard:
        response = ctx.account.get(
            f"crm/contacts/{quote_id(ctx.args.contact)}", headers={"Accept": "text/vcard"}
        )
        sys.stdout.write(response.text.replace("\r\n", "\n"))
        return 0
    contact = _contact(ctx, ctx.args.contact)
    if ctx.json:
        output.print_json(contact)
        return 0
    names = {g["id"]: g["name"] for g in _groups(ctx)} if contact.get("groups") else {}
    lines = [
        ("Name", contact.get("name")),
        ("Nickname", contact.get("nickname")),
        ("Organization", contact.get("organization")),
        ("Title", contact.get("title")),
        ("Department", contact.get("department")),
        *[(f"Email ({e['type']})", e["address"]) for e in contact.get("emails") or []],
        *[(f"Phone ({p['type']})", p["number"]) for p in contact.get("phones") or []],
        *[
            (f"Address ({a['type']})", ", ".join(v for k, v in a.items() if v and k in _ADDRESS))
            for a in contact.get("addresses") or []
        ],
        *[("URL", u) for u in contact.get("urls") or []],
        ("Birthday", contact.get("birthday")),
        ("Groups", ", ".join(names.get(g, g) for g in contact.get("groups") or [])),
        ("Notes", contact.get("notes")),
        ("Photo", "yes" if contact.get("photo") else ""),
        ("Modified", output.format_time(contact.get("modified"))),
        ("Id", contact.get("id")),
        ("Etag", contact.get("etag")),
    ]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        if value:
            output.echo(f"{label + ':':<{width + 1}} {value}")
    return 0


_ADDRESS = ("street", "city", "region", "postal_code", "country")


def _body(ctx: Context) -> dict[str, Any]:
    """:returns: the contact fields given as options (only those given)."""
    args = ctx.args
    body: dict[str, Any] = {}
    for option, field in (
        ("first", "first_name"),
        ("last", "last_name"),
        ("name", "name"),
        ("org", "organization"),
        ("title", "title"),
        ("note", "notes"),
        ("birthday", "birthday"),
        ("nickname", "nickname"),
    ):
        value = getattr(args, option)
        if value is not None:
            body[field] = value or None
    if args.email is not None:
        body["emails"] = [{"address": e} for e in args.email if e]
    if args.phone is not None:
        body["phones"] = [{"number": p} for p in args.phone if p]
    if args.group is not None:
        body["groups"] = [_group_id(ctx, g) for g in args.group if g]
    return body


def cmd_add(ctx: Context) -> int:
    """Create a contact."""
    body = _body(ctx)
    if not body:
        raise CommandError("give at least a name, an e-mail address or a phone number")
    contact = response_data(ctx.account.post("crm/contacts", json=body))
    _print_contacts(ctx, [contact])
    return 0


def cmd_edit(ctx: Context) -> int:
    """Change a contact's given fields (others are kept)."""
    body = _body(ctx)
    if not body:
        raise CommandError("nothing to change: give at least one field option")
    headers = {"If-Match": ctx.args.if_match} if ctx.args.if_match else {}
    path = f"crm/contacts/{quote_id(ctx.args.contact)}"
    contact = response_data(ctx.account.patch(path, json=body, headers=headers))
    _print_contacts(ctx, [contact])
    return 0


def cmd_rm(ctx: Context) -> int:
    """Delete contacts."""
    headers = {"If-Match": ctx.args.if_match} if ctx.args.if_match else {}
    for contact_id in ctx.args.contacts:
        ctx.account.delete(f"crm/contacts/{quote_id(contact_id)}", headers=headers)
        if not ctx.json:
            output.info(f"deleted {contact_id}")
    return 0


def _read_vcf(spec: str) -> bytes:
    if spec == "-":
        data = sys.stdin.buffer.read(MAX_VCF_BYTES + 1)
    else:
        with Path(spec).open("rb") as handle:
            data = handle.read(MAX_VCF_BYTES + 1)
    if len(data) > MAX_VCF_BYTES:
        raise CommandError(f"{spec}: larger than {MAX_VCF_BYTES} bytes; split it first")
    return data


def cmd_import(ctx: Context) -> int:
    """Create one contact per vCard of a .vcf file."""
    data = _read_vcf(ctx.args.file)
    created = ctx.account.post(
        "crm/contacts/import", data=data, headers={"Content-Type": "text/vcard; charset=utf-8"}
    )
    contacts = [response_data(c) for c in created]
    if ctx.json:
        output.print_json(contacts)
    else:
        output.echo(output.render_table(_rows(contacts), COLUMNS))
        output.info(f"imported {len(contacts)} contact{'s' if len(contacts) != 1 else ''}")
    return 0


def cmd_export(ctx: Context) -> int:
    """Write the address book (or one group) as vCards."""
    params = {"group": _group_id(ctx, ctx.args.group)} if ctx.args.group else {}
    text = ctx.account.get("crm/contacts/export", params=params).content
    if ctx.args.output in (None, "-"):
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
        return 0
    target = Path(ctx.args.output)
    temp = target.with_name(f".{target.name}.part")
    temp.write_bytes(text)
    temp.replace(target)  # never a half-written file under the real name
    output.info(f"wrote {text.count(b'BEGIN:VCARD')} contacts to {target}")
    return 0


def _field_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--first", metavar="NAME", help="first (given) name")
    parser.add_argument("--last", metavar="NAME", help="last (family) name")
    parser.add_argument("--name", help="formatted name (default: first and last name)")
    parser.add_argument("--nickname", help="nickname")
    parser.add_argument("--org", metavar="NAME", help="organization")
    parser.add_argument("--title", help="job title")
    parser.add_argument(
        "--birthday", metavar="YYYY-MM-DD", help="birthday (--MM-DD without a year)"
    )
    parser.add_argument("--note", help="notes")
    parser.add_argument(
        "--email",
        action="append",
        metavar="ADDRESS",
        help="e-mail address (repeat; first is primary)",
    )
    parser.add_argument(
        "--phone", action="append", metavar="NUMBER", help="phone number (repeat; first is primary)"
    )
    parser.add_argument(
        "--group", action="append", metavar="GROUP", help="group id or name (repeat)"
    )


def register(subparsers: Any) -> None:
    """Add ``contacts`` and its subcommands to the main parser's subcommands.

    :param subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    sub = add_group(
        subparsers,
        "contacts",
        "contacts (address book)",
        "Contacts of the account's address book (local or CardDAV).",
    )

    p = add_command(sub, "ls", cmd_ls, "list contacts")
    p.add_argument("-q", "--query", metavar="TEXT", help="search names, e-mails, phones, org")
    p.add_argument("--group", metavar="GROUP", help="only this group's contacts (id or name)")
    p.add_argument("--order", choices=ORDERS, default="name", help="order (default name)")
    p.add_argument("--limit", type=positive_int, default=1000, help="most contacts (default 1000)")

    p = add_command(sub, "show", cmd_show, "show a contact")
    p.add_argument("contact", metavar="ID", help="the contact's id")
    p.add_argument("--vcard", action="store_true", help="print the contact's vCard")

    p = add_command(sub, "add", cmd_add, "create a contact")
    _field_options(p)

    p = add_command(sub, "edit", cmd_edit, "change a contact's given fields")
    p.add_argument("contact", metavar="ID", help="the contact's id")
    _field_options(p)
    p.add_argument("--if-match", metavar="ETAG", help="only if the contact is still this version")

    p = add_command(sub, "rm", cmd_rm, "delete contacts")
    p.add_argument("contacts", nargs="+", metavar="ID", help="the ids of the contacts to delete")
    p.add_argument("--if-match", metavar="ETAG", help="only if the contact is still this version")

    p = add_command(sub, "import", cmd_import, "import the vCards of a .vcf file")
    p.add_argument("file", metavar="FILE.vcf", help="vCard file (3.0 or 4.0); - for stdin")

    p = add_command(sub, "export", cmd_export, "export contacts as vCards")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default stdout)")
    p.add_argument("--group", metavar="GROUP", help="only this group (id or name)")
