"""Normalisers for blind-indexed identifiers: one small function per kind of search term.

Each returns the canonical text that is hashed into a blind index, or None when the input cannot
be normalised (an invalid phone number, an impossible date...). The same function runs when a
record is stored and when a partner's query term arrives, so both sides agree byte for byte.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime

import jellyfish
import phonenumbers

# Ofcom reserves these UK ranges for drama and examples; `phonenumbers` calls them invalid, but
# synthetic and training data use them, and they must still index and match.
_OFCOM_DRAMA_PREFIXES = ("+447700900", "+441632960")

# Letters that Unicode NFKD does not decompose into a base letter plus marks.
_UNDECOMPOSED = str.maketrans(
    {"ł": "l", "ø": "o", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ı": "i", "ħ": "h"}
)
_APOSTROPHES = re.compile(r"['’ʼ`´]")
_NOT_ALNUM_OR_SPACE = re.compile(r"[^\w\s]+|_")
# UK postcode shape (outward A9, A99, AA9, AA99, A9A, AA9A; inward 9AA) plus the GIR 0AA oddity.
_POSTCODE = re.compile(r"([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})|(GIR)(0AA)")
_OUTWARD = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?")
_DAY_FIRST = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})")


def strip_diacritics(text: str) -> str:
    """Casefold and remove accents: "Nguyễn" -> "nguyen", "Łukasz" -> "lukasz", "ß" -> "ss"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return bare.translate(_UNDECOMPOSED)


def normalise_phone(value: str, default_region: str = "GB") -> str | None:
    """E.164 ("+447700900123"); national numbers are read as `default_region`. Invalid -> None."""
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException:
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if phonenumbers.is_valid_number(number):
        return e164
    if e164.startswith(_OFCOM_DRAMA_PREFIXES) and len(e164) == 13:
        return e164
    return None


def phones_in_text(text: str, default_region: str = "GB") -> list[str]:
    """Every valid phone number written in free text, in E.164, in order of appearance."""
    found: list[str] = []
    for match in phonenumbers.PhoneNumberMatcher(text, default_region):
        found.append(phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164))
    return list(dict.fromkeys(found))


def normalise_vrm(value: str) -> str | None:
    """Vehicle registration mark: upper case, letters and digits only ("ab12 cde" -> "AB12CDE")."""
    vrm = re.sub(r"[^A-Z0-9]", "", strip_diacritics(value).upper())
    return vrm or None


def name_parts(value: str) -> list[str]:
    """The normalised parts of a name, in order ("O'Brien-Smith, Seán" -> obrien smith sean)."""
    text = _APOSTROPHES.sub("", strip_diacritics(value))
    text = _NOT_ALNUM_OR_SPACE.sub(" ", text)
    return text.split()


def normalise_name(value: str) -> str | None:
    """A whole name casefolded, without accents or punctuation, single-spaced."""
    parts = name_parts(value)
    return " ".join(parts) or None


def phonetic_code(part: str) -> str | None:
    """Metaphone code of one normalised name part, with any leading vowel folded to "A".

    Metaphone (jellyfish) groups Mohammed/Muhammad/Mohamed, Aleksandr/Alexander and
    Yusuf/Yousef; NYSIIS splits the Alexander family and Soundex is coarser. Transliterations
    of one name often differ only in the first vowel (Oleksandr/Aleksandr, Olena/Elena), which
    plain Metaphone keeps; folding it is what Double Metaphone does, and jellyfish lacks that.
    Parts with no Latin letters (e.g. unconverted Cyrillic) have no code.
    """
    letters = "".join(ch for ch in part if "a" <= ch <= "z")
    if not letters:
        return None
    code = jellyfish.metaphone(letters).upper()
    if not code:
        return None
    if code[0] in "AEIOU":
        code = "A" + code[1:]
    return code


def normalise_dob(value: str | date) -> str | None:
    """ISO date ("1990-03-07"). Accepts dates, ISO strings and UK day-first "7/3/1990"."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = value.strip()
    match = _DAY_FIRST.fullmatch(text)
    try:
        if match is not None:
            day, month, year = (int(group) for group in match.groups())
            return date(year, month, day).isoformat()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text).isoformat()
    except ValueError:
        return None
    return None


def _postcode_pieces(value: str) -> tuple[str, str] | None:
    compact = re.sub(r"\s+", "", value).upper()
    match = _POSTCODE.fullmatch(compact)
    if match is None:
        return None
    outward = match.group(1) or match.group(3)
    inward = match.group(2) or match.group(4)
    return outward, inward


def normalise_postcode(value: str) -> str | None:
    """UK postcode, upper case with one space before the inward code ("l18jq" -> "L1 8JQ")."""
    pieces = _postcode_pieces(value)
    return None if pieces is None else f"{pieces[0]} {pieces[1]}"


def postcode_district(value: str) -> str | None:
    """The outward code (postcode district) of a full postcode or of an outward code alone."""
    pieces = _postcode_pieces(value)
    if pieces is not None:
        return pieces[0]
    compact = re.sub(r"\s+", "", value).upper()
    return compact if _OUTWARD.fullmatch(compact) else None


def normalise_line_name(value: str) -> str | None:
    """County line brand name: casefolded, no accents, letters and digits only ("Bando-Line 2")."""
    line = "".join(ch for ch in strip_diacritics(value) if ch.isalnum())
    return line or None
