"""The force registry: every police force or agency a record can belong to or be shared with.

The data lives in `forces.json` beside this module (seed data from the domain reference, section 8)
so it can be reviewed and corrected without touching code. Codes are PNC two-digit force codes,
except Police Scotland (see the comment in the JSON file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources


class ForceKind(StrEnum):
    TERRITORIAL = "territorial"
    SPECIAL = "special"  # e.g. British Transport Police
    NATIONAL = "national"  # e.g. National Crime Agency


class Jurisdiction(StrEnum):
    ENGLAND_WALES = "england_wales"
    SCOTLAND = "scotland"
    NORTHERN_IRELAND = "northern_ireland"
    GREAT_BRITAIN = "great_britain"
    UNITED_KINGDOM = "united_kingdom"


class UnknownForceError(KeyError):
    """A code that is neither a force code nor an alias in the registry."""


@dataclass(frozen=True, slots=True)
class Force:
    code: str
    name: str
    police_uk_id: str | None
    kind: ForceKind
    jurisdiction: Jurisdiction
    aliases: tuple[str, ...] = ()


@cache
def _registry() -> tuple[tuple[Force, ...], dict[str, Force]]:
    raw = json.loads(resources.files("schemas").joinpath("forces.json").read_text("utf-8"))
    forces = tuple(
        Force(
            code=item["code"],
            name=item["name"],
            police_uk_id=item["police_uk_id"],
            kind=ForceKind(item["kind"]),
            jurisdiction=Jurisdiction(item["jurisdiction"]),
            aliases=tuple(item["aliases"]),
        )
        for item in raw["forces"]
    )
    by_code: dict[str, Force] = {}
    for force in forces:
        for code in (force.code, *force.aliases):
            if code in by_code:
                raise ValueError(f"force code {code!r} appears twice in forces.json")
            by_code[code] = force
    return forces, by_code


def all_forces() -> tuple[Force, ...]:
    """Every force in registry order (aliases are not separate entries)."""
    return _registry()[0]


def get_force(code: str) -> Force:
    """The force for a code or an alias (Met: "02" gives the force whose code is "01")."""
    try:
        return _registry()[1][code]
    except KeyError:
        raise UnknownForceError(code) from None


def is_force_code(code: str) -> bool:
    """Whether `code` is a force code or an alias in the registry."""
    return code in _registry()[1]


def canonical_force_code(code: str) -> str:
    """The registry's own code for a code or alias; records always store this one."""
    return get_force(code).code
