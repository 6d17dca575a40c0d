"""Blind index tags: deterministic, separated by force, kind and version; name variants."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gateway.keys import (
    IndexKeyring,
    IndexTerm,
    LocalKeyFileProvider,
    blind_index_terms,
    init_local_keyfile,
    new_index_root,
    normalised_terms,
)
from gateway.keys.blind_index import KEYED_AS
from schemas.fields import IndexKind

ROOT = bytes(range(32))


@pytest.fixture
def keyring() -> IndexKeyring:
    return IndexKeyring(ROOT, "05")


def _tags(keyring: IndexKeyring, kind: IndexKind, value: str, term_kind: str) -> set[str]:
    return {term.tag_hex for term in keyring.terms(kind, value) if term.term_kind == term_kind}


def test_tags_are_deterministic_and_16_bytes(keyring: IndexKeyring) -> None:
    first = keyring.terms(IndexKind.PHONE, "07700 900123")
    again = IndexKeyring(ROOT, "05").terms(IndexKind.PHONE, "+44 7700 900123")
    assert first == again
    [term] = first
    assert term.term_kind == "phone"
    assert len(bytes.fromhex(term.tag_hex)) == 16


def test_same_value_in_another_force_gets_a_different_tag(keyring: IndexKeyring) -> None:
    other_force = IndexKeyring(ROOT, "20")
    assert keyring.terms(IndexKind.VRM, "AB12CDE") != other_force.terms(IndexKind.VRM, "AB12CDE")
    assert keyring.key_for(IndexKind.VRM, 1) != other_force.key_for(IndexKind.VRM, 1)


def test_another_root_secret_gets_a_different_tag(keyring: IndexKeyring) -> None:
    other_root = IndexKeyring(new_index_root(), "05")
    assert keyring.terms(IndexKind.DOB, "1990-03-07") != other_root.terms(
        IndexKind.DOB, "1990-03-07"
    )


def test_keys_are_separate_per_index_kind_and_version(keyring: IndexKeyring) -> None:
    keyed = [kind for kind in IndexKind if kind not in KEYED_AS]
    keys = {keyring.key_for(kind, version) for kind in keyed for version in (1, 2)}
    assert len(keys) == 2 * len(keyed)
    assert all(len(key) == 32 for key in keys)
    assert keyring.terms(IndexKind.VRM, "AB12CDE", version=1) != keyring.terms(
        IndexKind.VRM, "AB12CDE", version=2
    )


def test_numbers_in_free_text_are_keyed_as_phone_numbers(keyring: IndexKeyring) -> None:
    text = "Line now on 07911 123456 (was +44 7912 345678); not 12345."
    found = keyring.terms(IndexKind.PHONE_IN_TEXT, text)
    assert [t.term_kind for t in found] == ["phone", "phone"]
    assert found[0] == keyring.terms(IndexKind.PHONE, "+447911123456")[0]
    assert found[1] == keyring.terms(IndexKind.PHONE, "07912345678")[0]
    assert keyring.terms(IndexKind.PHONE_IN_TEXT, "no numbers here") == []


def test_same_text_under_different_kinds_does_not_collide(keyring: IndexKeyring) -> None:
    as_vrm = keyring.tag(IndexKind.VRM, "vrm", "TONY1", 1)
    as_line = keyring.tag(IndexKind.LINE_NAME, "line_name", "TONY1", 1)
    as_other_term = keyring.tag(IndexKind.VRM, "line_name", "TONY1", 1)
    assert len({as_vrm, as_line, as_other_term}) == 3


def test_equivalent_inputs_give_equal_tags(keyring: IndexKeyring) -> None:
    pairs = [
        (IndexKind.VRM, "ab12 cde", "AB12-CDE"),
        (IndexKind.DOB, "7/3/1990", "1990-03-07"),
        (IndexKind.POSTCODE, "l18jq", "L1 8JQ"),
        (IndexKind.LINE_NAME, "Bando Line", "BANDO-LINE"),
        (IndexKind.NAME, "Nguyễn Văn An", "nguyen van an"),
    ]
    for kind, left, right in pairs:
        assert keyring.terms(kind, left) == keyring.terms(kind, right), kind
    assert keyring.terms(IndexKind.DOB, date(1990, 3, 7)) == keyring.terms(
        IndexKind.DOB, "1990-03-07"
    )


def test_unnormalisable_values_yield_no_terms(keyring: IndexKeyring) -> None:
    assert keyring.terms(IndexKind.PHONE, "12345") == []
    assert keyring.terms(IndexKind.DOB, "1990-02-30") == []
    assert keyring.terms(IndexKind.NAME, "...") == []
    assert keyring.terms(IndexKind.POSTCODE, "nowhere") == []


def test_postcode_yields_full_and_district_terms(keyring: IndexKeyring) -> None:
    kinds = [term.term_kind for term in keyring.terms(IndexKind.POSTCODE, "L1 8JQ")]
    assert kinds == ["postcode", "postcode_district"]
    district_only = keyring.terms(IndexKind.POSTCODE, "L1")
    assert [term.term_kind for term in district_only] == ["postcode_district"]
    assert district_only[0] in keyring.terms(IndexKind.POSTCODE, "L1 8JQ")


def test_name_yields_full_and_per_part_exact_and_phonetic_terms() -> None:
    assert normalised_terms(IndexKind.NAME, "Mohammed Ali Mohammed") == [
        ("name_full", "ali mohammed mohammed"),
        ("name_full_phonetic", "AL MHMT MHMT"),
        ("name_part", "mohammed"),
        ("name_part_phonetic", "MHMT"),
        ("name_part", "ali"),
        ("name_part_phonetic", "AL"),
    ]


def test_module_function_matches_keyring_method(keyring: IndexKeyring) -> None:
    assert blind_index_terms(keyring, "phone", "07700 900123") == keyring.terms(
        IndexKind.PHONE, "07700 900123"
    )
    assert isinstance(blind_index_terms(keyring, "vrm", "AB12CDE")[0], IndexTerm)


def test_invalid_arguments_are_rejected(keyring: IndexKeyring) -> None:
    with pytest.raises(ValueError):
        keyring.terms("shoe_size", "10")
    with pytest.raises(ValueError):
        keyring.key_for(IndexKind.VRM, 0)
    with pytest.raises(ValueError):
        IndexKeyring(b"short", "05")
    with pytest.raises(TypeError):
        keyring.terms(IndexKind.VRM, date(2020, 1, 1))


def test_root_secret_wrapped_by_the_kek_gives_the_same_tags(tmp_path: Path) -> None:
    init_local_keyfile(tmp_path / "kek.json")
    provider = LocalKeyFileProvider(tmp_path / "kek.json")
    root = new_index_root()
    stored = provider.wrap(root)
    before = IndexKeyring(root, "05").terms(IndexKind.NAME, "Amir Khan")
    after = IndexKeyring(provider.unwrap(stored), "05").terms(IndexKind.NAME, "Amir Khan")
    assert before == after
    assert root.hex() not in repr(IndexKeyring(root, "05"))


# --- Name variant matching (what a search finds) ------------------------------------------

SAME_PERSON_VARIANTS = [
    ["Mohammed", "Muhammad", "Mohamed", "Mohammad", "Muhammed", "Mohamad"],
    ["Aleksandr", "Alexander", "Aleksander", "Alexandr", "Oleksandr"],
    ["Nguyen", "Nguyễn"],
    ["Yusuf", "Yousef", "Youssef", "Yusef"],
    ["Ahmed", "Ahmad"],
    ["Catherine", "Kathryn", "Katherine"],
    ["Smith", "Smyth"],
    ["Olena", "Elena", "Alena"],
    ["Dmitri", "Dmitry", "Dimitri"],
    ["Abdullah", "Abdulla"],
    ["Jon", "John"],
]


@pytest.mark.parametrize("variants", SAME_PERSON_VARIANTS, ids=lambda v: v[0])
def test_transliteration_variants_share_a_phonetic_tag(
    keyring: IndexKeyring, variants: list[str]
) -> None:
    tags = [_tags(keyring, IndexKind.NAME, name, "name_part_phonetic") for name in variants]
    assert all(tag == tags[0] and len(tag) == 1 for tag in tags), variants


def test_diacritic_variant_matches_exactly(keyring: IndexKeyring) -> None:
    assert _tags(keyring, IndexKind.NAME, "Nguyễn", "name_part") == _tags(
        keyring, IndexKind.NAME, "Nguyen", "name_part"
    )


def test_swapped_given_and_family_names_match_on_full_name(keyring: IndexKeyring) -> None:
    stored = _tags(keyring, IndexKind.NAME, "Mohammed Ali", "name_full")
    assert _tags(keyring, IndexKind.NAME, "Ali, Mohammed", "name_full") == stored
    assert _tags(keyring, IndexKind.NAME, "ALI Muhammad", "name_full") != stored
    assert _tags(keyring, IndexKind.NAME, "ALI Muhammad", "name_full_phonetic") == _tags(
        keyring, IndexKind.NAME, "Mohammed Ali", "name_full_phonetic"
    )


def test_a_partner_cannot_match_our_tags_with_its_own_keys(keyring: IndexKeyring) -> None:
    partner = IndexKeyring(ROOT, "20")
    ours = _tags(keyring, IndexKind.NAME, "Mohammed", "name_part_phonetic")
    assert _tags(keyring, IndexKind.NAME, "Muhammad", "name_part_phonetic") == ours
    assert _tags(partner, IndexKind.NAME, "Muhammad", "name_part_phonetic").isdisjoint(ours)


@pytest.mark.parametrize(
    ("left", "right"),
    [("Mohammed", "Michael"), ("Smith", "Jones"), ("Aleksandr", "Alexis"), ("Nguyen", "Nunez")],
)
def test_different_names_do_not_share_a_phonetic_tag(
    keyring: IndexKeyring, left: str, right: str
) -> None:
    assert _tags(keyring, IndexKind.NAME, left, "name_part_phonetic").isdisjoint(
        _tags(keyring, IndexKind.NAME, right, "name_part_phonetic")
    )
