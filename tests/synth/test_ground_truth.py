"""The ground truth agrees with the files, and the planted structure crosses forces."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import phonenumbers

from schemas.values import normalise_phone_number
from tests.synth.conftest import RUN_FORCES

Records = dict[str, list[dict[str, Any]]]


def _by_id(run_records: Records) -> dict[tuple[str, str], dict[str, Any]]:
    return {(force, r["id"]): r for force, records in run_records.items() for r in records}


def _at(record: dict[str, Any], pointer: str) -> Any:
    value: Any = record
    for token in pointer.strip("/").split("/"):
        value = value[int(token)] if isinstance(value, list) else value[token]
    return value


def _numbers_in(value: Any) -> set[str]:
    if not isinstance(value, str):
        return set()
    if value.startswith("+"):
        return {normalise_phone_number(value)}
    return {
        phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        for match in phonenumbers.PhoneNumberMatcher(value, "GB")
    }


def test_every_member_exists_and_holds_the_identifier(
    ground_truth: dict[str, Any], run_records: Records
) -> None:
    records = _by_id(run_records)
    assert ground_truth["links"]
    for link in ground_truth["links"]:
        for member in link["members"]:
            record = records[(member["force"], member["record_id"])]
            value = _at(record, member["field"])
            if link["type"] == "deal_line":
                assert link["identifier"] in _numbers_in(value), (link["id"], member)
            elif link["type"] == "person_variant":
                detail = link["detail"]
                assert link["identifier"].startswith(detail["date_of_birth"] + " ")
                assert record["body"]["date_of_birth"] == detail["date_of_birth"]
                written = next(n for n in detail["names"] if n["record_id"] == record["id"])
                assert value["given_names"] == written["given_names"]
                assert value["family_name"] == written["family_name"]
            else:
                detail = link["detail"]
                assert value == detail["address_lines"]
                assert record["body"]["postcode"] == detail["postcode"]
                assert link["identifier"] == ", ".join([*value, detail["postcode"]])


def test_every_link_crosses_forces_and_every_type_is_planted(
    ground_truth: dict[str, Any],
) -> None:
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for link in ground_truth["links"]:
        forces = {member["force"] for member in link["members"]}
        assert len(forces) >= 2, link["id"]
        assert sorted(forces) == link["forces"]
        by_type[link["type"]].append(link)
    assert set(by_type) == {"deal_line", "person_variant", "premises"}
    assert ground_truth["planted_links"] == {kind: len(links) for kind, links in by_type.items()}
    assert ground_truth["forces"] == sorted(RUN_FORCES)
    assert len({link["id"] for link in ground_truth["links"]}) == len(ground_truth["links"])


def test_deal_lines_change_number_and_importers_see_each_number_while_in_use(
    ground_truth: dict[str, Any], run_records: Records
) -> None:
    records = _by_id(run_records)
    numbers_per_line: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for link in ground_truth["links"]:
        if link["type"] != "deal_line":
            continue
        detail = link["detail"]
        line = records[(detail["line"]["force"], detail["line"]["record_id"])]
        assert line["kind"] == "county_line"
        assert line["body"]["exporting_force"] == detail["exporting_force"]
        numbers_per_line[line["id"]].append(detail)
        importers = [m for m in link["members"] if m["force"] != detail["exporting_force"]]
        assert importers
        for member in importers:
            assert member["force"] in line["body"]["importing_forces"]
            record = records[(member["force"], member["record_id"])]
            # When the importing force saw the number: within the period the line used it.
            when = (
                record["body"]["occurred_at"] if record["kind"] == "event" else record["created_at"]
            )
            assert when[:10] >= detail["valid_from"]
            if detail["valid_to"] is not None:
                assert when[:10] <= detail["valid_to"]
        roles = {link_["role"] for link_ in line["links"]}
        assert {"line_holder", "runner"} <= roles
    changed = [periods for periods in numbers_per_line.values() if len(periods) > 1]
    assert changed, "no planted line changed its number"
    for periods in changed:
        ordered = sorted(periods, key=lambda p: p["valid_from"])
        for earlier, later in itertools.pairwise(ordered):
            assert earlier["valid_to"] is not None
            assert earlier["valid_to"] < later["valid_from"]


def test_suspects_appear_under_different_spellings_with_one_date_of_birth(
    ground_truth: dict[str, Any],
) -> None:
    variants = [link for link in ground_truth["links"] if link["type"] == "person_variant"]
    assert variants
    spelled_differently = [
        link
        for link in variants
        if len({(n["given_names"], n["family_name"]) for n in link["detail"]["names"]}) > 1
    ]
    assert len(spelled_differently) == len(variants)


def test_premises_link_victims_recorded_by_several_forces(
    ground_truth: dict[str, Any], run_records: Records
) -> None:
    records = _by_id(run_records)
    for link in ground_truth["links"]:
        if link["type"] != "premises":
            continue
        sites = {m["force"]: m["record_id"] for m in link["members"]}
        cases = link["detail"]["victim_cases"]
        assert {case["force"] for case in cases} == set(sites)
        for case in cases:
            record = records[(case["force"], case["record_id"])]
            assert record["kind"] == "modern_slavery_case"
            targets = {(lk["role"], lk["target"]["record_id"]) for lk in record["links"]}
            assert ("located_at", sites[case["force"]]) in targets
            victim_id = next(rid for role, rid in targets if role == "victim")
            assert "VICTIM" in records[(case["force"], victim_id)]["subject_categories"]


def test_no_phone_number_is_shared_across_forces_unless_planted(
    ground_truth: dict[str, Any], run_records: Records
) -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for force, records in run_records.items():
        for record in records:
            body = record["body"]
            if record["kind"] == "phone":
                owners[body["number"]].add(force)
            elif record["kind"] == "county_line":
                for deal_line in body["deal_lines"]:
                    owners[deal_line["number"]].add(force)
            elif record["kind"] == "intelligence_report":
                for number in _numbers_in(body["text"]):
                    owners[number].add(force)
    shared = {number for number, forces in owners.items() if len(forces) > 1}
    planted = {link["identifier"] for link in ground_truth["links"] if link["type"] == "deal_line"}
    assert shared <= planted
    assert shared
