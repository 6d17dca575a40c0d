"""Validated and normalised scalar types used by the record models.

Each type normalises to the one form that storage hashes into blind indexes (E.164 phone numbers,
upper-case VRMs without spaces, postcodes with a single space), so two forces entering the same
identifier differently still produce the same index value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import phonenumbers
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StringConstraints
from pydantic_core import PydanticCustomError

from schemas.forces import canonical_force_code, is_force_code

RECORD_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"

# Phone numbers written without an international prefix are read as UK numbers.
DEFAULT_PHONE_REGION = "GB"

# UK postcode shape (outward code, space, inward code) with the letters Royal Mail never uses in
# each position; domain-specific, and no postcode library is installed. GIR 0AA is the one
# historic exception to the pattern.
_POSTCODE = re.compile(
    r"^(?:GIR 0AA|"
    r"(?:[A-PR-UWYZ][0-9][0-9A-HJKPSTUW]?|[A-PR-UWYZ][A-HK-Y][0-9][0-9ABEHMNPRVWXY]?)"
    r" [0-9][ABD-HJLNP-UW-Z]{2})$"
)
_VRM = re.compile(r"^[A-Z0-9]{1,10}$")
_IMEI = re.compile(r"^[0-9]{15}$")


def normalise_phone_number(value: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """The E.164 form of a valid phone number; raises PydanticCustomError when invalid."""
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise PydanticCustomError("phone_number", "not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise PydanticCustomError("phone_number", "not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def luhn_valid(digits: str) -> bool:
    """Luhn check digit test (ISO/IEC 7812-1), as used for IMEI check digits."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _check_imei(value: str) -> str:
    compact = value.replace(" ", "").replace("-", "")
    if not _IMEI.fullmatch(compact):
        raise PydanticCustomError("imei", "an IMEI has 15 digits")
    if not luhn_valid(compact):
        raise PydanticCustomError("imei", "IMEI check digit is wrong")
    return compact


def normalise_vrm(value: str) -> str:
    """A vehicle registration mark in upper case without spaces."""
    compact = "".join(value.split()).upper()
    if not _VRM.fullmatch(compact):
        raise PydanticCustomError("vrm", "not a vehicle registration mark")
    return compact


def normalise_postcode(value: str) -> str:
    """A UK postcode in upper case with one space before the inward code."""
    compact = "".join(value.split()).upper()
    spaced = f"{compact[:-3]} {compact[-3:]}"
    if not _POSTCODE.fullmatch(spaced):
        raise PydanticCustomError("postcode", "not a valid UK postcode")
    return spaced


def _check_force_code(value: str) -> str:
    if not is_force_code(value):
        raise PydanticCustomError("force_code", "unknown force code")
    return canonical_force_code(value)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _strip_str(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


RecordId = Annotated[str, StringConstraints(pattern=RECORD_ID_PATTERN)]
ForceCode = Annotated[
    str, StringConstraints(pattern=r"^[0-9A-Z]{2}$"), AfterValidator(_check_force_code)
]
PhoneNumber = Annotated[
    str, StringConstraints(max_length=40), AfterValidator(normalise_phone_number)
]
Imei = Annotated[str, StringConstraints(max_length=20), AfterValidator(_check_imei)]
Vrm = Annotated[str, StringConstraints(max_length=20), AfterValidator(normalise_vrm)]
Postcode = Annotated[str, StringConstraints(max_length=10), AfterValidator(normalise_postcode)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]  # ISO 3166-1 alpha-2
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
# Short labels and names: surrounding whitespace is never meaningful, empty values are refused.
Text = Annotated[str, BeforeValidator(_strip_str), StringConstraints(min_length=1, max_length=200)]
# Narrative text keeps its whitespace as written.
LongText = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
