"""examples/import_vcf.py, run as a script against the live server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from example_helpers import run_example

from kloudless import Account

VCF = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann Smith\r\nN:Smith;Ann;;;\r\n"
    "EMAIL:ann@example.org\r\nX-SPOUSE:Bob\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Dev Four\r\nEMAIL;PREF=1:dev@example.org\r\nEND:VCARD\r\n"
)


def test_import_vcf_into_a_group(creds: Any, tmp_path: Path) -> None:
    source = tmp_path / "contacts.vcf"
    source.write_text(VCF, encoding="utf-8")
    result = run_example("import_vcf", [str(source), "--group", "Imported"], creds)
    assert result.returncode == 0, result.stderr
    assert "Ann Smith  ann@example.org" in result.stdout
    assert result.stdout.strip().endswith("imported 2 contacts")
    with Account(token=creds.token, base_url=creds.base_url) as account:
        (group,) = list(account.get("crm/contact_groups"))
        assert (group.data["name"], group.data["count"]) == ("Imported", 2)
        ann = account.get("crm/contacts", params={"q": "ann@"})[0]
        assert ann.data["raw"]["unknown_properties"] == ["X-SPOUSE"]


def test_import_vcf_errors(creds: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.vcf"
    broken.write_text("this is not a vcard", encoding="utf-8")
    result = run_example("import_vcf", [str(broken)], creds)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "vCard" in result.stderr
    missing = run_example("import_vcf", [str(tmp_path / "absent.vcf")], creds)
    assert missing.returncode == 1 and "absent.vcf" in missing.stderr
