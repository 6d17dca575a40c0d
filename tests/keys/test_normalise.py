"""Normaliser tables: the canonical text each kind of identifier is blind-indexed as."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from gateway.keys.normalise import (
    name_parts,
    normalise_dob,
    normalise_line_name,
    normalise_name,
    normalise_phone,
    normalise_postcode,
    normalise_vrm,
    phonetic_code,
    postcode_district,
    strip_diacritics,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("07700 900123", "+447700900123"),
        ("+44 (0)7700 900123", "+447700900123"),
        ("0044 7700 900123", "+447700900123"),
        ("01632 960001", "+441632960001"),
        ("020 7946 0018", "+442079460018"),
        ("0161 496 0000", "+441614960000"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+1 202-555-0143", "+12025550143"),
        ("12345", None),
        ("+447700 9001234", None),
        ("not a phone", None),
        ("", None),
    ],
)
def test_phone_becomes_e164_or_none(raw: str, expected: str | None) -> None:
    assert normalise_phone(raw) == expected


def test_phone_default_region_applies_to_national_numbers() -> None:
    assert normalise_phone("06 12 34 56 78", default_region="FR") == "+33612345678"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ab12 cde", "AB12CDE"),
        ("AB12-CDE", "AB12CDE"),
        (" k 4 ", "K4"),
        ("ÄB12CDE", "AB12CDE"),
        ("Ｌ４", "L4"),
        ("---", None),
        ("", None),
    ],
)
def test_vrm_is_upper_case_alphanumerics(raw: str, expected: str | None) -> None:
    assert normalise_vrm(raw) == expected


@pytest.mark.parametrize(
    ("raw", "parts"),
    [
        ("O'Brien-Smith, Seán", ["obrien", "smith", "sean"]),
        ("Nguyễn Văn An", ["nguyen", "van", "an"]),
        ("  JOSÉ   maría ", ["jose", "maria"]),
        ("Łukasz Żółć", ["lukasz", "zolc"]),
        ("Straße", ["strasse"]),
        ("D’Souza", ["dsouza"]),
        ("Søren Ærø", ["soren", "aero"]),
        ("Александр", ["александр"]),
        ("...", []),
    ],
)
def test_name_parts_are_casefolded_without_accents_or_punctuation(
    raw: str, parts: list[str]
) -> None:
    assert name_parts(raw) == parts
    assert normalise_name(raw) == (" ".join(parts) or None)


def test_strip_diacritics_casefolds() -> None:
    assert strip_diacritics("ÉMILE Nguyễn") == "emile nguyen"


@pytest.mark.parametrize(
    ("part", "code"),
    [
        ("mohammed", "MHMT"),
        ("aleksandr", "ALKSNTR"),
        ("oleksandr", "ALKSNTR"),
        ("elena", "ALN"),
        ("smith", "SM0"),
        ("александр", None),
        ("", None),
    ],
)
def test_phonetic_code_is_metaphone_with_leading_vowel_folded(part: str, code: str | None) -> None:
    assert phonetic_code(part) == code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1990-03-07", "1990-03-07"),
        ("7/3/1990", "1990-03-07"),
        ("07.03.1990", "1990-03-07"),
        ("07-03-1990", "1990-03-07"),
        (" 1990-03-07 ", "1990-03-07"),
        ("1990-02-30", None),
        ("31/02/2000", None),
        ("1990/03/07", None),
        ("19900307", None),
        ("tomorrow", None),
        (date(1990, 3, 7), "1990-03-07"),
        (datetime(1990, 3, 7, 12, 30), "1990-03-07"),
    ],
)
def test_dob_becomes_iso_date(raw: str | date, expected: str | None) -> None:
    assert normalise_dob(raw) == expected


@pytest.mark.parametrize(
    ("raw", "full", "district"),
    [
        ("l18jq", "L1 8JQ", "L1"),
        ("L1 8JQ", "L1 8JQ", "L1"),
        (" sw1a 1aa ", "SW1A 1AA", "SW1A"),
        ("EC1A1BB", "EC1A 1BB", "EC1A"),
        ("B33 8TH", "B33 8TH", "B33"),
        ("DN55  1PT", "DN55 1PT", "DN55"),
        ("gir0aa", "GIR 0AA", "GIR"),
        ("L1", None, "L1"),
        ("sw1a", None, "SW1A"),
        ("12345", None, None),
        ("LL1 1AAA", None, None),
        ("", None, None),
    ],
)
def test_postcode_and_district(raw: str, full: str | None, district: str | None) -> None:
    assert normalise_postcode(raw) == full
    assert postcode_district(raw) == district


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Bando-Line 2", "bandoline2"),
        ("TONY line", "tonyline"),
        ("Émile’s", "emiles"),
        ("  ", None),
    ],
)
def test_line_name_is_casefolded_alphanumerics(raw: str, expected: str | None) -> None:
    assert normalise_line_name(raw) == expected
