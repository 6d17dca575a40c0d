"""Search by vehicle registration mark, postcode and county line name, end to end.

Records are loaded through the sync API (validated, encrypted, blind-indexed) and found through
`search_local` (blind tags, decryption, re-check, policy), on SQLite and on PostgreSQL. Each
identifier is asked for as people write it, whatever its case and spacing, and a neighbouring
value (one character off, or the same postcode district) must not find it.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.search.service import SearchTerms
from policies import Mode
from schemas.examples import example_record
from tests.gateway.conftest import NodeClient
from tests.gateway.test_search_service import analyst, context, load, search


def vehicle(record_id: str, vrm: str) -> dict[str, Any]:
    record = example_record("vehicle", id=record_id, owner_force="20")
    record["body"]["vrm"] = vrm
    return record


def location(record_id: str, postcode: str) -> dict[str, Any]:
    record = example_record("location", id=record_id, owner_force="20")
    record["body"]["postcode"] = postcode
    return record


def county_line(record_id: str, *names: str) -> dict[str, Any]:
    record = example_record("county_line", id=record_id, owner_force="20")
    record["body"]["line_names"] = list(names)
    return record


@pytest.fixture
def identified(any_node: NodeClient) -> NodeClient:
    load(
        any_node,
        [
            vehicle("v-1", "AB12CDE"),
            vehicle("v-2", "AB12CDF"),
            # Sent as a force system might type it: the schema stores "L1 8JQ".
            location("loc-1", "l18jq"),
            location("loc-2", "L1 8JR"),  # the same district, L1
            county_line("cl-1", "Bando Line", "Bando"),
            county_line("cl-2", "Bandit Line"),
        ],
    )
    return any_node


def found(node: NodeClient, terms: SearchTerms, mode: Mode = Mode.HITS) -> list[str]:
    return [h.record_id for h in search(node, terms, analyst("20"), context(mode)).hits]


def test_a_vrm_is_found_in_any_case_and_spacing(identified: NodeClient) -> None:
    for spelling in ("AB12CDE", "ab12 cde", "Ab12-Cde", " a b 1 2 c d e "):
        assert found(identified, SearchTerms(vrm=spelling)) == ["v-1"], spelling


def test_a_vrm_one_character_off_finds_the_other_vehicle_or_nothing(
    identified: NodeClient,
) -> None:
    assert found(identified, SearchTerms(vrm="ab12 cdf")) == ["v-2"]
    assert found(identified, SearchTerms(vrm="AB12CDG")) == []
    assert found(identified, SearchTerms(vrm="AB12CD")) == []


def test_a_vrm_hit_in_records_mode_carries_the_vehicle(identified: NodeClient) -> None:
    [hit] = search(identified, SearchTerms(vrm="ab12 cde"), analyst("20"), context()).hits
    assert hit.kind == "vehicle"
    assert hit.matched == ["vrm"]
    assert hit.record is not None and hit.record["body"]["vrm"] == "AB12CDE"


def test_a_postcode_is_found_in_any_case_and_spacing(identified: NodeClient) -> None:
    for spelling in ("L1 8JQ", "l18jq", "  l1   8jq ", "L18JQ"):
        assert found(identified, SearchTerms(postcode=spelling)) == ["loc-1"], spelling


def test_a_postcode_in_the_same_district_finds_only_its_own_location(
    identified: NodeClient,
) -> None:
    """L1 8JQ and L1 8JR share their district (L1): a full postcode matches only in full."""
    assert found(identified, SearchTerms(postcode="l1 8jr")) == ["loc-2"]
    assert found(identified, SearchTerms(postcode="L1 8JX")) == []
    assert found(identified, SearchTerms(postcode="L2 8JQ")) == []


def test_a_postcode_hit_in_records_mode_carries_the_location(identified: NodeClient) -> None:
    """Found by its full postcode, the location is still shown as policy allows: the shipped
    agreements show premises to analysts at district level only."""
    [hit] = search(identified, SearchTerms(postcode="l18jq"), analyst("20"), context()).hits
    assert hit.kind == "location"
    assert hit.matched == ["postcode"]
    assert hit.record is not None and hit.record["body"]["postcode"] == "L1"


def test_a_line_name_is_found_in_any_case_and_spacing(identified: NodeClient) -> None:
    for spelling in ("Bando Line", "bando line", "BANDO-LINE", "bandoline", "Bañdo Line"):
        assert found(identified, SearchTerms(line_name=spelling)) == ["cl-1"], spelling


def test_each_of_a_lines_names_finds_it_and_a_near_name_does_not(identified: NodeClient) -> None:
    assert found(identified, SearchTerms(line_name=" bando ")) == ["cl-1"]
    assert found(identified, SearchTerms(line_name="bandit line")) == ["cl-2"]
    assert found(identified, SearchTerms(line_name="Bando Lines")) == []
    assert found(identified, SearchTerms(line_name="Line")) == []


def test_a_line_name_hit_in_records_mode_carries_the_line(identified: NodeClient) -> None:
    [hit] = search(identified, SearchTerms(line_name="BANDO LINE"), analyst("20"), context()).hits
    assert hit.kind == "county_line"
    assert hit.matched == ["line_name"]
    assert hit.record is not None and "Bando Line" in hit.record["body"]["line_names"]
