"""Property-based round trips: model -> JSON -> model is lossless and canonical bytes are stable."""

import json
import random
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import KINDS, canonical_json, parse_record, walk_fields
from schemas.enums import HandlingCode, SecurityTier
from schemas.examples import example_record
from schemas.forces import all_forces
from schemas.values import RECORD_ID_PATTERN

FORCE_CODES = [code for force in all_forces() for code in (force.code, *force.aliases)]
PHONES = ["+447911123456", "07700 100200", "+44 7412 345678", "020 7946 0958", "0121 496 0000"]
POSTCODES = ["B1 1AA", "sw1a1aa", "M1 1AE", "CR2 6XH", "DN55 1PT", "EC1A 1BB"]

texts = st.text(min_size=1, max_size=60).filter(lambda s: s.strip() != "")
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=offsets
)
ref = st.fixed_dictionaries(
    {
        "force": st.sampled_from(FORCE_CODES),
        "record_id": st.from_regex(RECORD_ID_PATTERN, fullmatch=True),
    }
)
links = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["suspect", "victim", "runner", "user_of"]), "target": ref},
        optional={
            "confidence": st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
            "source_record": ref,
        },
    ),
    max_size=3,
)


@st.composite
def gradings(draw: st.DrawFn) -> dict[str, Any]:
    handling = draw(st.sampled_from(list(HandlingCode)))
    grading: dict[str, Any] = {
        "source_evaluation": draw(st.sampled_from(["1", "2", "3"])),
        "assessment": draw(st.sampled_from(list("ABCDE"))),
        "handling": handling.value,
        "legacy_5x5x5": draw(st.none() | texts),
    }
    if handling is HandlingCode.C:
        grading["conditions"] = draw(texts)
        grading["condition_forces"] = draw(st.none() | st.lists(st.sampled_from(FORCE_CODES)))
    return grading


@st.composite
def classifications(draw: st.DrawFn) -> dict[str, Any]:
    tier = draw(st.sampled_from(list(SecurityTier)))
    sensitive = tier is SecurityTier.OFFICIAL and draw(st.booleans())
    return {
        "tier": tier.value,
        "sensitive": sensitive,
        "descriptors": draw(st.lists(st.sampled_from(["PERSONAL", "LOCSEN"]))) if sensitive else [],
        "caveats": draw(st.lists(texts, max_size=2)),
    }


def _body(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    body: dict[str, Any] = example_record(kind)["body"]
    if kind == "person":
        body["names"][0].update(given_names=draw(texts), family_name=draw(st.none() | texts))
        dob = draw(st.none() | dates)
        body["date_of_birth"] = None if dob is None else dob.isoformat()
    elif kind == "phone":
        body["number"] = draw(st.sampled_from(PHONES))
        body["handset"] = draw(st.none() | texts)
    elif kind == "vehicle":
        body["vrm"] = draw(st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True))
    elif kind == "location":
        body["postcode"] = draw(st.sampled_from(POSTCODES))
        body["address_lines"] = draw(st.lists(texts, max_size=3))
    elif kind == "intelligence_report":
        body["text"] = draw(st.text(min_size=1, max_size=300))
        body["submitted_at"] = draw(instants).isoformat()
    elif kind == "county_line":
        body["line_names"] = draw(st.lists(texts, min_size=1, max_size=3))
        body["deal_lines"][0]["number"] = draw(st.sampled_from(PHONES))
    elif kind == "event":
        body["occurred_at"] = draw(instants).isoformat()
        body["summary"] = draw(st.none() | st.text(min_size=1, max_size=300))
    elif kind == "organisation":
        body["name"] = draw(texts)
    return body


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    created = draw(instants)
    updated = created + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=900)))
    return example_record(
        kind,
        id=draw(st.from_regex(RECORD_ID_PATTERN, fullmatch=True)),
        owner_force=draw(st.sampled_from(FORCE_CODES)),
        version=draw(st.integers(min_value=1, max_value=2**53 - 1)),
        created_at=created.isoformat(),
        updated_at=updated.isoformat(),
        classification=draw(classifications()),
        grading=draw(gradings()),
        links=draw(links),
        body=_body(draw, kind),
    )


@settings(max_examples=150, deadline=None)
@given(records())
def test_model_to_json_to_model_is_lossless(data: dict[str, Any]) -> None:
    record = parse_record(data)
    again = parse_record(json.loads(record.model_dump_json()))
    assert again == record
    assert again.model_dump(mode="json") == record.model_dump(mode="json")


@settings(max_examples=150, deadline=None)
@given(records(), st.randoms(use_true_random=False))
def test_canonical_bytes_are_stable(data: dict[str, Any], rng: random.Random) -> None:
    record = parse_record(data)
    canonical = canonical_json(record)
    # Parsing canonical bytes back gives the same record and the same bytes again.
    reparsed = parse_record(json.loads(canonical))
    assert reparsed == record
    assert canonical_json(reparsed) == canonical
    # Member order in the input does not matter.
    items = list(record.model_dump(mode="json").items())
    rng.shuffle(items)
    assert canonical_json(dict(items)) == canonical


@settings(max_examples=100, deadline=None)
@given(records())
def test_stored_timestamps_are_utc(data: dict[str, Any]) -> None:
    record = parse_record(data)
    assert record.created_at.utcoffset() == timedelta(0)
    assert record.created_at.tzinfo is not None
    assert record.created_at == datetime.fromisoformat(data["created_at"]).astimezone(UTC)
    values = list(walk_fields(record.model_dump(mode="json")))
    assert all(value.value is not None for value in values)
