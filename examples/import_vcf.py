"""Import the contacts of a .vcf file (vCard 3.0 or 4.0, one card or many) into an account.

Every card becomes one contact with all its properties kept (``CATEGORIES`` become groups,
embedded photos the contact's photo). ``--group NAME`` also puts every imported contact into that
group (made when missing). The script prints one line per contact and a summary.

Run it against the local server::

    KLOUDLESS_TOKEN=... KLOUDLESS_BASE_URL=http://localhost:8002 \\
        python examples/import_vcf.py contacts.vcf --group Imported

It works the same on a ``carddav`` account: the cards are written to its address book.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kloudless import Account
from kloudless.exceptions import APIException, KloudlessException

#: The server reads at most this much vCard text in one request.
MAX_BYTES = 4 * 1024 * 1024


def make_account() -> Account:
    """The account from KLOUDLESS_TOKEN (or KLOUDLESS_API_KEY + KLOUDLESS_ACCOUNT_ID)."""
    token = os.environ.get("KLOUDLESS_TOKEN")
    if token:
        return Account(token=token)
    return Account(
        api_key=os.environ.get("KLOUDLESS_API_KEY"),
        account_id=os.environ.get("KLOUDLESS_ACCOUNT_ID"),
    )


def group_id(account: Account, name: str) -> str:
    """:returns: the id of the group named ``name``, creating the group when there is none."""
    for group in account.get("crm/contact_groups").get_paging_iterator():
        if group.data["name"].casefold() == name.casefold():
            return str(group.data["id"])
    return str(account.post("crm/contact_groups", json={"name": name}).data["id"])


def import_file(account: Account, path: str, group: str | None) -> list[dict[str, Any]]:
    """Import the cards of ``path``.

    :returns: the created contacts (as the API returned them, or after joining ``group``).
    """
    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"{path} is larger than {MAX_BYTES} bytes; split it first")
    created = account.post("crm/contacts/import", data=data, headers={"Content-Type": "text/vcard"})
    contacts = [c.data for c in created]
    if group:
        wanted = group_id(account, group)
        for index, contact in enumerate(contacts):
            if wanted not in contact["groups"]:
                contacts[index] = account.patch(
                    f"crm/contacts/{contact['id']}",
                    json={"groups": [*contact["groups"], wanted]},
                    headers={"If-Match": contact["etag"]},
                ).data
    return contacts


def main(argv: list[str] | None = None) -> int:
    """Import a .vcf file.

    :param argv: command-line arguments (default ``sys.argv[1:]``).
    :returns: the exit code.
    """
    parser = argparse.ArgumentParser(description="Import the contacts of a .vcf file.")
    parser.add_argument("file", help="the vCard file")
    parser.add_argument("--group", help="also put every imported contact into this group")
    args = parser.parse_args(argv)
    try:
        with make_account() as account:
            contacts = import_file(account, args.file, args.group)
    except APIException as exc:
        detail = (exc.error_data or {}).get("message") if isinstance(exc.error_data, dict) else None
        print(f"error: {detail or exc}", file=sys.stderr)
        return 1
    except (KloudlessException, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for contact in contacts:
        emails = ", ".join(e["address"] for e in contact["emails"])
        print(f"{contact['name'] or '(no name)'}  {emails}  ({contact['id']})")
    print(f"imported {len(contacts)} contact{'' if len(contacts) == 1 else 's'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
