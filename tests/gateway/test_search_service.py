"""Local search: blind-index lookup, re-check of candidates, and policy enforcement."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from gateway.search import service
from gateway.search.service import SearchTerms, UnusableTerms, disclose_local, search_local
from policies import Mode, PolicyContext, Principal
from schemas.enums import Purpose, VettingLevel
from schemas.examples import example_record
from tests.gateway.conftest import NodeClient

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def person(record_id: str, given: str, family: str, dob: str, **extra: Any) -> dict[str, Any]:
    record = example_record("person", id=record_id, owner_force="20", **extra)
    record["body"]["names"] = [
        {"name_type": "primary", "given_names": given, "family_name": family}
    ]
    record["body"]["date_of_birth"] = dob
    return record


def phone(record_id: str, number: str) -> dict[str, Any]:
    record = example_record("phone", id=record_id, owner_force="20")
    record["body"]["number"] = number
    return record


def load(node: NodeClient, records: list[dict[str, Any]]) -> None:
    body = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    headers = {**node.auth(), "Content-Type": "application/x-ndjson"}
    report = node.http.post("/v1/records/bulk", content=body, headers=headers).json()
    assert report["rejected"] == 0, report


def analyst(force: str, *roles: str, vetting: VettingLevel = VettingLevel.NPPV2) -> Principal:
    return Principal(
        user_id=f"user-{force}",
        force=force,
        roles=frozenset(roles or ("analyst",)),
        vetting=vetting,
    )


def context(
    mode: Mode = Mode.RECORDS,
    purpose: Purpose | None = Purpose.INVESTIGATION,
    case: str | None = "OP-1",
    requesting: str = "20",
) -> PolicyContext:
    return PolicyContext(
        purpose=purpose,
        case_reference=case,
        time=NOW,
        mode=mode,
        justification_present=True,
        requesting_force=requesting,
    )


def search(node: NodeClient, terms: SearchTerms, principal: Principal, ctx: PolicyContext):
    gateway_node = node.http.app.state.node

    async def run():
        return await search_local(node=gateway_node, terms=terms, principal=principal, context=ctx)

    return anyio.run(run)


@pytest.fixture
def loaded(node: NodeClient) -> NodeClient:
    load(
        node,
        [
            person("p-1", "Mohammed", "Khan", "1990-04-01"),
            person("p-2", "Muhammad", "Khan", "1990-04-01"),
            person("p-3", "Mohamed", "Khan", "1985-01-01"),
            person("p-4", "Khan", "Mohammed", "1990-04-01"),
            person("p-5", "Jane", "Smith", "1990-04-01"),
            phone("ph-1", "+447911123456"),
            phone("ph-2", "07912 345678"),
        ],
    )
    return node


def test_phone_search_finds_the_record_in_any_spelling(loaded: NodeClient) -> None:
    for spelling in ("+447911123456", "07911 123456", "07911123456"):
        answer = search(loaded, SearchTerms(phone=spelling), analyst("20"), context())
        assert [h.record_id for h in answer.hits] == ["ph-1"]
        assert answer.hits[0].record["body"]["number"] == "+447911123456"


def test_name_variants_with_the_same_dob_match_and_others_do_not(loaded: NodeClient) -> None:
    answer = search(
        loaded, SearchTerms(name="Muhammed Khan", dob="1990-04-01"), analyst("20"), context()
    )
    assert [h.record_id for h in answer.hits] == ["p-1", "p-2", "p-4"]
    assert {"name", "dob"} <= set(answer.hits[0].matched)


def test_hits_mode_returns_no_personal_data(loaded: NodeClient) -> None:
    answer = search(loaded, SearchTerms(phone="07911123456"), analyst("20"), context(Mode.HITS))
    assert [(h.record_id, h.record) for h in answer.hits] == [("ph-1", None)]
    assert answer.disclosed == [] and len(answer.matched) == 1
    assert "+447911" not in json.dumps(answer.to_json())


def test_partner_under_agreement_gets_a_redacted_record(loaded: NodeClient) -> None:
    answer = search(loaded, SearchTerms(name="Jane Smith"), analyst("05"), context(requesting="05"))
    assert [h.outcome for h in answer.hits] == ["redacted"]
    assert answer.policy_ids and answer.policy_hash
    assert "cl0520.read" in answer.policy_ids


def test_force_without_an_agreement_sees_nothing(loaded: NodeClient) -> None:
    answer = search(loaded, SearchTerms(name="Jane Smith"), analyst("63"), context(requesting="63"))
    assert answer.hits == []


@pytest.mark.parametrize(
    ("purpose", "case"), [(None, "OP-1"), (Purpose.INVESTIGATION, None)], ids=["purpose", "case"]
)
def test_missing_purpose_or_case_reference_is_denied(
    loaded: NodeClient, purpose: Purpose | None, case: str | None
) -> None:
    answer = search(
        loaded, SearchTerms(phone="07911123456"), analyst("20"), context(purpose=purpose, case=case)
    )
    assert answer.hits == []
    assert answer.denied_reason
    assert "denied:1" in answer.decision


def test_disclosure_of_one_record(loaded: NodeClient) -> None:
    gateway_node = loaded.http.app.state.node

    async def run():
        return await disclose_local(
            node=gateway_node, record_id="p-5", principal=analyst("20"), context=context(Mode.HITS)
        )

    answer = anyio.run(run)
    assert [h.record_id for h in answer.hits] == ["p-5"]
    assert answer.hits[0].record["body"]["names"][0]["family_name"] == "Smith"
    assert [r.record_id for r in answer.disclosed] == ["p-5"]


def test_no_usable_term_is_an_error(loaded: NodeClient) -> None:
    with pytest.raises(ValueError, match="no usable search term"):
        search(loaded, SearchTerms(), analyst("20"), context())
    with pytest.raises(UnusableTerms, match="phone: not a valid phone number"):
        search(loaded, SearchTerms(phone="not a number"), analyst("20"), context())


@pytest.mark.parametrize(
    ("terms", "refused"),
    [
        (SearchTerms(name="Aleksandr Ivanov", phone="12"), {"phone"}),
        (SearchTerms(name="Aleksandr Ivanov", dob="31/02/1990"), {"dob"}),
        (SearchTerms(name="Aleksandr Ivanov", postcode="L1"), {"postcode"}),
        (SearchTerms(name="!!! ???", vrm="--"), {"name", "vrm"}),
        (SearchTerms(phone="+447700900123", line_name="..."), {"line_name"}),
    ],
)
def test_a_term_that_gives_nothing_to_look_up_is_refused_not_dropped(
    loaded: NodeClient, terms: SearchTerms, refused: set[str]
) -> None:
    """A search for a name AND an unreadable phone (or an impossible date, a postcode district
    alone...) must not quietly become a search for the name alone: it is refused, naming each
    field that gives nothing to look up."""
    with pytest.raises(UnusableTerms) as raised:
        search(loaded, terms, analyst("20"), context())
    assert set(raised.value.problems) == refused


def test_a_200_record_answer_costs_few_policy_calls(node: NodeClient) -> None:
    load(node, [person(f"m-{i:03}", "Ahmed", "Hussain", "1979-02-02") for i in range(200)])
    engine = node.http.app.state.node.policies
    before = engine.cedar_calls
    answer = search(node, SearchTerms(name="Ahmed Hussain"), analyst("20"), context())
    assert len(answer.hits) == 50  # the page limit
    assert engine.cedar_calls - before <= 4


def test_a_redacted_disclosure_says_which_fields_were_withheld(node: NodeClient) -> None:
    load(node, [example_record("modern_slavery_case", id="ms-1", owner_force="20")])
    gateway_node = node.http.app.state.node

    async def run():
        return await disclose_local(
            node=gateway_node,
            record_id="ms-1",
            principal=analyst("05"),
            context=context(requesting="05"),
        )

    answer = anyio.run(run)
    [hit] = answer.hits
    assert hit.outcome == "redacted"
    assert "/body/nrm_reference" in hit.withheld
    assert "nrm_reference" not in hit.record["body"]
    assert f"ms-1{hit.withheld[0]}" in answer.fields_withheld


def test_a_name_whose_parts_are_common_is_found_past_the_candidate_cap(
    node: NodeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many records share one part of the name asked for, few hold every part. The candidates
    are the records holding every part (or the whole name), so the cap on candidates never
    pushes the one that matches out, whatever its place in the order of ids."""
    monkeypatch.setattr(service, "MAX_CANDIDATES", 3)
    crowd = [person(f"a-{n:02d}", f"Given{n}", "Smith", "1970-01-01") for n in range(8)]
    crowd += [person(f"b-{n:02d}", "John", f"Family{n}", "1971-01-01") for n in range(8)]
    load(node, [*crowd, person("z-target", "Jon", "Smyth", "1980-02-02")])
    answer = search(node, SearchTerms(name="John Smith"), analyst("20"), context())
    assert [h.record_id for h in answer.hits] == ["z-target"]
    assert not answer.truncated
    # Each part alone is still a search of its own, and finds the crowd.
    answer = search(node, SearchTerms(name="Smith"), analyst("20"), context(Mode.HITS))
    assert len(answer.hits) == 3  # the cap: the eight a-* and z-target hold the part
    assert answer.truncated


def test_a_search_cut_at_the_candidate_cap_says_so_and_logs_no_terms(
    node: NodeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "MAX_CANDIDATES", 3)
    load(
        node,
        [person(f"s-70-{n}", f"Given{n}", "Smith", "1970-01-01") for n in range(3)]
        + [person(f"s-71-{n}", f"Given{n}", "Smith", "1971-01-01") for n in range(3)]
        + [person("s-80", "Jon", "Smith", "1980-02-02")],
    )
    with capture_logs() as logs:
        broad = search(node, SearchTerms(name="Smith"), analyst("05"), context(requesting="05"))
        at_cap = search(node, SearchTerms(name="Smith", dob="1970-01-01"), analyst("20"), context())
        narrow = search(node, SearchTerms(name="Smith", dob="1980-02-02"), analyst("20"), context())
    # Seven records hold the name, three are examined: the answer says it may be incomplete.
    assert broad.truncated
    assert broad.to_json()["truncated"] is True
    assert service.LocalAnswer.from_json(broad.to_json()).truncated
    # Exactly as many candidates as the cap: every one was examined.
    assert [h.record_id for h in at_cap.hits] == ["s-70-0", "s-70-1", "s-70-2"]
    assert not at_cap.truncated
    assert [h.record_id for h in narrow.hits] == ["s-80"]
    assert not narrow.truncated
    cut = [e for e in logs if e["event"] == "search.candidates_truncated"]
    assert cut == [
        {
            "event": "search.candidates_truncated",
            "log_level": "info",
            "kept": 3,
            "requesting_force": "05",
        }
    ]
    assert "smith" not in json.dumps(logs, default=str).lower()


def test_naming_a_kind_narrows_a_search_before_the_candidate_cap(
    node: NodeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reports mentioning a number in their text are candidates for that number as much as the
    phone record itself. Asking for phone records only keeps the reports out of the candidates,
    so the phone record is examined however many reports sort before it."""
    monkeypatch.setattr(service, "MAX_CANDIDATES", 3)
    number = "+447911123457"
    reports = []
    for n in range(6):
        report = example_record("intelligence_report", id=f"a-report-{n}", owner_force="20")
        report["body"]["text"] = f"Deal line {number} seen in use near the station ({n})."
        reports.append(report)
    load(node, [*reports, phone("z-phone", number)])
    broad = search(node, SearchTerms(phone=number), analyst("20"), context(Mode.HITS))
    assert broad.truncated
    assert "z-phone" not in [h.record_id for h in broad.hits]  # cut: it sorts last
    phones_only = SearchTerms(phone=number, kinds=("phone",))
    narrowed = search(node, phones_only, analyst("20"), context(Mode.HITS))
    assert [h.record_id for h in narrowed.hits] == ["z-phone"]
    assert not narrowed.truncated
    two_kinds = SearchTerms(phone=number, kinds=("phone", "intelligence_report"))
    assert search(node, two_kinds, analyst("20"), context(Mode.HITS)).truncated
