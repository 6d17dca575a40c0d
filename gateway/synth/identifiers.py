"""Realistic identifiers for synthetic records: UK mobile numbers, IMEIs, registration marks,
postcodes, addresses, dates, and the spelling variants under which forces record one person.

Every function takes the caller's `random.Random`, so a seed fixes the output. Values come out in
the normalised form the record models store (E.164, VRM without spaces, postcode with one space),
so a generated record is already what `model_dump(mode="json")` would produce.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from gateway.synth import tables

EPOCH = date(1970, 1, 1)


def seeded_rng(*parts: object) -> random.Random:
    """A generator fixed by `parts` (string seeds are hashed with SHA-512, not PYTHONHASHSEED)."""
    # Reproducibility is the point here; nothing generated is a secret.
    return random.Random("/".join(str(part) for part in parts))  # noqa: S311


# --- phones -----------------------------------------------------------------------------------


def mobile_number(rng: random.Random, blocks: Sequence[str]) -> str:
    """A UK mobile number in E.164 drawn from `blocks` (07XXX blocks without the leading 0)."""
    return f"+44{rng.choice(blocks)}{rng.randrange(1_000_000):06d}"


def national_format(e164: str) -> str:
    """How an officer types a UK mobile number in free text: "07912 345678"."""
    national = "0" + e164[3:]
    return f"{national[:5]} {national[5:]}"


def luhn_check_digit(digits: str) -> str:
    """The Luhn digit that makes `digits` + digit pass the IMEI check (ISO/IEC 7812-1)."""
    total = 0
    # Positions are counted from the right of the final number, whose last digit is the check.
    for position, char in enumerate(reversed(digits), start=1):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def imei(rng: random.Random) -> str:
    body = f"{rng.choice(tables.IMEI_TACS)}{rng.randrange(1_000_000):06d}"
    return body + luhn_check_digit(body)


# --- vehicles ---------------------------------------------------------------------------------


def vrm(rng: random.Random, region: str | None) -> str:
    """A current-format GB registration mark (e.g. "MA19XKD", stored without the space).

    The age identifier is the year for March registrations and year + 50 for September ones;
    2005 to 2024 keeps every mark plausible for a car on the road now.
    """
    first = region if region is not None and rng.random() < 0.6 else None
    if first is None:
        first = rng.choice(tables.VRM_REGION_LETTERS)
    second = rng.choice(tables.VRM_LETTERS)
    year = rng.randrange(5, 25)
    age = year + 50 if rng.random() < 0.5 else year
    letters = tables.VRM_LETTERS
    tail = rng.choice(letters) + rng.choice(letters) + rng.choice(letters)
    return f"{first}{second}{age:02d}{tail}"


# --- places -----------------------------------------------------------------------------------


def force_area(force: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Towns and postcode districts of a force area (a generic list for forces not tabled)."""
    return tables.FORCE_AREAS.get(force, tables.GENERIC_AREA)


def postcode(rng: random.Random, districts: Sequence[str]) -> str:
    letters = tables.INWARD_LETTERS
    return (
        f"{rng.choice(districts)} {rng.randrange(1, 10)}{rng.choice(letters)}{rng.choice(letters)}"
    )


def street(rng: random.Random) -> str:
    return f"{rng.choice(tables.STREET_STEMS)} {rng.choice(tables.STREET_SUFFIXES)}"


def home_address(rng: random.Random) -> list[str]:
    """One or two address lines of a house or flat."""
    line = f"{rng.randrange(1, 240)} {street(rng)}"
    if rng.random() < 0.3:
        return [f"{rng.choice(tables.FLAT_PREFIXES)} {rng.randrange(1, 40)}", line]
    return [line]


def premises_address(rng: random.Random, premises_type: str) -> list[str]:
    """Address lines for a business: car washes sit on estates or forecourts, nail bars on
    high streets."""
    if premises_type == "car_wash" and rng.random() < 0.6:
        return [f"Unit {rng.randrange(1, 30)}", rng.choice(tables.ESTATE_NAMES)]
    return [f"{rng.randrange(1, 300)} {street(rng)}"]


# --- dates ------------------------------------------------------------------------------------


def day_between(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randrange((end - start).days + 1))


def utc_text(moment: datetime) -> str:
    """A UTC instant as pydantic writes it in JSON mode ("2024-03-01T09:30:00Z")."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def instant_on(rng: random.Random, day: date) -> datetime:
    """A time during the working day or evening of `day`, in UTC."""
    seconds = rng.randrange(7 * 3600, 23 * 3600)
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)


def date_of_birth(rng: random.Random, reference: date, min_age: int, max_age: int) -> date:
    youngest = reference.replace(year=reference.year - min_age)
    oldest = reference.replace(year=reference.year - max_age - 1) + timedelta(days=1)
    return day_between(rng, oldest, youngest)


# --- names ------------------------------------------------------------------------------------

# Letters that Unicode decomposition does not split into a base letter and a diacritic.
_PLAIN_LETTERS = str.maketrans({"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ø": "o", "Ø": "O"})


def _transliteration_index() -> dict[str, tuple[str, ...]]:
    """Name -> its other spellings; a name in several groups gets the union, in table order."""
    index: dict[str, list[str]] = {}
    for group in tables.TRANSLITERATIONS:
        for name in group:
            spellings = index.setdefault(name, [])
            spellings.extend(other for other in group if other != name and other not in spellings)
    return {name: tuple(spellings) for name, spellings in index.items()}


_TRANSLITERATION_INDEX = _transliteration_index()


def without_diacritics(text: str) -> str:
    """The name as typed on a keyboard without accents: "Nguyễn" -> "Nguyen", "Łukasz" -> "Lukasz".

    Unlike the blind-index normaliser this keeps case, because it models what an officer types.
    """
    decomposed = unicodedata.normalize("NFKD", text.translate(_PLAIN_LETTERS))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _transliterated(rng: random.Random, name: str) -> str | None:
    tokens = name.replace("-", " ").split()
    candidates = [i for i, token in enumerate(tokens) if token in _TRANSLITERATION_INDEX]
    if not candidates:
        return None
    index = rng.choice(candidates)
    tokens[index] = rng.choice(_TRANSLITERATION_INDEX[tokens[index]])
    return " ".join(tokens)


def _respaced(rng: random.Random, name: str) -> str | None:
    """Hyphenation and spacing: "Abdul Rahman" -> "Abdul-Rahman" or "Abdulrahman",
    "Oyelaran-Smith" -> "Oyelaran Smith", "O'Brien" -> "O Brien"."""
    if "-" in name:
        return name.replace("-", rng.choice((" ", "")))
    if " " in name:
        joined = name.replace(" ", rng.choice(("-", "")))
        return joined[0] + joined[1:].lower() if "-" not in joined else joined
    if "'" in name:
        return name.replace("'", rng.choice((" ", "")))
    return None


NameForm = tuple[str, str]  # (given names, family name) as written in one force's record


def spelling_variants(
    rng: random.Random, given: str, family: str, count: int
) -> list[tuple[NameForm, str]]:
    """`count` written forms of one person's name, the first as given, each later one produced by
    a different slip that real cross-force matching has to survive.

    Returns (form, how) pairs; `how` names the transformation for the ground truth. Forms repeat
    only when a name offers fewer distinct variants than `count`.
    """
    forms: list[tuple[NameForm, str]] = [((given, family), "as_recorded")]
    seen = {(given, family)}
    attempts = 0
    while len(forms) < count and attempts < 50:
        attempts += 1
        how = rng.choice(("transliteration", "swapped", "no_diacritics", "hyphenation"))
        form: NameForm | None = None
        if how == "transliteration":
            new_given = _transliterated(rng, given)
            new_family = _transliterated(rng, family)
            if new_given is not None and (new_family is None or rng.random() < 0.6):
                form = (new_given, family)
            elif new_family is not None:
                form = (given, new_family)
        elif how == "swapped":
            form = (family, given)
        elif how == "no_diacritics":
            form = (without_diacritics(given), without_diacritics(family))
        else:
            new_given = _respaced(rng, given)
            new_family = _respaced(rng, family)
            if new_family is not None and (new_given is None or rng.random() < 0.5):
                form = (given, new_family)
            elif new_given is not None:
                form = (new_given, family)
        # A second slip on top of the first is common (swapped *and* without accents).
        if form is not None and rng.random() < 0.3 and how != "no_diacritics":
            form = (without_diacritics(form[0]), without_diacritics(form[1]))
            how += "+no_diacritics"
        if form is not None and form not in seen:
            seen.add(form)
            forms.append((form, how))
    # Names with nothing to transliterate, accent or hyphenate still differ in how systems
    # store them: many hold the family name in capitals.
    for fallback in ((given, family.upper()), (family.upper(), given)):
        if len(forms) < count and fallback not in seen:
            seen.add(fallback)
            forms.append((fallback, "family_capitals"))
    while len(forms) < count:
        forms.append(forms[-1])
    return forms
