"""The generated files: deterministic, valid against the record models, realistic in mix."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import phonenumbers
import pytest

from gateway.synth import SynthError, SynthSummary, generate, iter_force_records
from gateway.synth.identifiers import force_area
from gateway.synth.plan import PROVISIONAL_ID_PREFIX
from schemas.records import KINDS
from schemas.validation import parse_record
from tests.synth.conftest import RUN_FORCES, RUN_RECORDS, RUN_SEED, read_dir

Records = dict[str, list[dict[str, Any]]]


def test_same_seed_gives_byte_identical_files_whatever_the_force_order(tmp_path: Path) -> None:
    generate(["05", "20"], 400, 11, tmp_path / "a")
    generate(["20", "05"], 400, 11, tmp_path / "b")
    first, second = read_dir(tmp_path / "a"), read_dir(tmp_path / "b")
    assert sorted(first) == ["05.ndjson", "20.ndjson", "ground_truth.json"]
    assert first == second


def test_different_seed_gives_different_files(tmp_path: Path) -> None:
    generate(["05", "20"], 400, 11, tmp_path / "a")
    generate(["05", "20"], 400, 12, tmp_path / "b")
    first, second = read_dir(tmp_path / "a"), read_dir(tmp_path / "b")
    for name in first:
        assert first[name] != second[name], name


def test_every_record_validates_and_is_already_in_dumped_form(run_records: Records) -> None:
    for records in run_records.values():
        for data in records:
            model = parse_record(data)
            # Exactly what the model dumps: normalised values, every key, defaults included.
            assert model.to_json_data() == data, data["id"]


def test_each_file_holds_its_force_records_with_unique_final_ids(
    small_run: SynthSummary, run_records: Records
) -> None:
    assert sorted(run_records) == sorted(RUN_FORCES)
    for force, records in run_records.items():
        assert len(records) == RUN_RECORDS
        assert {record["owner_force"] for record in records} == {force}
        ids = [record["id"] for record in records]
        assert len(set(ids)) == len(ids)
        assert all(re.fullmatch(rf"{force}-[A-Z]{{1,2}}-\d{{6}}", rid) for rid in ids)
        assert sum(small_run.kinds[force].values()) == RUN_RECORDS


def test_links_point_at_records_of_the_same_file(run_records: Records) -> None:
    for force, records in run_records.items():
        ids = {record["id"] for record in records}
        for record in records:
            refs = [link["target"] for link in record["links"]]
            if record["kind"] == "event" and record["body"]["location_ref"]:
                refs.append(record["body"]["location_ref"])
            for ref in refs:
                assert ref["force"] == force
                assert ref["record_id"] in ids, (record["id"], ref)
                assert not ref["record_id"].startswith(PROVISIONAL_ID_PREFIX)


def test_iterating_one_force_yields_what_generate_wrote(run_records: Records) -> None:
    streamed = list(iter_force_records("20", forces=RUN_FORCES, records=RUN_RECORDS, seed=RUN_SEED))
    # The written run also planted sentinels; compare records the sentinels left alone.
    written = run_records["20"]
    assert [r["id"] for r in streamed] == [r["id"] for r in written]
    same = sum(1 for a, b in zip(streamed, written, strict=True) if a == b)
    assert same >= len(written) - 3 * 2


def test_mix_of_kinds_classifications_gradings_and_retention(run_records: Records) -> None:
    records = [record for force in run_records.values() for record in force]
    kinds = Counter(record["kind"] for record in records)
    assert set(kinds) == set(KINDS)
    assert kinds.most_common(1)[0][0] == "person"
    markings = Counter(
        (r["classification"]["tier"], r["classification"]["sensitive"]) for r in records
    )
    assert (
        markings[("OFFICIAL", False)] > markings[("OFFICIAL", True)] > markings[("SECRET", False)]
    )
    assert markings[("SECRET", False)] > 0
    conditional = [r for r in records if r["grading"]["handling"] == "C"]
    assert conditional and all(r["grading"]["condition_forces"] for r in conditional)
    assert {r["grading"]["source_evaluation"] for r in records} == {"1", "2", "3"}
    assert {r["grading"]["assessment"] for r in records} == set("ABCDE")
    overdue = [r for r in records if r["retention"]["next_review"] < "2025-01-01"]
    assert 0 < len(overdue) < len(records) * 0.05
    assert {r["retention"]["group"] for r in records} == {1, 2, 3, 4}
    assert any(r["sensitive_categories"] for r in records)
    persons = [r for r in records if r["kind"] == "person"]
    categories = {c for r in persons for c in r["subject_categories"]}
    assert {"SUSPECT", "VICTIM", "WITNESS_OTHER", "CONVICTED"} <= categories


def test_identifiers_look_like_uk_ones(run_records: Records) -> None:
    age_ids = {f"{year:02d}" for year in range(5, 25)} | {f"{y + 50:02d}" for y in range(5, 25)}
    in_own_area = 0
    locations = 0
    for force, records in run_records.items():
        districts = set(force_area(force)[1])
        for record in records:
            body = record["body"]
            if record["kind"] == "phone":
                number = phonenumbers.parse(body["number"])
                assert phonenumbers.region_code_for_number(number) == "GB"
                assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
            elif record["kind"] == "vehicle":
                assert re.fullmatch(r"[A-Z]{2}\d{2}[A-Z]{3}", body["vrm"])
                assert body["vrm"][2:4] in age_ids
                assert not set(body["vrm"][4:]) & set("IQZ")
            elif record["kind"] == "location":
                locations += 1
                in_own_area += body["postcode"].split()[0] in districts
    # Planted premises sit in the force area where they are, whoever records them.
    assert in_own_area >= 0.95 * locations


def test_county_lines_are_recorded_once_open_and_import_only_where_planted(
    run_records: Records, ground_truth: dict[str, Any]
) -> None:
    planted_lines = {
        link["detail"]["line"]["record_id"]
        for link in ground_truth["links"]
        if link["type"] == "deal_line"
    }
    for records in run_records.values():
        for record in records:
            if record["kind"] != "county_line":
                continue
            body = record["body"]
            assert record["created_at"][:10] >= body["deal_lines"][0]["valid_from"]
            assert (body["closure"] is None) == (body["deal_lines"][-1]["valid_to"] is None)
            if record["id"] not in planted_lines:
                assert not set(body["importing_forces"]) & set(RUN_FORCES)


def test_single_force_run_plants_no_links(tmp_path: Path) -> None:
    summary = generate(["05"], 50, 1, tmp_path)
    assert summary.planted_links == {"deal_line": 0, "person_variant": 0, "premises": 0}
    assert len(summary.files["05"].read_text().splitlines()) == 50


def test_force_aliases_resolve_to_registry_codes(tmp_path: Path) -> None:
    summary = generate(["02", "05"], 300, 1, tmp_path)
    assert summary.forces == ["01", "05"]


@pytest.mark.parametrize(
    ("forces", "records", "message"),
    [
        (["05", "XX"], 500, "unknown force code"),
        (["05", "20"], 100, "at least 200"),
        (["05"], 0, "at least 1"),
        ([" "], 10, "no force codes"),
    ],
)
def test_impossible_requests_are_refused(
    tmp_path: Path, forces: list[str], records: int, message: str
) -> None:
    with pytest.raises(SynthError, match=message):
        generate(forces, records, 1, tmp_path)


def test_iterating_a_force_outside_the_run_is_refused() -> None:
    with pytest.raises(SynthError, match="not one of"):
        iter_force_records("06", forces=["05", "20"], records=300, seed=1)
