"""The force registry: 43 territorial forces of England and Wales plus the other participants."""

import pytest

from schemas import UnknownForceError, all_forces, get_force, is_force_code
from schemas.forces import ForceKind, Jurisdiction, canonical_force_code


def test_registry_has_the_43_territorial_forces_of_england_and_wales() -> None:
    territorial = [
        force
        for force in all_forces()
        if force.kind is ForceKind.TERRITORIAL and force.jurisdiction is Jurisdiction.ENGLAND_WALES
    ]
    assert len(territorial) == 43
    assert all(force.police_uk_id for force in territorial)


def test_codes_and_police_uk_ids_are_unique() -> None:
    codes = [code for force in all_forces() for code in (force.code, *force.aliases)]
    assert len(codes) == len(set(codes))
    ids = [force.police_uk_id for force in all_forces() if force.police_uk_id]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("code", "name", "kind"),
    [
        ("01", "Metropolitan Police Service", ForceKind.TERRITORIAL),
        ("20", "West Midlands Police", ForceKind.TERRITORIAL),
        ("93", "British Transport Police", ForceKind.SPECIAL),
        ("98", "Police Service of Northern Ireland", ForceKind.TERRITORIAL),
        ("SC", "Police Scotland", ForceKind.TERRITORIAL),
        ("91", "National Crime Agency", ForceKind.NATIONAL),
    ],
)
def test_known_forces_resolve(code: str, name: str, kind: ForceKind) -> None:
    force = get_force(code)
    assert (force.code, force.name, force.kind) == (code, name, kind)


def test_met_alias_resolves_to_the_met() -> None:
    assert get_force("02") is get_force("01")
    assert canonical_force_code("02") == "01"
    assert is_force_code("02")


@pytest.mark.parametrize("code", ["00", "99", "70", "1", "SCO", "", "metropolitan"])
def test_unknown_codes_are_refused(code: str) -> None:
    assert not is_force_code(code)
    with pytest.raises(UnknownForceError):
        get_force(code)
