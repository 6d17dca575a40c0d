"""The identifier and name-variant generators."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from gateway.keys.normalise import phonetic_code
from gateway.synth import identifiers as ids
from gateway.synth import tables
from schemas.values import luhn_valid, normalise_postcode


def test_every_mobile_block_gives_valid_gb_mobile_numbers() -> None:
    for block in tables.MOBILE_BLOCKS:
        for subscriber in ("000000", "493817", "999999"):
            number = phonenumbers.parse(f"+44{block}{subscriber}")
            assert phonenumbers.is_valid_number(number), block
            assert phonenumbers.region_code_for_number(number) == "GB", block
            assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE


def test_national_format_is_what_an_officer_types() -> None:
    assert ids.national_format("+447912345678") == "07912 345678"


def test_imeis_pass_the_luhn_check() -> None:
    rng = random.Random(3)
    for _ in range(200):
        value = ids.imei(rng)
        assert len(value) == 15
        assert luhn_valid(value)


def test_every_district_table_gives_valid_postcodes() -> None:
    rng = random.Random(5)
    areas = [*tables.FORCE_AREAS.values(), tables.GENERIC_AREA]
    for _towns, districts in areas:
        for district in districts:
            code = ids.postcode(rng, [district])
            assert normalise_postcode(code) == code


@pytest.mark.parametrize(
    ("written", "typed"),
    [
        ("Nguyễn", "Nguyen"),
        ("Łukasz", "Lukasz"),
        ("Ștefan", "Stefan"),
        ("Gëzim Çela", "Gezim Cela"),
    ],
)
def test_without_diacritics_keeps_case(written: str, typed: str) -> None:
    assert ids.without_diacritics(written) == typed


def test_spelling_variants_are_distinct_and_name_their_transformation() -> None:
    rng = random.Random(9)
    forms = ids.spelling_variants(rng, "Mohammed", "Hussain", 3)
    assert forms[0] == (("Mohammed", "Hussain"), "as_recorded")
    assert len({form for form, _ in forms}) == 3
    for (given, family), how in forms[1:]:
        if how.startswith("transliteration"):
            # Transliterations stay phonetically alike: what search has to rely on.
            assert {phonetic_code(p.lower()) for p in (given, family)} & {
                phonetic_code("mohammed"),
                phonetic_code("hussain"),
            }
        elif how.startswith("swapped"):
            assert (given, family) in {("Hussain", "Mohammed")}


def test_a_name_with_nothing_to_vary_still_gets_distinct_forms() -> None:
    forms = ids.spelling_variants(random.Random(1), "Besnik", "Shehu", 3)
    assert len({form for form, _ in forms}) == 3


def test_registration_marks_use_the_current_format() -> None:
    rng = random.Random(2)
    marks = [ids.vrm(rng, "M") for _ in range(300)]
    assert all(len(mark) == 7 and mark[2:4].isdigit() for mark in marks)
    assert sum(mark.startswith("M") for mark in marks) > 150
