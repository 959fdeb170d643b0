"""vCard text <-> contact fields (``connectors/vcard_mapping.py``): versions, primary items,
unknown properties, escaping and the data-URI photos vobject would cut."""

from __future__ import annotations

import pytest

from kloudless.server.connectors import vcard_mapping as vcard
from kloudless.server.connectors.contacts_base import ContactPhoto, clean_contact_input
from kloudless.server.errors import ApiError

V3 = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:u3\r\nFN:Ann Smith\r\nN:Smith;Ann;Q.;Dr.;\r\n"
    "EMAIL;TYPE=INTERNET,HOME:ann@home.example\r\nEMAIL;TYPE=WORK,PREF:ann@work.example\r\n"
    "TEL;TYPE=WORK,FAX:+1 2\r\nTEL;TYPE=CELL,VOICE:+1 3\r\nBDAY:19900203\r\n"
    "item1.URL:https://example.org\r\nitem1.X-ABLabel:_$!<HomePage>!$_\r\nEND:VCARD\r\n"
)
V4 = (
    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:u4\r\nFN:Bo\r\nEMAIL;TYPE=work:b@x.example\r\n"
    "EMAIL;PREF=1;TYPE=home:bo@x.example\r\nBDAY:--0415\r\n"
    "PHOTO:data:image/png;base64,iVBORw0KGgo=\r\nCLIENTPIDMAP:1;urn:uuid:x\r\nEND:VCARD\r\n"
)


def test_reading_vcard_30() -> None:
    fields = vcard.fields_of(vcard.parse_card(V3))
    assert (fields["first_name"], fields["last_name"], fields["name"]) == (
        "Ann",
        "Smith",
        "Ann Smith",
    )
    assert [(e["address"], e["primary"]) for e in fields["emails"]] == [
        ("ann@home.example", False),
        ("ann@work.example", True),
    ]
    assert [(p["type"], p["primary"]) for p in fields["phones"]] == [
        ("fax", True),
        ("mobile", False),
    ]
    assert fields["birthday"] == "1990-02-03" and fields["urls"] == ["https://example.org"]


def test_reading_vcard_40_and_its_data_uri_photo() -> None:
    card = vcard.parse_card(V4)
    fields = vcard.fields_of(card)
    assert [e["address"] for e in fields["emails"] if e["primary"]] == ["bo@x.example"]
    assert fields["birthday"] == "--04-15"
    assert vcard.photo_info(card) == {"content_type": "image/png", "size": 8}
    assert vcard.unknown_properties(card) == ["CLIENTPIDMAP"]
    assert "PHOTO:data:image/png;base64,iVBORw0KGgo=" in vcard.serialize(card, data_uri=True)
    assert "PHOTO;ENCODING=b;TYPE=PNG:iVBORw0KGgo=" in vcard.serialize(card)


def test_changes_keep_everything_else() -> None:
    card = vcard.parse_card(V3)
    changes = clean_contact_input({"first_name": "Anna", "emails": []}, partial=True)
    vcard.apply_fields(card, changes, {**vcard.fields_of(card), **changes})
    text = vcard.serialize(card)
    assert "N:Smith;Anna;Q.;Dr.;" in text and "FN:Anna Smith" in text and "EMAIL" not in text
    assert "item1.X-ABLABEL:_$!<HomePage>!$_" in text and "TEL;TYPE=WORK,FAX:+1 2" in text


def test_primary_is_written_per_version() -> None:
    for source, expected in (
        (V3, "EMAIL;TYPE=work,pref:n@x.example"),
        (V4, "EMAIL;PREF=1;TYPE=work:n@x.example"),
    ):
        card = vcard.parse_card(source)
        changes = clean_contact_input(
            {"emails": [{"address": "n@x.example", "type": "work"}]}, True
        )
        vcard.apply_fields(card, changes, {**vcard.fields_of(card), **changes})
        assert expected in vcard.serialize(card), source


def test_text_escaping_survives_a_round_trip() -> None:
    card = vcard.new_card("esc")
    changes = clean_contact_input(
        {"name": "A, B; C", "notes": "x,y;z\\w\nnext", "organization": "Org, Inc."}, partial=True
    )
    vcard.apply_fields(card, changes, changes)
    vcard.set_categories(card, ["One", "Two"])
    again = vcard.parse_card(vcard.serialize(card))
    fields = vcard.fields_of(again)
    assert (fields["name"], fields["notes"], fields["organization"]) == (
        "A, B; C",
        "x,y;z\\w\nnext",
        "Org, Inc.",
    )
    assert vcard.categories(again) == ["One", "Two"]


def test_embedded_photos() -> None:
    card = vcard.new_card("p")
    vcard.set_photo(card, ContactPhoto(b"\x89PNG\r\n\x1a\nrest", "image/png"))
    again = vcard.parse_card(vcard.serialize(card))
    photo = vcard.photo_of(again)
    assert photo is not None and photo.data == b"\x89PNG\r\n\x1a\nrest"
    assert photo.content_type == "image/png"
    vcard.set_photo(again, None)
    assert vcard.photo_info(again) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "BEGIN:VCARD\r\nFN:x\r\n",
        "BEGIN:VEVENT\r\nEND:VEVENT\r\n",
        "BEGIN:VCARD\r\nFN:\x00\r\nEND:VCARD\r\n",
    ],
)
def test_unreadable_text_is_a_400(text: str) -> None:
    with pytest.raises(ApiError) as caught:
        vcard.parse_cards(text)
    assert caught.value.status == 400
